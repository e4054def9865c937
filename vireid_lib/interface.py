"""The paper interface: everything that differs between papers, declared once in the paper's module.

A paper's module (one file in :mod:`vireid_lib.papers`) ends with a :class:`Paper` declaration (``PAPER = Paper(...)``; a file that also
declares the paper's own baseline row lists both in ``PAPERS``): its recipe
(every default, typed, including how its official script picks the checkpoint it reports:
:class:`~vireid_lib.selection.Selection`), how to build its model and its criterion, how a training
batch is composed, the optional per-epoch hook, the test-feature variants it reports, the reported
rows it is shown beside, the authors' checkpoint layouts, its own figures and every documented
difference from the official code with its flag (:class:`Deviation`). The experiment runner
(:mod:`vireid_lib.experiments.runner`), the engine and the evaluator read the declaration and
never ask which paper they run. Adding a paper: write its module under ``vireid_lib/papers/`` with a
declaration (it is found there, no list names it), add its rows to ``results/reported.csv``, its notebook
and its tests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields

import torch
from torch import nn

from .data.transforms import REID_ERASING_FILL
from .selection import Keep, Selection


@dataclass(frozen=True)
class Deviation:
    """One documented difference from the official code: ``what`` it does (and why it matters), and the
    parameter that switches it (``flag``, e.g. ``"fix_dc_head=True"``; empty when none can). ``default``:
    ``"official"`` when the default reproduces the code (a defect included) and the flag holds the fix,
    ``"workbook"`` when the workbook cannot or does not follow the code by default (the reason in ``what``)."""

    what: str
    flag: str = ""
    default: str = "official"

    def __post_init__(self) -> None:
        if self.default not in ("official", "workbook"):
            raise ValueError(f"Deviation.default={self.default!r} must be 'official' or 'workbook'.")


@dataclass(frozen=True)
class Recipe:
    """Every default the runner reads, typed; a paper subclasses it with its own values.

    A notebook or command-line parameter with the same name (``epochs``, ``lr``, ``height``,
    ``tube``, ``fix_dc_head``, ...) replaces the field when it is not ``None``; a parameter the
    recipe has no field for is an error naming the paper.
    """

    # optimiser and schedule (vireid_lib.engine.TrainConfig)
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "warmup_step"  # or "constant"
    warmup_epochs: int = 10
    milestones: tuple[int, ...] = (20, 50)
    gamma: float = 0.1
    epochs: int = 81
    # a run of other epochs than the paper's keeps the paper's warm-up and steps (a short one may never leave the
    # warm-up); True scales them to its length (a quick experiment's choice, never the paper's)
    scale_schedule: bool = False
    seed: int = 0
    # network
    arch: str = "resnet50"
    # sampler: num_ids identities x num_per_modality items per modality, drawn with or without replacement
    num_ids: int = 8
    num_per_modality: int = 4
    replace: bool = True
    # how the official sampler counts an epoch's batches (vireid_lib.data.samplers.EPOCH_RULES): "official" AGW's
    # int(max(N_v, N_i) / (P K)) + 1, "min" MITML's and STAR's int(min(N_v, N_i) / (P K))
    epoch_rule: str = "official"
    # images: the training size, how images are resized (and whether the training images are cached,
    # resized once, as the official preprocessing does), the augmentation, and the test resize
    height: int = 288
    width: int = 144
    train_resize: str = "lanczos"
    cache_training_images: bool = True
    test_resize: str = "lanczos"
    pad: int = 10  # at the paper's width; scaled with the width for smaller inputs
    flip: bool = True
    random_erasing: float = 0.0
    erasing_fill: tuple[float, float, float] = REID_ERASING_FILL
    # video: frames sampled per tracklet (0 for image papers), and whether each sampled frame's COCO-17
    # keypoints are read beside it (a skeleton store; the model then receives them after the clips)
    seq_len: int = 0
    skeletons: bool = False
    # Model selection: the official script's rule (``selection_rule``, a :class:`Selection`; its fields, e.g.
    # ``eval_every``, are parameters too), and which checkpoint this run reports: ``"official"`` the one that
    # rule keeps (chosen on the test set, as the paper did), ``"last"`` the last epoch only (no test-set choice).
    selection_rule: Selection = field(default_factory=Selection)
    selection: str = "official"
    # video: which frame of each chunk a test clip takes: "first" (MITML's video_test) or "random" (seeded by the
    # run's seed and the tracklet, so every evaluation sees the same clip)
    test_frames: str = "first"

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in fields(cls)}


@dataclass(frozen=True)
class Variant:
    """A test feature: the model output ``output`` (evaluation mode), compared with ``metric``."""

    output: str = "embedding"
    metric: str = "cosine"
    description: str = ""


@dataclass(frozen=True)
class BatchLayout:
    """How a training batch is composed.

    ``views``: per modality, the training views drawn of each sampled image (names of
    :func:`vireid_lib.data.transforms.build_view`), e.g. ``{"visible": ("train", "caj"),
    "infrared": ("train",)}``. The model's ``forward`` receives the views in ``order``
    (``(modality, view index)`` pairs; default: every visible view, then every infrared one).
    ``labels``: which identity labels the model's training outputs are aligned with, as
    modality names, e.g. MMN's ``("visible", "visible", "infrared", "infrared")`` for its
    ``[V, M_v, I, M_i]`` outputs; default one per input, in ``order``.
    """

    views: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: {"visible": ("train",), "infrared": ("train",)})
    order: tuple[tuple[str, int], ...] = ()
    labels: tuple[str, ...] = ()

    def input_order(self) -> tuple[tuple[str, int], ...]:
        if self.order:
            return self.order
        return tuple((m, i) for m in ("visible", "infrared") for i in range(len(self.views.get(m, ()))))

    def unpack(self, batch) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """``(visible views, infrared views, visible pids, infrared pids)`` -> ``(model inputs, labels)``."""
        visible, infrared, visible_pids, infrared_pids = batch
        views = {"visible": _as_tuple(visible), "infrared": _as_tuple(infrared)}
        pids = {"visible": visible_pids, "infrared": infrared_pids}
        order = self.input_order()
        inputs = tuple(views[m][i] for m, i in order)
        labels = torch.cat([pids[m] for m in (self.labels or tuple(m for m, _ in order))])
        return inputs, labels


def _as_tuple(value) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


@dataclass(frozen=True)
class Hooks:
    """Optional per-epoch work: ``on_epoch_start(run, epoch)`` runs after the epoch's seeding, before
    its first step (e.g. rebuilding memories from the whole training set); state it keeps must live
    in the model or the criterion (buffers) so that checkpoints carry it. It may return a dict of
    figures about its work (``{"images": n}``), which benchmarks report."""

    on_epoch_start: Callable | None = None


@dataclass(frozen=True)
class Paper:
    """One paper's declaration (see the module doc)."""

    method: str  # the key used by notebooks, records and reported.csv
    title: str  # as tables print it
    datasets: tuple[str, ...]
    recipe: Recipe
    build: Callable[[int, Recipe, dict], nn.Module]  # (classes, recipe, {"pretrained", "weights_file"}) -> model
    criterion: Callable[[int, Recipe, str], nn.Module]  # (classes, recipe, dataset) -> criterion
    batch: BatchLayout = field(default_factory=BatchLayout)
    hooks: Hooks = field(default_factory=Hooks)
    variants: Mapping[str, Variant] = field(default_factory=lambda: {"original": Variant()})  # the first is reported
    compared: tuple[str, ...] = ()  # reported.csv methods shown beside this run (default: this paper's own)
    layouts: tuple = ()  # vireid_lib.models.official.OfficialLayout of the authors' released checkpoints
    dataset_recipes: Mapping[str, Recipe] = field(default_factory=dict)  # per-dataset recipes, where they differ
    dataset_batches: Mapping[str, BatchLayout] = field(default_factory=dict)  # per-dataset views, where they differ
    # a batch layout a recipe flag switches to, by the flag's name (CST's fresh_second_view: another second view)
    batch_variants: Mapping[str, BatchLayout] = field(default_factory=dict)
    fidelity: str = ""  # where the network follows (or departs from) the official code, for the notebook
    deviations: tuple[Deviation, ...] = ()  # every documented difference from the official code, with its flag
    # Its notebook under notebooks/ (empty: trained inside another paper's notebook, or none), the papers that
    # notebook trains beside it (CST's MITML), and the notebook parameters of the smoke plan beyond the shared
    # tiny ones (vireid_lib.reproduce --smoke), e.g. a tube that fits 64 x 32 inputs; a key named like a dataset
    # holds settings for that dataset only (e.g. MMN's longer SYSU-MM01 run that must beat chance).
    notebook: str = ""
    trains_also: tuple[str, ...] = ()
    smoke: Mapping[str, object] = field(default_factory=dict)
    figures: Mapping[str, Callable] = field(default_factory=dict)  # name -> function(run, ...) -> Figure

    def recipe_for(self, dataset: str) -> Recipe:
        return self.dataset_recipes.get(dataset, self.recipe)

    def batch_for(self, dataset: str, recipe: Recipe | None = None) -> BatchLayout:
        """The batch layout for ``dataset``; a recipe whose flag names a :attr:`batch_variants` entry gets that one."""
        for flag, layout in self.batch_variants.items():
            if recipe is not None and getattr(recipe, flag, False):
                return layout
        return self.dataset_batches.get(dataset, self.batch)

    @property
    def video(self) -> bool:
        return self.recipe.seq_len > 0
