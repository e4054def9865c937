"""Skeleton-extraction pipeline speed: ``python -m vireid_lib.skeletons extract`` minus the model.

    python benchmarks/skeleton_bench.py [--vcm ROOT] [--batch-size 32] [--read-threads 4]

Without a root it generates a synthetic HITSZ-VCM (24 identities, 64x128) in a temporary
folder. The estimator is a stand-in that costs next to nothing (a fixed figure scaled to each
image, scores from its brightness), so the figures are what the extraction adds around a pose
model: decoding, batching, appending to HDF5 with a flush per batch. Each is printed beside a
reference measured in the same run, bare image decoding (PIL open + RGB convert) of the same
frames in one thread, so the ratio holds whatever the machine. A real model's frames/s is
bounded by the smaller of this and the model's own rate.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from vireid_lib.data.io import read_image
from vireid_lib.data.synthetic import SyntheticConfig, write_vcm
from vireid_lib.skeletons import ExtractConfig, extract, vcm_frames

FIGURE = np.linspace(0.1, 0.9, 34).reshape(17, 2)


class FigureStandIn:
    """A pose 'estimator' that costs next to nothing, so the pipeline around it is what is timed."""

    name = "bench stand-in"
    device = "cpu"

    def __call__(self, images: list[np.ndarray]) -> np.ndarray:
        out = np.empty((len(images), 17, 3), np.float32)
        for i, image in enumerate(images):
            height, width = image.shape[:2]
            out[i, :, :2] = FIGURE * (width, height)
            out[i, :, 2] = image[::8, ::8].mean() / 255.0
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vcm", type=Path, help="a HITSZ-VCM root (default: a fresh synthetic one)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--read-threads", type=int, default=4, help="also time decoding in this many threads")
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory()
    base = Path(tmp.name)
    rows = []
    if args.vcm is None:
        start = time.perf_counter()
        write_vcm(base / "vcm", SyntheticConfig(ids=24))
        rows.append(("synthetic vcm, 24 ids, 64x128", f"{time.perf_counter() - start:.1f} s", ""))
        args.vcm = base / "vcm"

    frames = vcm_frames(args.vcm)
    start = time.perf_counter()
    for _, path in frames:
        read_image(path)
    reference = len(frames) / (time.perf_counter() - start)
    rows.append((f"reference: bare decode of the {len(frames)} frames, 1 thread", f"{reference:.0f} frames/s", "1.00x"))

    for threads in (0, args.read_threads):
        config = ExtractConfig(batch_size=args.batch_size, read_threads=threads, show_progress=False)
        summary = extract("vcm", args.vcm, base / f"store{threads}.h5", FigureStandIn(), config)
        fps = summary["frames_per_second"]
        label = "decode in the main thread" if threads == 0 else f"{threads} decoding threads"
        rows.append((f"extract, stand-in estimator, batch {args.batch_size}, {label}", f"{fps:.0f} frames/s",
                     f"{fps / reference:.2f}x decode"))
    # A rerun over a finished store only reads its index and skips every frame.
    summary = extract("vcm", args.vcm, base / "store0.h5", FigureStandIn(), config)
    rows.append(("rerun on a finished store (resume check only)", f"{summary['seconds'] * 1000:.0f} ms",
                 f"{summary['frames_written']} frames written"))

    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>16}  {note}")
    tmp.cleanup()


if __name__ == "__main__":
    main()
