"""Training input pipeline at 288x144, per CPU core: vireid's two paths against the official per-sample one.

    PYTHONPATH=. python benchmarks/input_bench.py [--sysu ROOT] [--batches 16] [--repeats 7] [--view-sets AGW CAJ]

Three pipelines (and the batched one's loader alone), all fed by the same uint8 ``[N, 288, 144, 3]`` training arrays (the synthetic
SYSU-MM01 twin's images resized once by vireid's training cache, Lanczos, as the official
``pre_process_sysu.py`` does; or a real SYSU-MM01 with ``--sysu``), all batched by a torch DataLoader
in the main process (``num_workers=0``) on one torch thread, so every figure is per CPU core, and all
drawing the same pairs (vireid's cross-modality sampler, 8 ids x 4 per modality):

* official: a re-creation of Cross-Modal-Re-ID-baseline's pipeline. AGW: ``SYSUData.__getitem__``
  applies ``train.py``'s ``transform_train`` (ToPILImage -> Pad(10) -> RandomCrop((288, 144)) ->
  RandomHorizontalFlip -> ToTensor -> Normalize) to the visible and to the thermal image of a pair.
  CAJ (``ICCV21_CAJ/data_loader.py``): three Compose pipelines of those steps per pair, the visible
  image through ``transform_color`` (+ ChannelRandomErasing) and ``transform_color1`` (+ ChannelRandomErasing
  + ChannelExchange), the thermal one through ``transform_thermal`` (+ ChannelRandomErasing + ChannelAdapGray).
  torchvision's own transforms; the channel steps are this file's small classes, drawing from Python's
  ``random`` as the official ones do.
* vireid, per sample: what the run's loader does with ``augment="loader"`` (``build_view`` per image).
* vireid, batched: what it does with ``augment="device"``: the loader hands the uint8 images over
  untouched (``LoaderImages``) and ``BatchViews`` makes the views of the whole batch, here on the CPU;
  and the same loader alone, which is all the CPU does per image when the views are made on a GPU
  (the GPU's time is not in it: measure it with ``train_bench.py --augment both --device cuda``).

Two view sets, as the papers' batches hold them: AGW's ("train" for both modalities: 64 images per
batch) and CAJ's (visible "erasing" and "caj", infrared "caj": 96 images per batch). The repeats are
interleaved (repeat 1 of every pipeline, then repeat 2, ...) so a load change on a shared machine
touches every pipeline alike; each repeat takes a fresh loader, drops its first batch and times the
next ``--batches``. The goal (issue 15): the batched path at least 5x the official per core.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from vireid_lib.data import SYSUMM01
from vireid_lib.data.batched import LoaderImages, batched_views
from vireid_lib.data.cache import load_image_cache
from vireid_lib.data.datasets import ImageDataset, PairedImageDataset
from vireid_lib.data.records import INFRARED, VISIBLE
from vireid_lib.data.samplers import CrossModalityIdentitySampler
from vireid_lib.data.synthetic import ensure_synthetic
from vireid_lib.data.transforms import MultiView, TransformConfig, build_view
from vireid_lib.experiments.common import training_loader

GOAL = 5.0
HEIGHT, WIDTH = 288, 144
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
# The papers' batch layouts: per modality, the views drawn of every sampled image.
VIEW_SETS = {
    "AGW": {"visible": ("train",), "infrared": ("train",)},
    "CAJ": {"visible": ("erasing", "caj"), "infrared": ("caj",)},
}


# -- the official pipeline, re-created -----------------------------------------------------------


class OfficialChannelErasing:
    """CAJ's ChannelRandomErasing: with probability ``p`` one rectangle of the normalised image
    (area 0.02-0.4, aspect 0.3-3.33 drawn linearly, up to 100 tries) is set to fixed per-channel values."""

    def __init__(self, p: float = 0.5, fill: Sequence[float] = (0.4914, 0.4822, 0.4465)) -> None:
        self.p, self.fill = p, fill

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        if random.uniform(0, 1) > self.p:
            return img
        height, width = img.shape[1], img.shape[2]
        for _ in range(100):
            target = random.uniform(0.02, 0.4) * height * width
            aspect = random.uniform(0.3, 1 / 0.3)
            h, w = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
            if h < height and w < width:
                top, left = random.randint(0, height - h), random.randint(0, width - w)
                for channel, value in enumerate(self.fill):
                    img[channel, top:top + h, left:left + w] = value
                return img
        return img


def _replicate(img: torch.Tensor, channel: int) -> torch.Tensor:
    for other in range(3):
        if other != channel:
            img[other] = img[channel]
    return img


class OfficialChannelExchange:
    """CAJ's ChannelExchange(gray=2) for visible images: one of R, G, B (randint(0, 2)) copied into all three."""

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        return _replicate(img, random.randint(0, 2))


class OfficialChannelAdapGray:
    """CAJ's ChannelAdapGray(probability=0.5) for thermal images: randint(0, 3) picks R, G, B or the fourth
    case, which is the 0.2989 / 0.587 / 0.114 grey in every channel with probability ``p``, else no change."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        case = random.randint(0, 3)
        if case < 3:
            return _replicate(img, case)
        if random.uniform(0, 1) <= self.p:
            img[:] = 0.2989 * img[0] + 0.5870 * img[1] + 0.1140 * img[2]
        return img


def official_transform(*channel_steps: Callable) -> T.Compose:
    """train.py's ``transform_train`` (torchvision, PIL geometry), followed by CAJ's channel steps if any."""
    return T.Compose([T.ToPILImage(), T.Pad(10), T.RandomCrop((HEIGHT, WIDTH)), T.RandomHorizontalFlip(),
                      T.ToTensor(), T.Normalize(mean=MEAN, std=STD), *channel_steps])


class OfficialSYSUData(Dataset):
    """The official ``SYSUData``: in-memory uint8 arrays, ``cIndex`` / ``tIndex`` (the sampler's pairs) looked up by
    position, every view's Compose applied to the pair's images in ``__getitem__``."""

    def __init__(self, visible: np.ndarray, infrared: np.ndarray, visible_labels: np.ndarray,
                 infrared_labels: np.ndarray, pairs: Sequence[tuple[int, int]], caj: bool) -> None:
        self.visible, self.infrared = visible, infrared
        self.visible_labels, self.infrared_labels = visible_labels, infrared_labels
        self.cIndex = np.array([v for v, _ in pairs])
        self.tIndex = np.array([i for _, i in pairs])
        if caj:
            self.visible_views = [official_transform(OfficialChannelErasing()),
                                  official_transform(OfficialChannelErasing(), OfficialChannelExchange())]
            self.infrared_view = official_transform(OfficialChannelErasing(), OfficialChannelAdapGray())
        else:
            self.visible_views = [official_transform()]
            self.infrared_view = self.visible_views[0]

    def __len__(self) -> int:
        return len(self.cIndex)

    def __getitem__(self, index: int):
        v, i = self.cIndex[index], self.tIndex[index]
        views = [view(self.visible[v]) for view in self.visible_views]
        return (*views, self.infrared_view(self.infrared[i]), self.visible_labels[v], self.infrared_labels[i])


# -- the three pipelines ---------------------------------------------------------------------------


def count_images(batch) -> int:
    """Images the model would get from a batch: every float image tensor's length."""
    if isinstance(batch, torch.Tensor):
        return len(batch) if batch.is_floating_point() and batch.dim() == 4 else 0
    if isinstance(batch, (list, tuple)):
        return sum(count_images(x) for x in batch)
    return 0


def _images(batch) -> list[torch.Tensor]:
    if isinstance(batch, torch.Tensor):
        return [batch] if batch.is_floating_point() and batch.dim() == 4 else []
    if isinstance(batch, (list, tuple)):
        return [x for part in batch for x in _images(part)]
    return []


class Pipeline:
    """One way of making training batches: ``loader()`` a fresh loader, ``finish(batch)`` what runs on its
    batches afterwards (the batched views, or nothing), ``count(batch)`` the model images a batch stands for."""

    def __init__(self, name: str, loader: Callable[[], DataLoader], finish: Callable | None = None,
                 count: Callable = count_images) -> None:
        self.name, self.loader, self.finish, self.count = name, loader, finish, count
        self.rates: list[float] = []
        self.finish_share: list[float] = []

    def measure(self, batches: int) -> None:
        it = iter(self.loader())
        self.make(next(it))  # the first batch is not throughput
        images, finishing = 0, 0.0
        start = time.perf_counter()
        for _ in range(batches):
            batch = next(it)
            began = time.perf_counter()
            images += self.count(self.make(batch))
            finishing += time.perf_counter() - began
        seconds = time.perf_counter() - start
        self.rates.append(images / seconds)
        self.finish_share.append(finishing / seconds)

    def make(self, batch):
        return batch if self.finish is None else self.finish(batch)


def vireid_views(cfg: TransformConfig, names: Sequence[str], modality: int):
    """The run's per-sample transform for one modality (as ``runner._train_views`` builds it)."""
    views = [build_view(cfg, modality, name) for name in names]
    return views[0] if len(views) == 1 else MultiView(views)


def pipelines(view_set: str, data: dict, cfg: TransformConfig, pairs: list, sampler) -> list[Pipeline]:
    names = VIEW_SETS[view_set]
    views_per_pair = len(names["visible"]) + len(names["infrared"])
    official = OfficialSYSUData(data["visible"], data["infrared"], data["visible_labels"], data["infrared_labels"],
                                pairs, caj=view_set == "CAJ")
    per_sample = PairedImageDataset(
        ImageDataset(data["visible_records"], vireid_views(cfg, names["visible"], VISIBLE), data["visible"]),
        ImageDataset(data["infrared_records"], vireid_views(cfg, names["infrared"], INFRARED), data["infrared"]))
    hand_over = LoaderImages(cfg)
    uint8_pairs = PairedImageDataset(ImageDataset(data["visible_records"], hand_over, data["visible"]),
                                     ImageDataset(data["infrared_records"], hand_over, data["infrared"]))
    return [
        # The official loader: batch_size = 8 ids x 4, its sampler's positions in order, drop_last (train.py).
        Pipeline("official per sample (torchvision + PIL)",
                 lambda: DataLoader(official, batch_size=sampler.batch_size, num_workers=0, drop_last=True)),
        Pipeline('vireid per sample (augment="loader")', lambda: training_loader(per_sample, sampler, 0, "cpu")),
        Pipeline('vireid batched, views on the CPU (augment="device")',
                 lambda: training_loader(uint8_pairs, sampler, 0, "cpu"), batched_views(cfg, names)),
        # The same loader without the views: all the CPU does per image when BatchViews runs on a GPU. Its batches
        # count as the model images they become (CAJ: 3 views per pair from 2 uint8 images).
        Pipeline("  its loader alone (the CPU's part, views on a GPU)",
                 lambda: training_loader(uint8_pairs, sampler, 0, "cpu"),
                 count=lambda batch: len(batch[2]) * views_per_pair),
    ]


def training_arrays(root: Path | None, cache_dir: Path) -> tuple[dict, str]:
    """The training images of SYSU-MM01 (``root``, or the synthetic twin) as in-memory uint8 arrays at 288x144."""
    root = root or ensure_synthetic("sysu")
    visible, infrared = SYSUMM01(root).train()
    data = {"visible_records": visible, "infrared_records": infrared,
            "visible_labels": np.array([r.pid for r in visible]),
            "infrared_labels": np.array([r.pid for r in infrared])}
    for name, records in (("visible", visible), ("infrared", infrared)):
        # np.array: read into memory, as the official SYSUData's np.load does; every pipeline reads these arrays
        data[name] = np.array(load_image_cache(records, root, f"input_bench_{name}", size=(WIDTH, HEIGHT),
                                               cache_dir=cache_dir, progress=False))
    return data, str(root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sysu", type=Path, help="a SYSU-MM01 root (default: the synthetic twin)")
    parser.add_argument("--batches", type=int, default=16, help="timed batches per repeat (after one dropped)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--view-sets", nargs="+", choices=sorted(VIEW_SETS), default=list(VIEW_SETS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)  # one process, one thread: the figures are per core
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        data, root = training_arrays(args.sysu, Path(tmp))
        prepared = time.perf_counter() - start
    cfg = TransformConfig(height=HEIGHT, width=WIDTH)
    sampler = CrossModalityIdentitySampler(data["visible_labels"], data["infrared_labels"], num_ids=8,
                                           num_per_modality=4, seed=args.seed, epoch_length=args.batches + 1)
    pairs = list(sampler)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s), "
          f"{torch.get_num_threads()} torch thread, load average {load}")
    print(f"data: {len(data['visible'])} visible + {len(data['infrared'])} infrared uint8 images "
          f"{tuple(data['visible'].shape[1:])} from {root} (cached in {prepared:.1f} s); batches of 8 ids x 4 pairs; "
          f"{args.repeats} repeats of {args.batches} batches")
    rows = []
    for view_set in args.view_sets:
        runs = pipelines(view_set, data, cfg, pairs, sampler)
        shapes = []
        for run in runs:  # warm-up, and a check that every pipeline making the model's images makes the same batch
            batch = run.make(next(iter(run.loader())))
            if run.count is count_images:
                shapes.append(sorted(tuple(x.shape) for x in _images(batch)))
        if any(s != shapes[0] for s in shapes):
            raise SystemExit(f"{view_set}: the pipelines make different batches: {shapes}")
        for _ in range(args.repeats):
            for run in runs:
                run.measure(args.batches)
        rows.append((view_set, len(shapes[0]), shapes[0][0], runs))
    print()
    print(f"{'views':<5}  {'pipeline':<52}  {'images/s per core':>24}  {'vs official':>15}")
    print(f"{'':<5}  {'':<52}  {'median':>11}  {'best':>11}  {'median':>7}  {'best':>6}")
    for view_set, tensors, shape, runs in rows:
        official = runs[0]
        for run in runs:
            note = ""
            if run.finish is not None:
                note = f"  ({statistics.median(run.finish_share):.0%} of it in BatchViews)"
            print(f"{view_set:<5}  {run.name:<52}  {statistics.median(run.rates):11.0f}  {max(run.rates):11.0f}  "
                  f"{statistics.median(run.rates) / statistics.median(official.rates):6.2f}x  "
                  f"{max(run.rates) / max(official.rates):5.2f}x{note}")
        for run, where in ((runs[2], "views on the CPU"), (runs[3], "views on a GPU, CPU part only")):
            ratio = statistics.median(run.rates) / statistics.median(official.rates)
            print(f"{view_set:<5}  goal batched >= {GOAL:.0f}x official per core, {where}: "
                  f"{'met' if ratio >= GOAL else 'NOT met'} ({ratio:.2f}x)")
        print(f"{view_set:<5}  ({tensors} image tensors of {shape} per batch)")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
