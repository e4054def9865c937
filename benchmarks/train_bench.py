"""Training speed at 288x144 with AMP on and off, beside the data loader alone.

    python benchmarks/train_bench.py [--model agw|ivreid|mmn|cst|baseline|...] [--device cuda] [--steps 20] [--batch-ids 8]

Any declared paper (vireid_lib.papers), at the paper's input size: image papers on synthetic
SYSU-MM01 report sampled images/s (MMN's middle-modality images are made inside the step and not
counted); video papers (S = 6 frames, 8 ids x (2 + 2) tracklets) tracklets/s and frames/s.

The loader figure (synthetic SYSU-MM01, AGW's cached-array pipeline, the official 8 ids x
(4 + 4) batch) is measured in the same run as the model steps, so the ratio shows which of
the two limits training: if the loader delivers fewer images/s than a step consumes, the GPU
waits. Random weights (pretrained=False): speed does not depend on them.
"""

from __future__ import annotations

import argparse
import itertools
import time

import torch

from vireid_lib.experiments.runner import prepare
from vireid_lib.papers import papers


def images_per_second(run, steps: int, amp: str) -> tuple[float, float]:
    """Training-step throughput on one fixed batch (no loader), and peak GPU memory in GiB."""
    device = torch.device(run.train_config.device)
    model, criterion = run.model.to(device).train(), run.criterion.to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    inputs, labels = run.declaration.batch.unpack(next(iter(run.loader)))
    inputs, labels = tuple(x.to(device) for x in inputs), labels.to(device)
    sampled = sum(len(x) for x in inputs)
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for step in range(steps + 2):  # two warm-up steps
        if step == 2:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype, enabled=amp != "off" and device.type == "cuda"):
            loss = criterion(model(*inputs), labels)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    return steps * sampled / seconds, peak


def loader_rate(run, batches: int) -> float:
    it = iter(run.loader)
    next(it)
    start = time.perf_counter()
    count = sum(len(b[2]) + len(b[3]) for b in itertools.islice(it, batches))
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(papers()), default="agw")
    parser.add_argument("--seq-len", type=int, default=6)
    parser.add_argument("--loader-batches", type=int, default=10)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-ids", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    paper = papers()[args.model]
    common = dict(pretrained=False, device=args.device, workers=args.workers, num_ids=args.batch_ids, progress=False,
                  batches_per_epoch=1000)
    if paper.video:
        run = prepare(args.model, "vcm", seq_len=args.seq_len, **common)
        frames, unit = args.seq_len, "tracklets"
        layout = f"{args.batch_ids} ids x {run.recipe.num_per_modality} + {run.recipe.num_per_modality}, S = {args.seq_len}"
    else:
        run = prepare(args.model, "sysu", **common)
        frames, unit = 1, "images"
        layout = f"{args.batch_ids} ids x {run.recipe.num_per_modality} + {run.recipe.num_per_modality}"
    device = run.train_config.device
    batch = run.loader.batch_size * 2
    print(f"torch {torch.__version__}, device {device}"
          + (f" ({torch.cuda.get_device_name()})" if device.startswith("cuda") else "")
          + f", {args.model} at {run.transform.height}x{run.transform.width}, batch {batch} {unit} ({layout})")
    loader = loader_rate(run, args.loader_batches)
    print(f"data loader alone ({args.workers} workers): {loader:8.1f} {unit}/s = {loader * frames:8.1f} frames/s")
    for amp in (("off", "bf16", "fp16") if device.startswith("cuda") else ("off",)):
        rate, peak = images_per_second(run, args.steps, amp)
        limit = "loader" if loader < rate else "model"
        print(f"train step, amp={amp:<4}: {rate:8.1f} {unit}/s = {rate * frames:8.1f} frames/s  peak {peak:5.2f} GiB  "
              f"(loader/step = {loader / rate:.2f}x; the {limit} limits)")

if __name__ == "__main__":
    main()
