"""End-to-end evaluation of every SYSU-MM01 protocol: the official flow against the workbook's, in one run.

    PYTHONPATH=. python benchmarks/sysu_eval_bench.py [--arch resnet50] [--ids 40] [--trials 10] [--device cpu]

Both flows score the same network (AGW at 288 x 144, random weights: speed does not depend on
them) on the same synthetic SYSU-MM01, for all-search and indoor-search, single-shot and
10-shot, 10 gallery trials each: features + scores, from image files to the table.

* **Official flow**, re-created from Cross-Modal-Re-ID-baseline's ``test.py``: one pass per
  (mode, shot) setting (the script tests one setting per invocation); in each, the query images
  are extracted once and every trial's gallery again; images are opened and resized with PIL
  (Lanczos) when the trial's dataset is made, then ``ToPILImage -> Resize -> ToTensor -> Normalize``
  per image in the loader; float32, the default layout; each trial scored one query at a time with a
  full stable sort (``tests/eval/reference.py``, the official ``eval_sysu``'s way).
* **Workbook flow**: :func:`vireid_lib.eval.run_sysu` with the run's extractor: each query and each
  gallery-pool image extracted once for all settings and trials, from a uint8 cache of the resized
  test images (built by the test transform's own resize on the first pass, ``--cold``), normalised
  on the device, channels-last; the query x pool distances once, trials scored by the vectorised
  evaluator. Timed cold (cache built in the run) and warm (cache present, as in every evaluation
  after the first: best-on-test, variants, evaluations during training).

Prints the seconds of each flow, the images each one passes through the network, the ratio, and
the largest difference between the two flows' mean mAP (they score the same features; the features
differ only by the layout's rounding). Then the image counts of the real SYSU-MM01 under both flows,
for reading the synthetic ratio at the real dataset's proportions.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.eval.reference import reference_evaluate  # noqa: E402
from vireid_lib.data import INFRARED, VISIBLE, SYSUMM01  # noqa: E402
from vireid_lib.data.synthetic import SyntheticConfig, ensure_synthetic  # noqa: E402
from vireid_lib.engine.extract import embed  # noqa: E402
from vireid_lib.eval import run_sysu  # noqa: E402
from vireid_lib.experiments.runner import prepare  # noqa: E402

SETTINGS = [(mode, shot) for mode in ("all", "indoor") for shot in (1, 10)]
# The real SYSU-MM01 test split (PROTOCOLS.md / the official data_manager): 3,803 infrared queries;
# per trial, single-shot 301 (all) / 112 (indoor) gallery images, 10-shot 3,010 / 1,120; the pool of
# every trial's images is at most the test identities' visible images of the searched cameras.
REAL = {"query": 3803, "gallery": {("all", 1): 301, ("all", 10): 3010, ("indoor", 1): 112, ("indoor", 10): 1120},
        "pool": 6775}


class OfficialTestData(Dataset):
    """The official ``TestData``: every image opened and resized with PIL when the dataset is made."""

    def __init__(self, paths, size=(144, 288)) -> None:
        self.images = [np.array(Image.open(p).convert("RGB").resize(size, Image.Resampling.LANCZOS)) for p in paths]
        self.transform = transforms.Compose([transforms.ToPILImage(), transforms.Resize((size[1], size[0])),
                                             transforms.ToTensor(),
                                             transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.transform(self.images[index])


def official_features(model, paths, modality: int, device: str, workers: int, batch_size: int) -> np.ndarray:
    loader = DataLoader(OfficialTestData(paths), batch_size=batch_size, shuffle=False, num_workers=workers)
    model.eval()
    rows = []
    with torch.no_grad():
        for images in loader:
            rows.append(embed(model, images.to(device), modality).cpu().numpy())
    return np.concatenate(rows)


def official_flow(model, dataset: SYSUMM01, trials: int, device: str, workers: int, batch_size: int):
    """Every setting as its own invocation of the official script; returns (seconds, images, {setting: mAP})."""
    start, images, scores = time.perf_counter(), 0, {}
    for mode, shot in SETTINGS:
        query = dataset.query()
        q = official_features(model, [r.path for r in query], INFRARED, device, workers, batch_size)
        images += len(query)
        maps = []
        for trial in range(trials):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                gallery = dataset.gallery(mode, trial, shot)
            g = official_features(model, [r.path for r in gallery], VISIBLE, device, workers, batch_size)
            images += len(gallery)
            qn = q / np.linalg.norm(q, axis=1, keepdims=True)
            gn = g / np.linalg.norm(g, axis=1, keepdims=True)
            result = reference_evaluate(-qn @ gn.T, [r.pid for r in query], [r.pid for r in gallery],
                                        [r.camid for r in query], [r.camid for r in gallery], rule="sysu")
            maps.append(result["mAP"])
        scores[(mode, shot)] = float(np.mean(maps))
    return time.perf_counter() - start, images, scores


def workbook_flow(run, dataset: SYSUMM01, trials: int):
    counted = []
    extract = run.extractor()

    def counting(records):
        counted.append(len(records))
        return extract(records)

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        evaluation = run_sysu(dataset, counting, modes=("all", "indoor"), shots=(1, 10), trials=range(trials))
    seconds = time.perf_counter() - start
    summary = evaluation.summary
    scores = {}
    for mode, shot in SETTINGS:
        protocol = f"{mode}-search, {'single-shot' if shot == 1 else 'multi-shot (10)'}"
        scores[(mode, shot)] = float(summary.loc[summary["protocol"] == protocol, "mAP"].iloc[0]) / 100
    return seconds, sum(counted), scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="resnet50", choices=["resnet50", "resnet34", "resnet18"])
    parser.add_argument("--ids", type=int, default=40, help="identities of the synthetic SYSU-MM01")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=2, help="loader processes, both flows")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else ("cpu" if args.device == "auto" else args.device)
    root = ensure_synthetic("sysu", config=SyntheticConfig(ids=args.ids))
    dataset = SYSUMM01(root)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        import os

        os.environ["VIREID_CACHE"] = str(cache)  # a cold start: no test-image cache yet
        run = prepare("agw", "sysu", data_root=str(root), pretrained=False, arch=args.arch, device=device,
                      workers=args.workers, channels_last=True, out_dir=str(Path(tmp) / "runs"), progress=False)
        model = run.model.to(device)
        print(f"AGW ({args.arch}) at {run.test_transform.height}x{run.test_transform.width}, synthetic SYSU-MM01 "
              f"({args.ids} ids, {len(dataset.query())} queries), {args.trials} trials x {len(SETTINGS)} settings, "
              f"device {device}, {args.workers} loader workers, torch {torch.__version__}, "
              f"{torch.get_num_threads()} threads")
        cold_s, cold_n, ours = workbook_flow(run, dataset, args.trials)
        warm_s, _, _ = workbook_flow(run, dataset, args.trials)
        model.to(memory_format=torch.contiguous_format)  # the official flow runs the default layout
        official_s, official_n, theirs = official_flow(model, dataset, args.trials, device, args.workers,
                                                       args.batch_size)
        shutil.rmtree(cache, ignore_errors=True)
    print(f"{'flow':<32}{'seconds':>10}{'images':>9}{'vs official':>13}")
    print(f"{'official (re-created)':<32}{official_s:>10.1f}{official_n:>9}{1.0:>12.2f}x")
    print(f"{'workbook, cold (cache built)':<32}{cold_s:>10.1f}{cold_n:>9}{official_s / cold_s:>12.2f}x")
    print(f"{'workbook, warm (cache present)':<32}{warm_s:>10.1f}{cold_n:>9}{official_s / warm_s:>12.2f}x")
    worst = max(abs(ours[k] - theirs[k]) for k in SETTINGS)
    print(f"largest mean-mAP difference between the flows over the 4 settings: {worst:.2e}")
    real_official = sum(REAL["query"] + 10 * REAL["gallery"][s] for s in SETTINGS)
    real_ours = REAL["query"] + REAL["pool"]
    print(f"real SYSU-MM01, images through the network: official {real_official:,}, workbook at most {real_ours:,} "
          f"({real_official / real_ours:.1f}x fewer); synthetic here: {official_n / cold_n:.1f}x fewer")


if __name__ == "__main__":
    main()
