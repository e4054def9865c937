"""Test-feature extraction with and without the channels-last layout, side by side in one run.

    python benchmarks/extract_bench.py [--model agw] [--images 128] [--device cpu] [--batch-size 64]

Extracts the same synthetic SYSU-MM01 query images at the paper's input size (random weights:
speed does not depend on them) through the workbook's extractor, first in the default layout
(the reference), then with ``channels_last=True``, and prints images/s, the ratio and the largest
feature difference. The first batch of each is a warm-up and is not timed.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from vireid_lib.experiments.runner import prepare


def rate(run, records, batch_size: int) -> tuple[float, np.ndarray]:
    extract = run.extractor(batch_size=batch_size)
    extract(records[:batch_size])  # warm-up: allocator, kernels, layout conversion of the weights
    if run.train_config.device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    features = extract(records)
    if run.train_config.device.startswith("cuda"):
        torch.cuda.synchronize()
    return len(records) / (time.perf_counter() - start), features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="agw")
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    common = dict(pretrained=False, device=args.device, workers=0, progress=False, synthetic_ids=40)
    plain = prepare(args.model, "sysu", **common)
    fast = prepare(args.model, "sysu", channels_last=True, **common)
    records = plain.reader.query()[: args.images]
    reference, base = rate(plain, records, args.batch_size)
    faster, features = rate(fast, records, args.batch_size)
    print(f"torch {torch.__version__}, device {plain.train_config.device}, {args.model} at "
          f"{plain.transform.height}x{plain.transform.width}, {len(records)} images, batch {args.batch_size}")
    print(f"reference (default layout): {reference:8.1f} images/s")
    print(f"channels-last:              {faster:8.1f} images/s  ({faster / reference:.2f}x the reference; "
          f"largest feature difference {np.abs(features - base).max():.1e})")


if __name__ == "__main__":
    main()
