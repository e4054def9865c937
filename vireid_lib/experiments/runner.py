"""Assemble a run of any declared paper from its declaration: the one runner every notebook uses.

:func:`prepare` reads the paper's :class:`~vireid_lib.interface.Paper` declaration and builds the
data (reader, provenance, training views, sampler, loader), the model, the criterion and the
training configuration. It holds no paper names: what differs between papers is in their
declarations, what differs between datasets (protocols, pictures) in
:class:`~vireid_lib.experiments.image.ImageRun` and :class:`~vireid_lib.experiments.video.VideoRun`.

Parameters: ``None`` means the paper's value. Any parameter named like a field of the paper's
recipe (``epochs``, ``lr``, ``height``, ``arch``, ``tube``, ``fix_dc_head``, ...) replaces that
field, or a field of a structured recipe field (``eval_every`` of its ``selection_rule``); one the
recipe lacks is an error naming the paper.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import asdict, fields, is_dataclass, replace
from pathlib import Path

import torch

from .. import papers
from ..interface import ParameterError
from ..benchmarks import benchmark
from ..data import INFRARED, VISIBLE, provenance
from ..data.cache import load_image_cache
from ..data.datasets import (ImageDataset, PairedImageDataset, PairedTrackletDataset, TrackletDataset,
                             check_skeleton_store)
from ..data.errors import DatasetError
from ..data.skeletons import FILE_NAME as SKELETON_FILE
from ..data.samplers import CrossModalityIdentitySampler, TrackletSampler
from ..data.synthetic import SyntheticConfig, ensure_synthetic
from ..data.synthetic.writers import DEFAULT_CONFIGS
from ..data.batched import LoaderImages, batched_views
from ..data.transforms import TransformConfig, build_views
from ..engine import TrainConfig
from ..paths import resolve
from .common import ExperimentError, PaperRun, check_folder, resolve_device, run_identity, scaled_pad, training_loader
from .image import ImageRun
from .video import VideoRun
from .params import check_amp, check_parameters, paper_value

MODALITIES = {"visible": VISIBLE, "infrared": INFRARED}
RESUMABLE_RECIPE = ("epochs",)  # may grow on resume; the selection rule may not change (the trainer's rule too)


def _coerce(field_type: object, default: object, value: object) -> object:
    """Text from papermill's ``-p`` for a tuple field, e.g. ``"(2, 3, 3)"``, becomes the tuple."""
    if isinstance(default, tuple) and isinstance(value, str):
        return tuple(int(v) for v in re.findall(r"-?\d+", value))
    if isinstance(default, tuple) and isinstance(value, list):
        return tuple(value)
    return value


def resolve_recipe(paper: papers.Paper, dataset: str, overrides: dict) -> papers.Recipe:
    """The paper's recipe for ``dataset`` with every non-``None`` override applied (checked by name).

    A name that is not a field of the recipe may be a field of one of its structured fields (a dataclass
    value such as ``selection_rule``): it replaces that field there.
    """
    recipe = paper.recipe_for(dataset)
    known = {f.name: f for f in fields(recipe)}
    nested = {inner.name: outer for outer in known if is_dataclass(getattr(recipe, outer))
              for inner in fields(getattr(recipe, outer)) if inner.name not in known}
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(k for k in given if k not in known and k not in nested)
    if unknown:
        raise ExperimentError(f"{', '.join(unknown)} {'does' if len(unknown) == 1 else 'do'} not apply to {paper.title} "
                              f"(its recipe has no such field); leave {'it' if len(unknown) == 1 else 'them'} None.")
    changes = {k: _coerce(known[k].type, getattr(recipe, k), v) for k, v in given.items() if k in known}
    try:  # each field's own check (vireid_lib.interface.param), after papermill's text became a tuple
        type(recipe).check(changes)
    except ParameterError as err:
        raise ExperimentError(str(err)) from None
    for name, value in changes.items():
        default = getattr(recipe, name)
        if isinstance(default, tuple) and (not isinstance(value, tuple) or len(value) != len(default) and default):
            raise ExperimentError(f"{name}={value!r} must be {len(default)} integers like the paper's {default}.")
    if "optimizer" in changes and changes["optimizer"] != recipe.optimizer:
        changes["schedule"] = "constant"  # another optimiser is a quick experiment: no paper schedule to follow
    for outer in sorted({nested[k] for k in given if k in nested}):
        inner = {k: v for k, v in given.items() if nested.get(k) == outer}
        changes[outer] = replace(changes.get(outer, getattr(recipe, outer)), **inner)
    return _fit_schedule(recipe, replace(recipe, **changes))


def _fit_schedule(paper: papers.Recipe, run: papers.Recipe) -> papers.Recipe:
    """A run of other epochs than the paper's: its warm-up and lr steps scaled to its length when it asks
    (``scale_schedule``); otherwise the paper's, and a warning when the run ends before the schedule's first change."""
    if run.epochs == paper.epochs or run.schedule == "constant":
        return run
    if run.scale_schedule:
        factor = run.epochs / paper.epochs
        warmup = max(1, round(run.warmup_epochs * factor)) if run.warmup_epochs else 0
        steps = tuple(sorted({max(warmup + 1, round(m * factor)) for m in run.milestones}))
        return replace(run, warmup_epochs=warmup, milestones=steps)
    if run.epochs <= run.warmup_epochs:
        warnings.warn(
            f"epochs={run.epochs} ends inside the paper's {run.warmup_epochs}-epoch warm-up: the lr never leaves it "
            f"(it peaks at {run.epochs / run.warmup_epochs:.0%} of lr={run.lr:g}). Pass scale_schedule=True to scale "
            "the warm-up and steps to this run's length, or schedule='constant'.", stacklevel=3)
    elif run.milestones and run.epochs <= run.milestones[0]:
        warnings.warn(f"epochs={run.epochs} ends before the paper's first lr step (epoch {run.milestones[0]}); "
                      "scale_schedule=True scales the schedule to this run's length.", stacklevel=3)
    return run


def selection_config(recipe: papers.Recipe) -> dict:
    """The trainer's test schedule and kept checkpoints for a recipe: its script's rule, or (``selection="last"``)
    no test during training and nothing kept."""
    rule = recipe.selection_rule
    if recipe.selection == "last":
        return {"eval_every": 0, "eval_first": 0, "keeps": ()}
    return {"eval_every": rule.eval_every, "eval_first": rule.eval_first, "keeps": tuple(rule.keeps)}


def _train_views(paper: papers.Paper, dataset: str, recipe: papers.Recipe, cfg: TransformConfig, modality: str):
    return build_views(cfg, MODALITIES[modality], paper.batch_for(dataset, recipe).views.get(modality, ()))


def prepare(method: str, dataset: str = "", data_root: str = "", trial: int = 1, pretrained: bool = True,
            weights_file: str = "", checkpoint: str = "", device: str = "auto", amp: str = "off", workers: int = 2,
            out_dir: str = "runs", eval_every: int | None = None, eval_trials: int = 10, synthetic_ids: int | None = None,
            resume: bool = True, progress: bool = True, batches_per_epoch: int | None = None,
            skeleton_store: str = "", channels_last: bool = False, augment: str = "auto", compile_model: bool = False,
            cross_dataset: bool = False, score_untrained: bool = False, results_dir: str = "results",
            **overrides) -> PaperRun:
    """Build a run of ``method`` on ``dataset`` (an empty ``data_root``: the synthetic twin).

    ``augment``: ``"loader"`` augments every image in the loader processes, ``"device"`` hands the
    resized uint8 images over untouched and augments whole batches on the run's device
    (image papers), ``"auto"`` the latter on CUDA only. ``compile_model``: ``torch.compile`` the training steps.
    ``cross_dataset``: evaluate a ``checkpoint`` trained on another dataset or RegDB trial on purpose (otherwise an
    error); the record says so and its numbers never stand beside a paper's.
    """
    try:
        paper = papers.paper(method)
    except KeyError as err:
        raise ExperimentError(err.args[0]) from None
    dataset = dataset or paper.datasets[0]  # none given: the paper's first (its own benchmark)
    if dataset not in paper.datasets:
        raise ExperimentError(f"dataset={dataset!r}: {paper.title} runs on {paper.datasets}.")
    check_parameters({**locals(), **overrides})
    if cross_dataset and not checkpoint:
        raise ExperimentError("cross_dataset=True evaluates a checkpoint on other data: pass checkpoint=<file> too.")
    check_folder(out_dir, "out_dir")
    check_folder(results_dir, "results_dir")
    device = resolve_device(device)
    check_amp(amp, device)
    augment = _augment_mode(augment, device, paper)
    recipe = resolve_recipe(paper, dataset, {**overrides, "eval_every": eval_every})

    declared = benchmark(dataset)
    ids = paper_value(synthetic_ids, DEFAULT_CONFIGS[dataset].ids) if dataset in DEFAULT_CONFIGS else synthetic_ids
    if not data_root and dataset not in DEFAULT_CONFIGS:
        raise ExperimentError(f"{declared.name} has no synthetic twin: pass data_root=<its folder>.")
    root = Path(data_root) if data_root else ensure_synthetic(dataset, config=SyntheticConfig(ids=ids))
    reader = declared.open(root)
    data_kind, data_sizes = provenance.data_kind(root, reader, trial)
    visible, infrared = declared.train(reader, trial)
    # what the training files are, not only how many: resuming on other images of the same sizes is refused
    data_fingerprint = provenance.fingerprint(
        [f for r in visible + infrared for f in (r.frames if paper.video else (r.path,))], root)
    num_classes = len({r.pid for r in visible} | {r.pid for r in infrared})

    pad = scaled_pad(recipe.width, paper.recipe_for(dataset).width, recipe.pad) if recipe.pad else 0
    transform = TransformConfig(height=recipe.height, width=recipe.width, pad=pad, flip=recipe.flip,
                                random_erasing=recipe.random_erasing, erasing_fill=tuple(recipe.erasing_fill),
                                interpolation=recipe.train_resize)
    test_transform = replace(transform, interpolation=recipe.test_resize)
    seed = recipe.seed
    sampling = dict(num_ids=recipe.num_ids, num_per_modality=recipe.num_per_modality, replace=recipe.replace, seed=seed,
                    epoch_length=paper_value(batches_per_epoch, recipe.epoch_rule))  # a short epoch: smoke runs only
    skeletons = None
    if recipe.skeletons:  # the keypoints of every sampled frame, beside it (default: the store in the data root)
        try:
            skeletons = check_skeleton_store(skeleton_store or root / SKELETON_FILE, visible + infrared, dataset)
        except DatasetError as err:
            raise ExperimentError(f"{paper.title} reads skeletons: {err}") from None
    views = {m: _train_views(paper, dataset, recipe, transform, m) for m in MODALITIES}
    if paper.video:
        pairs = PairedTrackletDataset(
            TrackletDataset(visible, recipe.seq_len, views["visible"], train=True, skeletons=skeletons),
            TrackletDataset(infrared, recipe.seq_len, views["infrared"], train=True, skeletons=skeletons))
        sampler = TrackletSampler([r.pid for r in visible], [r.pid for r in infrared], **sampling)
    else:
        cached = [None, None]
        if recipe.cache_training_images:
            tag = declared.tag(trial)
            cached = [load_image_cache(records, root, f"{tag}_{name}", size=(transform.width, transform.height),
                                       resample=recipe.train_resize, progress=progress)
                      for records, name in ((visible, "visible"), (infrared, "infrared"))]
        if augment == "device":  # the loader only indexes (and resizes what is not cached): views are made on the device
            hand_over = LoaderImages(transform)
            pairs = PairedImageDataset(ImageDataset(visible, hand_over, cached[0]), ImageDataset(infrared, hand_over, cached[1]))
        else:
            pairs = PairedImageDataset(ImageDataset(visible, views["visible"], cached[0]),
                                       ImageDataset(infrared, views["infrared"], cached[1]))
        sampler = CrossModalityIdentitySampler([r.pid for r in visible], [r.pid for r in infrared], **sampling)
    loader = training_loader(pairs, sampler, workers, device)

    torch.manual_seed(seed)  # the initial weights are part of the run: same seed, same model
    weights = dict(pretrained=pretrained and not weights_file, weights_file=weights_file or None)
    try:
        model = paper.build(num_classes, recipe, weights)
    except ValueError as err:  # e.g. a tube that does not divide the feature maps
        raise ExperimentError(f"{paper.title} cannot be built with these settings: {err}") from err
    criterion = paper.criterion(num_classes, recipe, dataset)
    run_dir = resolve(out_dir) / f"{method}_{dataset}" / (f"trial{trial}" if declared.training_trials else "all")
    config = TrainConfig(
        epochs=recipe.epochs, optimizer=recipe.optimizer, lr=recipe.lr, momentum=recipe.momentum,
        nesterov=recipe.nesterov, weight_decay=recipe.weight_decay, schedule=recipe.schedule,
        warmup_epochs=recipe.warmup_epochs, milestones=tuple(recipe.milestones), gamma=recipe.gamma, amp=amp,
        channels_last=channels_last, augment=augment, compile=compile_model, **selection_config(recipe),
        seed=seed, device=device,
        out_dir=str(run_dir), resume=resume, progress=progress,
        identity=run_identity(dataset, trial, data_kind, {**data_sizes, "fingerprint": data_fingerprint}, transform,
                              sampling,
                              {"method": method, "num_classes": num_classes, "pretrained": pretrained,
                               "weights_file": weights_file,
                               # epochs may grow on resume; no other recipe field may change (the selection rule
                               # included: one run's choice is made by one rule)
                               "recipe": {k: v for k, v in asdict(recipe).items() if k not in RESUMABLE_RECIPE}}))
    params = dict(method=method, dataset=dataset, data_root=str(root), trial=trial, pretrained=pretrained,
                  skeleton_store=str(skeletons) if skeletons else "", channels_last=channels_last, augment=augment,
                  compile_model=compile_model,
                  weights_file=weights_file, checkpoint=checkpoint, workers=workers, eval_trials=eval_trials,
                  synthetic_ids=ids, num_classes=num_classes, batches_per_epoch=batches_per_epoch,
                  cross_dataset=cross_dataset, score_untrained=score_untrained, results_dir=str(results_dir),
                  **{k: v for k, v in overrides.items() if v is not None})
    params.update(arch=recipe.arch, seq_len=recipe.seq_len, recipe=asdict(recipe))
    kind = VideoRun if paper.video else ImageRun
    run = kind(method, dataset, root, data_kind, reader, trial, model, criterion, loader, config, transform, params,
               declaration=paper, recipe=recipe, test_transform=test_transform, data_sizes=data_sizes)
    if augment == "device":
        run.batch_transform = batched_views(transform, paper.batch_for(dataset, recipe).views)
    if checkpoint:
        run.load(checkpoint)
    return run


def _augment_mode(augment: str, device: str, paper: papers.Paper) -> str:
    # the value itself was checked with the runner's other parameters (params.RULES)
    if augment == "device" and paper.video:
        raise ExperimentError(f"augment='device' is for image papers; {paper.title} augments every frame of a tracklet "
                              "in the loader. Use 'auto' or 'loader'.")
    if augment == "auto":
        return "device" if device.startswith("cuda") and not paper.video else "loader"
    return augment
