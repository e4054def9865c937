"""One training loop for every paper, driven by a :class:`TrainConfig`.

What it guarantees:

* Reproducible and resumable. At the start of every epoch the RNGs are seeded from
  ``(seed, epoch)`` and the sampler is told the epoch, so an epoch's batches, augmentations
  and dropout depend on nothing that happened before it. A checkpoint is written atomically
  after every epoch; with ``resume=True`` an interrupted run continues from the last one and
  ends bit-for-bit where an uninterrupted run would (on the CPU; CUDA kernels may not be
  deterministic).
* Nothing is lost. A NaN or infinite loss stops training at once with a message naming the
  epoch and step; the last checkpoint on disk is the last good epoch.
* Model selection as the official scripts do it, and labelled so. ``evaluate_fn`` (the selection
  test) runs on the configured schedule (:meth:`TrainConfig.scheduled_evaluation`) and after the
  last epoch. Each of ``config.keeps`` (:class:`~.config.Keep`) keeps the scheduled epoch with the
  best score of its own (e.g. MITML's four: rank-1 and mAP of each direction) in
  ``best_<name>.pt``, breaking ties as the script does; the last epoch's weights stay in
  ``last.pt``. Only scheduled tests compete (the scripts never test an off-schedule last epoch);
  with no schedule the last epoch is the only candidate. What is kept travels in ``last.pt``, so
  a resumed run selects exactly as an uninterrupted one, and a changed rule is refused on resume.
"""

from __future__ import annotations

import csv
import io
import os
import random
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..progress import progress
from .checkpoint import CheckpointError, load_checkpoint, load_model_state, save_atomic
from .config import TrainConfig
from .runlock import run_lock

LAST = "last.pt"
LOG = "log.csv"
# Config fields that may change between an interrupted run and its resumption (not the test schedule or the kept
# checkpoints: a changed selection rule would mix two rules in one run's choice).
RESUMABLE_CHANGES = {"epochs", "out_dir", "resume", "progress", "device", "compile"}


def kept_path(out_dir: Path | str, name: str) -> Path:
    """Where the checkpoint kept under ``name`` (a :class:`~.config.Keep`) is written."""
    return Path(out_dir) / f"best_{name}.pt"


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message says where and what to try."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training: one line saying which checkpoint holds what, and how to resume (IPython shows the
    line instead of a traceback)."""

    def _render_traceback_(self) -> list[str]:  # IPython's hook for how an exception is shown
        return [str(self)]


class TrainingFailed(RuntimeError):
    """The machine ran out of something (GPU memory, a loader process); the message says what and what to try."""


@dataclass
class TrainResult:
    """What a training run produced: its per-epoch history and where its checkpoints are."""

    history: list[dict]
    checkpoint: Path
    last_metrics: dict | None = None
    # Per kept checkpoint (config.keeps' names): {"epoch" (1-based), "value" (its score), "scores" (every score of the
    # selection test at that epoch), "checkpoint" (the file)}; a keep no scheduled test has set is absent.
    selected: dict = field(default_factory=dict)
    resumed_from: int | None = None
    extra: dict = field(default_factory=dict)


def _distributed() -> tuple[int, int]:
    """(rank, world size) of an initialised process group, else (0, 1)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), Python's ``random`` and NumPy's global generator."""
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch: a fixed function of the run's seed and the epoch number."""
    return (seed * 1_000_003 + epoch * 7919) % 2**31


def build_optimizer(model: nn.Module, config: TrainConfig, criterion: nn.Module | None = None) -> torch.optim.Optimizer:
    """The paper's optimiser over the model's parameter groups (each with its own base lr), plus the
    criterion's when it declares any (``criterion.param_groups(lr)``: a loss with trainable layers)."""
    if hasattr(model, "param_groups"):
        groups = [dict(g) for g in model.param_groups(config.lr)]
    else:
        groups = [{"name": "every parameter", "params": [p for p in model.parameters() if p.requires_grad], "lr": config.lr}]
    if criterion is not None and hasattr(criterion, "param_groups"):
        groups += [dict(g) for g in criterion.param_groups(config.lr) if g["params"]]
    for group in groups:
        group["base_lr"] = group["lr"]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
                               nesterov=config.nesterov and config.momentum > 0)
    return torch.optim.Adam(groups, lr=config.lr, weight_decay=config.weight_decay)


def _to_device(value: object, device: torch.device, channels_last: bool) -> object:
    if isinstance(value, torch.Tensor):
        value = value.to(device, non_blocking=True)
        if channels_last and value.ndim == 4 and value.is_floating_point():
            value = value.contiguous(memory_format=torch.channels_last)
        return value
    if isinstance(value, (list, tuple)):
        return type(value)(_to_device(v, device, channels_last) for v in value)
    return value


def _autocast(config: TrainConfig, device: torch.device):
    if device.type != "cuda" or config.amp == "off":
        return torch.autocast(device.type, enabled=False)
    return torch.autocast("cuda", dtype=torch.bfloat16 if config.amp == "bf16" else torch.float16)


def _write_log(path: Path, history: list[dict]) -> None:
    columns: list[str] = []
    for row in history:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(history)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(buffer.getvalue())
    os.replace(tmp, path)


def default_unpack(batch) -> tuple[tuple, torch.Tensor]:
    """``(visible, infrared, visible_pids, infrared_pids)`` -> ``((visible, infrared), labels)``."""
    visible, infrared, visible_pids, infrared_pids = batch
    return (visible, infrared), torch.cat([visible_pids, infrared_pids])


def train(
    model: nn.Module,
    criterion: nn.Module,
    loader: Iterable,
    config: TrainConfig,
    evaluate_fn: Callable[[nn.Module], dict] | None = None,
    on_step: Callable[[int, int], None] | None = None,
    unpack: Callable[[object], tuple[tuple, torch.Tensor]] = default_unpack,
    on_epoch_start: Callable[[int], None] | None = None,
    batch_transform: Callable[[object], object] | None = None,
) -> TrainResult:
    """Train ``model`` with ``criterion`` on ``loader``'s batches.

    ``unpack(batch) -> (inputs, labels)``: the model is called as ``model(*inputs)`` and the
    criterion with ``labels`` (default: ``(visible, infrared, visible_pids, infrared_pids)``
    batches; a paper's :class:`~vireid_lib.interface.BatchLayout` supplies its own).
    ``on_epoch_start(epoch)`` runs after the epoch's seeding, before its first step.
    ``batch_transform(batch)`` runs on every batch once it is on the run's device, before ``unpack``:
    work done on whole batches there instead of per sample in the loader (e.g. the augmentation of
    :class:`vireid_lib.data.batched.BatchViews`, ``config.augment="device"``); it draws from the
    device's generator, which the epoch's seeding covers.
    ``loader.sampler`` and the criterion (if they have ``set_epoch``) are told the epoch. ``on_step(epoch, step)``
    is called before every step (progress hooks, tests that interrupt a run). The run folder
    is locked for the duration (:mod:`.runlock`): a second process training into it fails.
    """
    if (config.augment == "device") != (batch_transform is not None):
        raise ValueError(f"TrainConfig.augment={config.augment!r} but batch_transform is "
                         f"{'missing' if batch_transform is None else 'given'}: 'device' augmentation needs the "
                         "transform that makes the views (vireid_lib.data.batched.BatchViews), 'loader' none.")
    hooks = dict(evaluate_fn=evaluate_fn, on_step=on_step, unpack=unpack, on_epoch_start=on_epoch_start,
                 batch_transform=batch_transform)
    rank, _ = _distributed()
    if rank > 0:  # rank 0 alone writes the folder, and holds its lock
        return _train(model, criterion, loader, config, **hooks)
    with run_lock(config.out_dir):
        return _train(model, criterion, loader, config, **hooks)


def _train(model: nn.Module, criterion: nn.Module, loader: Iterable, config: TrainConfig, evaluate_fn, on_step, unpack,
           on_epoch_start, batch_transform) -> TrainResult:
    device = torch.device(config.device)
    rank, world = _distributed()
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.to(device)
    criterion.to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, config, criterion)
    # Under torchrun every process trains a replica on its own share of the batches; DDP
    # averages the gradients, so the replicas stay identical. Only rank 0 writes files.
    network = model if world == 1 else DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None)
    if config.compile:  # the training steps only; checkpoints and evaluation use the plain module's weights
        network = torch.compile(network)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and config.amp == "fp16")
    history: list[dict] = []
    selected: dict[str, dict] = {}  # keep name -> {"epoch", "value", "scores"}
    start_epoch, resumed_from = 0, None
    last_path = out_dir / LAST
    if config.resume and last_path.is_file():
        state = load_checkpoint(last_path)
        _check_resumable(state.get("config", {}), config, last_path)
        load_model_state(model, state["model"], str(last_path))
        if state.get("criterion"):
            criterion.load_state_dict(state["criterion"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        history = list(state["history"])
        selected = {name: dict(entry) for name, entry in state.get("selected", {}).items()}
        start_epoch = resumed_from = int(state["epoch"]) + 1
        if start_epoch > config.epochs:  # never relabel a longer run's weights as a shorter one's
            raise CheckpointError(
                f"{last_path} has trained {start_epoch} epochs, more than epochs={config.epochs}: its weights are not a "
                f"{config.epochs}-epoch model. Ask for epochs={start_epoch} to evaluate it, use a new out_dir, or "
                f"resume=False (--no-resume) to train {config.epochs} epochs from scratch.")
        if rank == 0:
            _repair_kept(selected, state, out_dir)
    sampler = getattr(loader, "sampler", None)

    last_metrics = history[-1].get("metrics") if history else None
    shape = None  # the last batch's first input, for an out-of-memory message
    try:
        for epoch in range(start_epoch, config.epochs):
            seed_everything(epoch_seed(config.seed, epoch) + rank)
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(epoch)
            if hasattr(criterion, "set_epoch"):  # a loss whose terms depend on the epoch (a term switched on later)
                criterion.set_epoch(epoch)
            if on_epoch_start is not None:
                on_epoch_start(epoch)
            factor = config.lr_factor(epoch)
            for group in optimizer.param_groups:
                group["lr"] = group["base_lr"] * factor
            model.train()
            criterion.train()
            sums: dict[str, float] = {}
            steps, images, start = 0, 0, time.perf_counter()
            bar = progress(loader, desc=f"epoch {epoch + 1}/{config.epochs}", enabled=config.progress and rank == 0,
                           unit="step")
            for step, batch in enumerate(bar):
                if on_step is not None:
                    on_step(epoch, step)
                if batch_transform is not None:
                    batch = batch_transform(_to_device(batch, device, False))
                inputs, labels = unpack(batch)
                inputs = _to_device(tuple(inputs), device, config.channels_last)
                shape = tuple(inputs[0].shape) if isinstance(inputs[0], torch.Tensor) else None
                labels = labels.to(device)
                with _autocast(config, device):
                    outputs = network(*inputs)
                    losses = criterion(outputs, labels)
                loss = losses["loss"]
                finite = torch.isfinite(loss.detach()).float()
                if world > 1:  # every rank must stop together, or the others wait forever in backward
                    dist.all_reduce(finite, op=dist.ReduceOp.MIN)
                if not finite:
                    kept = f"{last_path} holds epoch {history[-1]['epoch']}" if history else "no checkpoint was written yet"
                    terms = ", ".join(f"{k}={v.item():.4g}" for k, v in losses.items())
                    raise TrainingDiverged(f"loss became {loss.item()} at epoch {epoch + 1}, step {step + 1} ({terms}); "
                                           f"training stopped and {kept}. {_diverged_advice(config)}")
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                for name, value in losses.items():
                    sums[name] = sums.get(name, 0.0) + value.detach().item()
                steps += 1
                images += len(labels)
                if config.progress:
                    bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{config.lr * factor:.2e}", refresh=False)
            broken = [name for name, tensor in model.state_dict().items()
                      if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
            if broken:  # a finite loss can hide blown-up BatchNorm statistics until test time
                raise TrainingDiverged(
                    f"after epoch {epoch + 1} the model holds NaN or infinite values in {broken[:3]}; training stopped "
                    f"and {last_path if history else 'no checkpoint'} keeps the last good epoch. "
                    f"{_diverged_advice(config)}")
            if steps == 0:
                raise TrainingDiverged(f"epoch {epoch + 1} had no batches: the training loader is empty; check the sampler.")
            seconds = time.perf_counter() - start
            # "lr" is the base rate; each parameter group scales it by its own factor.
            row = {"epoch": epoch + 1, "lr": config.lr * factor, "seconds": round(seconds, 3),
                   "images_per_s": round(images / seconds, 1), **{k: v / steps for k, v in sums.items()}}
            scheduled = config.scheduled_evaluation(epoch)
            evaluate_now = evaluate_fn is not None and (epoch + 1 == config.epochs or scheduled)
            improved: list[str] = []
            if evaluate_now:
                # Only numbers go into checkpoints: weights_only loading accepts nothing else.
                scores = [None]
                if rank == 0:
                    scores[0] = {k: float(v) for k, v in dict(evaluate_fn(model)).items() if isinstance(v, (int, float))}
                if world > 1:
                    dist.broadcast_object_list(scores, src=0)
                last_metrics = scores[0]
                model.train()
                row.update({f"test_{k}": v for k, v in last_metrics.items()})
                # Only the scheduled evaluations compete (the official scripts never test an off-schedule last epoch).
                if scheduled or not config.eval_every:
                    improved = _select(config.keeps, selected, last_metrics, epoch + 1)
            history.append(row)
            if rank == 0:
                # A criterion with layers of its own (a loss's projection head) travels too, so resuming is exact. The
                # kept checkpoints are written after last.pt, which records them: a crash in between is repaired on resume.
                save_atomic({"model": model.state_dict(), "criterion": criterion.state_dict(),
                             "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                             "epoch": epoch, "history": history, "selected": selected, "config": config.to_dict()}, last_path)
                for name in improved:
                    save_atomic(_kept_state(model.state_dict(), name, selected[name], config.to_dict()),
                                kept_path(out_dir, name))
                _write_log(out_dir / LOG, history)
            if world > 1:
                dist.barrier()  # no rank starts the next epoch before the checkpoint is on disk
    except KeyboardInterrupt:
        kept = f"{last_path} holds epoch {len(history)}" if history else "no epoch finished, so nothing was saved"
        raise TrainingInterrupted(f"interrupted in epoch {len(history) + 1} of {config.epochs}: {kept}. Run the same "
                                  "command (or notebook) again to resume from there.") from None
    except torch.cuda.OutOfMemoryError as err:
        raise TrainingFailed(
            f"out of GPU memory in epoch {len(history) + 1} ({device}, inputs of shape {shape}): "
            f"{str(err).splitlines()[0]} Try amp='bf16', "
            "channels_last=True, or a smaller input (height / width) or batch (num_ids / num_per_modality) for a quick "
            "experiment; the paper's settings need the memory they need. The last checkpoint is intact.") from err
    except RuntimeError as err:
        if "DataLoader worker" not in str(err) or "killed" not in str(err):
            raise
        raise TrainingFailed(
            f"a data loader process was killed in epoch {len(history) + 1} ({str(err).splitlines()[0]}), most often "
            "by the system when memory runs out: use fewer workers (workers=0 loads in the main process), or free "
            "memory, then resume. The last checkpoint is intact.") from err
    return TrainResult(history=history, checkpoint=last_path, last_metrics=last_metrics,
                       selected={name: {**entry, "checkpoint": kept_path(out_dir, name)} for name, entry in selected.items()},
                       resumed_from=resumed_from)


def _diverged_advice(config: TrainConfig) -> str:
    # A resumed run keeps its settings (another lr is refused as another run), so the advice starts over.
    precision = f" or amp='off' (now {config.amp!r})" if config.amp != "off" else ""
    return (f"Start over with a lower lr (now {config.lr:g}; try {config.lr / 10:g}){precision}: resume=False "
            "(--no-resume) or a new out_dir, since a resumed run keeps its lr. If it recurs, check the data for corrupt "
            "images (python -m vireid_lib.data summary ... --check-images) or start from pretrained weights.")


def _select(keeps, selected: dict[str, dict], scores: dict[str, float], epoch: int) -> list[str]:
    """Update ``selected`` with this epoch's ``scores`` for every keep it improves; their names."""
    improved = []
    for keep in keeps:
        if keep.key not in scores:
            raise KeyError(f"the selection test returned {sorted(scores)}, but the kept checkpoint {keep.name!r} is "
                           f"chosen by {keep.key!r}: the evaluation function must score it.")
        value = scores[keep.key]
        if keep.better(value, selected.get(keep.name, {}).get("value")):
            selected[keep.name] = {"epoch": epoch, "value": value, "scores": dict(scores)}
            improved.append(keep.name)
    return improved


def _kept_state(weights: dict, name: str, entry: dict, config: dict) -> dict:
    # "epoch" is 0-based, as in last.pt
    return {"model": weights, "epoch": entry["epoch"] - 1, "kept": name, "value": entry["value"],
            "scores": entry["scores"], "config": config}


def _repair_kept(selected: dict[str, dict], state: dict, out_dir: Path) -> None:
    """A run stopped between writing last.pt and a kept checkpoint it selected at that same epoch: last.pt holds
    exactly those weights, so the kept file is rewritten from it. Any other mismatch cannot be repaired."""
    epoch = int(state["epoch"]) + 1
    for name, entry in selected.items():
        path = kept_path(out_dir, name)
        on_disk = load_checkpoint(path).get("epoch") if path.is_file() else None
        if on_disk is not None and int(on_disk) + 1 == entry["epoch"]:
            continue
        if entry["epoch"] != epoch:
            raise CheckpointError(
                f"{path} should hold epoch {entry['epoch']} (kept as {name!r} in {out_dir / LAST}) but holds "
                f"{'nothing' if on_disk is None else f'epoch {int(on_disk) + 1}'}; the selected weights are lost. Start "
                "over with resume=False (--no-resume), or evaluate the last epoch only (selection='last').")
        save_atomic(_kept_state(state["model"], name, entry, state["config"]), path)


def _flatten(value: object, prefix: str = "") -> dict[str, object]:
    if isinstance(value, dict):
        out: dict[str, object] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: list(value) if isinstance(value, tuple) else value}


def _check_resumable(saved: dict, config: TrainConfig, path: Path) -> None:
    """The checkpoint's run must be this run: every field of the configuration and of the run's
    identity (data, transforms, sampler, model) equal, but those a resumed run may change."""
    current = _flatten(config.to_dict())
    before = _flatten(saved)
    changed = sorted(k for k in set(current) | set(before)
                     if k.split(".")[0] not in RESUMABLE_CHANGES and before.get(k, "<absent>") != current.get(k, "<absent>"))
    if changed:
        details = "; ".join(f"{k}: {before.get(k, '<absent>')!r} -> {current.get(k, '<absent>')!r}" for k in changed)
        raise CheckpointError(
            f"{path} was written by a run with other settings ({len(changed)} differ: {details}). Resuming would mix "
            "two experiments: use a new out_dir, or resume=False (--no-resume) to start over in this one."
        )
    if saved.get("epochs", config.epochs) != config.epochs:
        warnings.warn(f"resuming {path} with epochs={config.epochs} (it was started with {saved['epochs']}).", stacklevel=3)
