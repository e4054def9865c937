"""Data-loading speed: the HITSZ-VCM tracklet loader and the SYSU-MM01 training cache.

    python benchmarks/data_bench.py [--vcm ROOT] [--sysu ROOT] [--workers 2]

Without roots it generates the synthetic twins in a temporary folder (and times that too).
Every loader figure is printed beside a reference measured in the same run: bare image
decoding (PIL open + RGB convert) of the same frames, so the ratio shows what the sampling,
resizing to 288x144, augmentation and batching cost on top, whatever the machine.
The goal for the video loader is 500 frames/s per worker at 288x144.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from vireid_lib.data import HITSZVCM, SYSUMM01
from vireid_lib.data.cache import load_image_cache
from vireid_lib.data.datasets import PairedTrackletDataset, TrackletDataset
from vireid_lib.data.io import read_image
from vireid_lib.data.records import INFRARED, VISIBLE
from vireid_lib.data.samplers import TrackletSampler
from vireid_lib.data.synthetic import SyntheticConfig, write_regdb, write_sysu, write_vcm
from vireid_lib.data.transforms import TransformConfig, build_test_transform, build_train_transform

GOAL_FPS = 500.0
SEQ_LEN = 6


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def decode_rate(paths: list[Path]) -> float:
    seconds, _ = timed(lambda: [read_image(p) for p in paths])
    return len(paths) / seconds


def loader_rate(loader: DataLoader, frames_per_item: int, max_batches: int) -> float:
    it = iter(loader)
    # Worker start-up is not throughput, nor are the batches prefetched while it lasted.
    for _ in range(1 + loader.num_workers * (loader.prefetch_factor or 0)):
        next(it)
    frames = 0
    start = time.perf_counter()
    for batch in itertools.islice(it, max_batches):
        frames += batch[0].shape[0] * frames_per_item
    return frames / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vcm", type=Path)
    parser.add_argument("--sysu", type=Path)
    parser.add_argument("--workers", type=int, default=2, help="also measure a DataLoader with this many workers")
    parser.add_argument("--batches", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(1)  # one worker = one core; the figures are per worker
    tmp = tempfile.TemporaryDirectory()
    rows = []
    if args.vcm is None or args.sysu is None:
        base = Path(tmp.name)
        seconds, _ = timed(lambda: (write_sysu(base / "sysu", SyntheticConfig()), write_regdb(base / "regdb", SyntheticConfig()),
                                    write_vcm(base / "vcm", SyntheticConfig(ids=24))))
        rows.append(("synthetic sysu + regdb + vcm, default sizes", f"{seconds:.1f} s", "goal < 30 s"))
        args.vcm = args.vcm or base / "vcm"
        args.sysu = args.sysu or base / "sysu"

    cfg = TransformConfig(height=288, width=144)
    vcm = HITSZVCM(args.vcm)
    split = vcm.split("ir2rgb")
    records = split.query + split.gallery
    sample_paths = [r.frames[i] for r in records[:60] for i in range(0, len(r.frames), 2)]
    reference = decode_rate(sample_paths)
    rows.append(("reference: bare decode (PIL open + convert RGB)", f"{reference:.0f} frames/s", "1.00x"))

    # repeat the test tracklets so the measurement never runs out of them
    test_set = TrackletDataset(records * (2 + args.batches * 8 // len(records)), SEQ_LEN, build_test_transform(cfg))
    test_loader = DataLoader(test_set, batch_size=8, num_workers=0)
    fps = loader_rate(test_loader, SEQ_LEN, args.batches)
    rows.append(("vcm test loader, 1 process, 288x144", f"{fps:.0f} frames/s", f"{fps / reference:.2f}x decode, {fps / GOAL_FPS:.2f}x goal"))

    visible, infrared = vcm.train()
    paired = PairedTrackletDataset(
        TrackletDataset(visible, SEQ_LEN, build_train_transform(cfg, VISIBLE), train=True),
        TrackletDataset(infrared, SEQ_LEN, build_train_transform(cfg, INFRARED), train=True),
    )
    # A fixed epoch longer than the measurement, so no loader runs dry and restarts mid-way.
    sampler = TrackletSampler([r.pid for r in visible], [r.pid for r in infrared], seed=0,
                              epoch_length=args.batches + 16)
    for workers in (0, args.workers):
        loader = DataLoader(paired, batch_size=sampler.batch_size, sampler=sampler, num_workers=workers,
                            persistent_workers=workers > 0)
        # each item is one visible and one infrared clip of SEQ_LEN frames
        fps = loader_rate(loader, 2 * SEQ_LEN, args.batches)
        label = "1 process" if workers == 0 else f"{workers} workers (total)"
        rows.append((f"vcm train loader (sampler, per-frame aug), {label}", f"{fps:.0f} frames/s",
                     f"{fps / reference:.2f}x decode" + (f", {fps / GOAL_FPS:.2f}x goal" if workers == 0 else "")))

    sysu = SYSUMM01(args.sysu)
    sysu_visible, _ = sysu.train()
    cache = Path(tmp.name) / "cache"
    seconds, _ = timed(lambda: load_image_cache(sysu_visible, sysu.root, "bench", cache_dir=cache, progress=False))
    rows.append((f"sysu cache build, {len(sysu_visible)} images to 144x288 Lanczos", f"{len(sysu_visible) / seconds:.0f} images/s",
                 f"{seconds:.2f} s"))
    seconds, _ = timed(lambda: load_image_cache(sysu_visible, sysu.root, "bench", cache_dir=cache, progress=False))
    rows.append(("sysu cache reuse (fingerprint + memory map)", f"{seconds * 1000:.0f} ms", ""))

    width = max(len(r[0]) for r in rows)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>16}  {note}")
    tmp.cleanup()


if __name__ == "__main__":
    main()
