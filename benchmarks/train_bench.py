"""Training speed at the paper's input size with AMP on and off, beside the data loader alone.

    python benchmarks/train_bench.py [--model agw|ivreid|mmn|mce|mitml|cst|star|...] [--device cuda] [--steps 20] [--batch-ids N]
        [--small] (the CPU size: ResNet-18, 64 x 32, the paper's smoke settings)
        [--augment loader|device|both] [--fed-steps 10] [--fed-rounds 3] [--arch resnet18 --height 64 --width 32]

Any declared paper (vireid_lib.papers), at the paper's input size: image papers on synthetic
SYSU-MM01 report sampled images/s (MMN's middle-modality images are made inside the step and not
counted; MCE's batch [V, I, CA] counts all three views); video papers (the paper's S frames and
batch, e.g. CST's 4 ids x 2 tracklets in three views; STAR's keypoints read beside them)
tracklets/s and frames/s. Every run prints the network's parameters, this run's and at the
paper's size (built on the meta device), and peak memory: the GPU's allocations on CUDA, the
process's peak resident memory on the CPU. On the CPU it ends with the command for a GPU at the
paper's size.

A paper with an epoch-start hook (MCE's memory rebuild, a full pass over the training set) has
it timed too, under each AMP setting: its images/s when the hook reports how many images it
read, and its share of an official-length epoch on the real dataset, estimated from the step
rate measured in the same run (the hook's cost and the epoch's both grow with the training set).

The loader figure (synthetic SYSU-MM01, AGW's cached-array pipeline, the official 8 ids x
(4 + 4) batch) is measured in the same run as the model steps, so the ratio shows which of
the two limits training: if the loader delivers fewer images/s than a step consumes, the GPU
waits. Random weights (pretrained=False): speed does not depend on them.

``--augment`` (image papers) also times training steps fed through the run's own loader, as the
trainer runs them (batch to the device, the views made there when the run augments on the device,
unpack, step), with the views made per sample in the loader processes (``loader``), as whole uint8
batches on the run's device (``device``, :mod:`vireid_lib.data.batched`), or ``both`` in the same
run (blocks of ``--fed-steps`` steps, the modes' blocks alternating ``--fed-rounds`` times, so a shared
machine's load changes touch both alike; the median block is reported); each mode's loader alone is
measured too. Without it the run takes its own mode (``prepare``'s
``augment="auto"``: on the device under CUDA, in the loader on the CPU) and no loader-fed step is timed.
"""

from __future__ import annotations

import argparse
import itertools
import resource
import statistics
import sys
import time
from dataclasses import replace

import torch

from vireid_lib.benchmarks import benchmarks
from vireid_lib.experiments.runner import prepare
from vireid_lib.papers import papers

# Training identities of each dataset: the classifier size of a network built at the paper's size.
TRAIN_IDS = {dataset: b.published["train_ids"] for dataset, b in benchmarks().items()}


def to_device(value, device: torch.device):
    """Tensors (also inside lists and tuples) moved to ``device``, as the trainer moves a batch."""
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, (list, tuple)):
        return type(value)(to_device(v, device) for v in value)
    return value


def model_inputs(run, batch, device: torch.device) -> tuple[tuple, torch.Tensor]:
    """A loader batch as the trainer feeds it to the model: on the device, made into views there when the run
    augments on the device (``run.batch_transform``, before unpacking), unpacked into the paper's inputs and labels."""
    if run.batch_transform is not None:
        batch = run.batch_transform(to_device(batch, device))
    inputs, labels = run.batch.unpack(batch)
    return tuple(to_device(x, device) for x in inputs), labels.to(device)


def paper_size_parameters(run, dataset: str) -> int:
    """Parameters of the paper's network at the paper's own settings (its recipe: backbone, input size, frames),
    built on the meta device, so no memory or weights are needed."""
    recipe = run.declaration.recipe_for(dataset)
    with torch.device("meta"):
        model = run.declaration.build(TRAIN_IDS[dataset], recipe, dict(pretrained=False, weights_file=None))
    return sum(p.numel() for p in model.parameters())


def peak_host_gib() -> float:
    """The process's peak resident memory so far (Linux reports KiB): on the CPU, the training step's ceiling."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def gpu_command(argv: list[str]) -> str:
    """This command for a GPU at the paper's own size: --device cuda, without the options that shrink the run."""
    shrinking = {"--device", "--arch", "--height", "--width", "--seq-len", "--steps", "--batch-ids", "--synthetic-ids",
                 "--workers", "--loader-batches"}
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=")[0]
        if name == "--small":
            continue
        if name in shrinking:
            skip = "=" not in arg
            continue
        kept.append(arg)
    return " ".join(["PYTHONPATH=. python benchmarks/train_bench.py", *kept, "--device cuda"])


def images_per_second(run, steps: int, amp: str) -> tuple[float, float]:
    """Training-step throughput on one fixed batch (no loader), and peak memory in GiB: the GPU's allocations on
    CUDA, the process's peak resident memory on the CPU."""
    device = torch.device(run.train_config.device)
    model, criterion = run.model.to(device).train(), run.criterion.to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    inputs, labels = model_inputs(run, next(iter(run.loader)), device)
    sampled = sum(len(x) for x in inputs if is_image_input(x))  # keypoints and other side inputs are not counted
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
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else peak_host_gib()
    return steps * sampled / seconds, peak


class FedSteps:
    """Training steps that take every batch from the run's own loader, as the trainer takes them.

    One loader iterator for the whole measurement. Before each timed block, ``1 + workers x prefetch_factor``
    untimed steps: the workers' start-up, and the batches they queued while this loader waited (a loader slower
    than the step has emptied its queue by then), so blocks of two modes can alternate.
    """

    def __init__(self, run, amp: str) -> None:
        self.run, self.amp = run, amp
        self.device = torch.device(run.train_config.device)
        self.model, self.criterion = run.model.to(self.device).train(), run.criterion.to(self.device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=1e-3, momentum=0.9)
        self.batches = iter(run.loader)
        self.settle = 1 + run.loader.num_workers * (run.loader.prefetch_factor or 0)

    def step(self) -> int:
        """One training step; the number of images it took."""
        inputs, labels = model_inputs(self.run, next(self.batches), self.device)
        dtype = torch.bfloat16 if self.amp == "bf16" else torch.float16
        with torch.autocast(self.device.type, dtype=dtype, enabled=self.amp != "off" and self.device.type == "cuda"):
            loss = self.criterion(self.model(*inputs), labels)["loss"]
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return sum(len(x) for x in inputs if is_image_input(x))

    def rate(self, steps: int) -> float:
        """Images/s over ``steps`` timed steps."""
        for _ in range(self.settle):
            self.step()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        images = sum(self.step() for _ in range(steps))
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return images / (time.perf_counter() - start)


def hook_seconds(run, amp: str) -> tuple[float, int | None]:
    """Seconds of one call of the paper's epoch-start hook under ``amp``, and the images it reports reading."""
    hook = run.declaration.hooks.on_epoch_start
    run.train_config = replace(run.train_config, amp=amp)
    device = torch.device(run.train_config.device)
    run.model.to(device), run.criterion.to(device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    stats = hook(run, 0) or {}
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, stats.get("images")


def is_image_input(x: torch.Tensor) -> bool:
    """An image or clip batch (``[..., 3, H, W]``), not a side input such as keypoints ``[B, S, 17, 3]``."""
    return x.is_floating_point() and x.dim() >= 4 and x.shape[-3] == 3


def batch_images(run, batch) -> int:
    """The model images a loader batch stands for: every view of every sampled item (keypoints and other side
    inputs not counted); uint8 images handed over for the device's views count as the views they become."""
    if run.batch_transform is not None:
        return len(batch[2]) * len(run.batch.input_order())
    return sum(len(x) for x in run.batch.unpack(batch)[0] if is_image_input(x))


def loader_rate(run, batches: int) -> float:
    it = iter(run.loader)
    next(it)
    start = time.perf_counter()
    count = sum(batch_images(run, b) for b in itertools.islice(it, batches))
    return count / (time.perf_counter() - start)


def official_epoch_images(run) -> int:
    """Images the steps of one official-length epoch sample on this training set: int(N / (P K)) + 1 batches
    (N the larger modality), each of every view of P x K pairs."""
    pairs = run.loader.dataset
    per_modality = run.recipe.num_ids * run.recipe.num_per_modality
    batches = max(len(pairs.visible), len(pairs.infrared)) // per_modality + 1
    views = len(run.batch.input_order())
    return batches * per_modality * views


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(papers()), default="agw")
    parser.add_argument("--seq-len", type=int, default=None, help="frames per tracklet (default: the paper's)")
    parser.add_argument("--loader-batches", type=int, default=10)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-ids", type=int, default=None, help="identities per batch (default: the paper's)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--synthetic-ids", type=int, default=None, help="identities of the synthetic twin (default 40)")
    parser.add_argument("--epoch", type=int, default=None,
                        help="the 0-based epoch a criterion with epoch-dependent terms is told (default: the recipe's "
                             "last, e.g. MITML's step with its confusion term on)")
    parser.add_argument("--augment", choices=("loader", "device", "both"), default=None,
                        help="also time steps fed through the run's loader with the views made per sample in the "
                             "loader, as whole batches on the device, or both (default: neither, the run's own mode)")
    parser.add_argument("--fed-steps", type=int, default=10, help="timed loader-fed steps per block (--augment)")
    parser.add_argument("--fed-rounds", type=int, default=3,
                        help="blocks per --augment mode, the modes' blocks alternating (a shared machine's load "
                             "changes touch both alike); the median is reported")
    parser.add_argument("--arch", choices=("resnet50", "resnet34", "resnet18"), default=None,
                        help="backbone (default: the paper's)")
    parser.add_argument("--small", action="store_true",
                        help="the CPU size: ResNet-18, 64 x 32, and the paper's smoke settings for its own fields "
                             "(vireid_lib.papers: e.g. CST's tube, heads and S = 4)")
    parser.add_argument("--height", type=int, default=None, help="input height (default: the paper's)")
    parser.add_argument("--width", type=int, default=None, help="input width (default: the paper's)")
    args = parser.parse_args()
    paper = papers()[args.model]
    common = dict(pretrained=False, device=args.device, workers=args.workers, num_ids=args.batch_ids, progress=False,
                  batches_per_epoch=1000, synthetic_ids=args.synthetic_ids, arch=args.arch, height=args.height,
                  width=args.width)
    if args.augment is not None and paper.video:
        parser.error("--augment compares the two ways of making image views; video papers augment every frame in "
                     "the loader")
    if args.small:
        common.update(arch=args.arch or "resnet18", height=args.height or 64, width=args.width or 32)
        fields = paper.recipe_for("vcm" if paper.video else "sysu").__dataclass_fields__
        common.update({k: v for k, v in paper.smoke.items() if k in fields and k not in ("seq_len", *common)})
        args.seq_len = args.seq_len or paper.smoke.get("seq_len")
    fed = {}
    if paper.video:
        run = prepare(args.model, "vcm", seq_len=args.seq_len, **common)
        frames, unit = run.recipe.seq_len, "tracklets"
        layout = f"{run.recipe.num_ids} ids x {run.recipe.num_per_modality} + {run.recipe.num_per_modality}, S = {frames}"
        layout += ", with keypoints" if run.recipe.skeletons else ""
    else:
        if args.augment is None:
            run = prepare(args.model, "sysu", **common)
        else:  # one run per mode, differing in their loader and batch_transform only
            modes = ("loader", "device") if args.augment == "both" else (args.augment,)
            fed = {mode: prepare(args.model, "sysu", augment=mode, **common) for mode in modes}
            run = fed[modes[0]]
            for other in fed.values():  # one model and criterion (and what the epoch-start hook builds in it)
                other.model, other.criterion = run.model, run.criterion
        frames, unit = 1, "images"
        layout = f"{run.recipe.num_ids} ids x {run.recipe.num_per_modality} + {run.recipe.num_per_modality}"
    # MCE's [V, I, CA]: three views of every sampled pair; STAR's keypoints ride beside the clips and are no view
    views = len(run.batch.input_order()) - (2 if run.recipe.skeletons else 0)
    layout += f", {views} views" if views != 2 else ""
    device = run.train_config.device
    batch = run.loader.batch_size * views
    print(f"torch {torch.__version__}, device {device}"
          + (f" ({torch.cuda.get_device_name()})" if device.startswith("cuda") else "")
          + f", {args.model} at {run.transform.height}x{run.transform.width}, batch {batch} {unit} ({layout})")
    dataset = "vcm" if paper.video else "sysu"
    counts = run.parameter_counts()
    print(f"parameters: this run {counts['network']:,} (+ {counts['criterion']:,} in the criterion); at the paper's "
          f"size ({TRAIN_IDS[dataset]} identities) {paper_size_parameters(run, dataset):,}")
    if hasattr(run.criterion, "set_epoch"):
        epoch = run.train_config.epochs - 1 if args.epoch is None else args.epoch
        run.criterion.set_epoch(epoch)
        print(f"criterion told epoch {epoch} (0-based; --epoch changes it)")
    if not fed:
        loader = loader_rate(run, args.loader_batches)
        print(f"data loader alone ({args.workers} workers, augment={run.train_config.augment}): {loader:8.1f} {unit}/s "
              f"= {loader * frames:8.1f} frames/s")
    else:
        loaders = {mode: loader_rate(fed_run, args.loader_batches) for mode, fed_run in fed.items()}
        for mode, rate in loaders.items():
            made = "views made per sample" if mode == "loader" else "uint8 handed over, views made on the device"
            print(f"data loader alone ({args.workers} workers, augment={mode}: {made}): {rate:8.1f} {unit}/s")
        loader = loaders[modes[0]]
    for amp in (("off", "bf16", "fp16") if device.startswith("cuda") else ("off",)):
        if run.declaration.hooks.on_epoch_start is not None:  # also builds what the criterion needs (MCE's memories)
            seconds, images = hook_seconds(run, amp)
            print(f"epoch-start hook, amp={amp:<4}: {seconds:8.2f} s" + (f" = {images / seconds:8.1f} images/s" if images else ""))
        rate, peak = images_per_second(run, args.steps, amp)
        limit = "loader" if loader < rate else "model"
        memory = "GPU" if device.startswith("cuda") else "host RSS"
        print(f"train step, amp={amp:<4}: {rate:8.1f} {unit}/s = {rate * frames:8.1f} frames/s  peak {peak:5.2f} GiB {memory}  "
              f"(loader/step = {loader / rate:.2f}x; the {limit} limits)")
        if run.declaration.hooks.on_epoch_start is not None:
            epoch = official_epoch_images(run) / rate
            print(f"  one official-length epoch here: {epoch:8.1f} s of steps + {seconds:.1f} s hook: the hook is "
                  f"{100 * seconds / (seconds + epoch):.1f}% of the epoch")
        if fed:
            stepping = {mode: FedSteps(fed_run, amp) for mode, fed_run in fed.items()}
            blocks = {mode: [] for mode in fed}
            for _ in range(args.fed_rounds):
                for mode, steps in stepping.items():
                    blocks[mode].append(steps.rate(args.fed_steps))
            del stepping  # its loader workers end
            fed_rates = {mode: statistics.median(rates) for mode, rates in blocks.items()}
            for mode, rates in blocks.items():
                print(f"  fed by its loader, augment={mode:<6} amp={amp:<4}: {fed_rates[mode]:8.1f} {unit}/s "
                      f"(blocks {min(rates):.1f} - {max(rates):.1f}; {fed_rates[mode] / rate:.2f}x the step alone)")
            if len(fed_rates) == 2:
                print(f"  device / loader augmentation: {fed_rates['device'] / fed_rates['loader']:.2f}x")
    if not device.startswith("cuda"):
        print(f"on a GPU, at the paper's size: {gpu_command(sys.argv[1:])}")


if __name__ == "__main__":
    main()
