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
import math
from dataclasses import MISSING, dataclass, field, fields

import torch
from torch import nn

from .data.transforms import INTERPOLATIONS, REID_ERASING_FILL
from .engine.config import OPTIMIZERS
from .models.backbone import ARCHS as BACKBONES
from .selection import SELECTIONS, Keep, Selection


@dataclass(frozen=True)
class Deviation:
    """One documented difference from the official code: ``what`` it does (and why it matters), and the
    parameter that switches it (``flag``, e.g. ``"fix_dc_head=True"``; empty when none can). ``default``:
    ``"official"`` when the default reproduces the code (a defect included) and the flag holds the fix,
    ``"workbook"`` when the workbook cannot or does not follow the code by default (the reason in ``what``).
    ``datasets``: where it applies, when not on every dataset (what the code does on a dataset it never read)."""

    what: str
    flag: str = ""
    default: str = "official"
    datasets: tuple[str, ...] = ()  # the datasets it concerns (empty: every one the paper runs on)

    def __post_init__(self) -> None:
        if self.default not in ("official", "workbook"):
            raise ValueError(f"Deviation.default={self.default!r} must be 'official' or 'workbook'.")

    def applies_to(self, dataset: str) -> bool:
        return not self.datasets or dataset in self.datasets


class ParameterError(ValueError):
    """A recipe field (a notebook or command-line parameter) got a value its check refuses; the message names both."""


@dataclass(frozen=True)
class Check:
    """How a recipe field's value is checked, declared next to its default (:func:`param`).

    ``kind``: ``"int"`` (``low``..``high``), ``"number"`` (finite, ``low``..``high``; ``above`` makes ``low``
    exclusive), ``"choice"`` (one of ``choices``), ``"flag"`` (True / False), ``"text"``, ``"ints"`` (a tuple of
    integers as long as the default).
    """

    kind: str
    low: float | None = None
    high: float | None = None
    above: bool = False
    choices: tuple = ()

    def describe(self) -> str:
        if self.kind == "choice":
            return f"one of {self.choices}"
        if self.kind == "flag":
            return "True or False"
        if self.kind == "text":
            return "a string"
        if self.kind == "ints":
            return "a tuple of integers"
        if self.kind == "any":
            return "any value"
        what = "an integer" if self.kind == "int" else "a finite number"
        if self.low is not None and self.high is not None:
            return f"{what} in {self.low:g}..{self.high:g}"
        if self.low is not None:
            return f"{what} {'>' if self.above else '>='} {self.low:g}"
        return what

    def __call__(self, name: str, value: object) -> object:
        """``value`` if it passes, else :class:`ParameterError` naming ``name``, the value and what is valid."""
        if self.kind == "any":
            ok = True
        elif self.kind == "choice":
            ok = value in self.choices
        elif self.kind == "flag":
            ok = isinstance(value, bool)
        elif self.kind == "text":
            ok = isinstance(value, str)
        elif self.kind == "ints":
            ok = isinstance(value, tuple) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        else:
            numeric = (int,) if self.kind == "int" else (int, float)
            ok = (isinstance(value, numeric) and not isinstance(value, bool) and math.isfinite(value)
                  and (self.low is None or (value > self.low if self.above else value >= self.low))
                  and (self.high is None or value <= self.high))
        if not ok:
            raise ParameterError(f"{name}={value!r} is invalid: it must be {self.describe()} "
                                 "(None means the paper's value).")
        return value


def integer(low: int = 1, high: int | None = None) -> Check:
    return Check("int", low, high)


def number(low: float | None = 0.0, high: float | None = None, above: bool = False) -> Check:
    return Check("number", low, high, above)


def positive() -> Check:
    return Check("number", 0.0, above=True)


def choice(*options) -> Check:
    return Check("choice", choices=tuple(options))


def param(default, check: Check | None = None):
    """A recipe field with its check beside its default (``lr: float = param(0.1, positive())``). A paper's recipe
    that only changes the default (``lr: float = 3.5e-4``) keeps the check of the field it overrides."""
    if isinstance(default, (list, dict, set)):
        raise TypeError("recipe defaults are immutable: use a tuple")
    return field(default=default, metadata={"check": check} if check is not None else {})


def inferred_check(default: object) -> Check:
    """The check of a field declared without one, from its default: a bool is a flag, an int an integer >= 0, a
    float a finite number >= 0 (weights, rates, margins), a str text, a tuple of ints a tuple."""
    if isinstance(default, bool):
        return Check("flag")
    if isinstance(default, int):
        return integer(0)
    if isinstance(default, float):
        return number(0.0)
    if isinstance(default, tuple) and all(isinstance(v, int) and not isinstance(v, bool) for v in default):
        return Check("ints")
    if isinstance(default, str):
        return Check("text")
    return Check("any")


ARCHS = tuple(BACKBONES)  # the papers use resnet50; resnet34 / resnet18 only for quick experiments
SCHEDULES = ("warmup_step", "constant")
RESIZES = tuple(INTERPOLATIONS)


@dataclass(frozen=True)
class Recipe:
    """Every default the runner reads, typed and checked; a paper subclasses it with its own values.

    A notebook or command-line parameter with the same name (``epochs``, ``lr``, ``height``,
    ``tube``, ``fix_dc_head``, ...) replaces the field when it is not ``None``, after the field's own
    check (:meth:`check`: declared with :func:`param`, or inferred from the default); a parameter the
    recipe has no field for is an error naming the paper.
    """

    # optimiser and schedule (vireid_lib.engine.TrainConfig)
    optimizer: str = param("sgd", choice(*OPTIMIZERS))
    lr: float = param(0.1, positive())
    momentum: float = param(0.9, number(0.0, 1.0))
    nesterov: bool = True
    weight_decay: float = param(5e-4, number(0.0))
    schedule: str = param("warmup_step", choice(*SCHEDULES))
    warmup_epochs: int = param(10, integer(0))
    milestones: tuple[int, ...] = (20, 50)
    gamma: float = param(0.1, positive())
    epochs: int = param(81, integer(1))
    # a run of other epochs than the paper's keeps the paper's warm-up and steps (a short one may never leave the
    # warm-up); True scales them to its length (a quick experiment's choice, never the paper's)
    scale_schedule: bool = False
    seed: int = param(0, integer(0))
    # network
    arch: str = param("resnet50", choice(*ARCHS))
    # sampler: num_ids identities x num_per_modality items per modality, drawn with or without replacement
    # (the triplet losses need another identity in the batch to compare with)
    num_ids: int = param(8, integer(2))
    num_per_modality: int = param(4, integer(1))
    replace: bool = True
    # how the official sampler counts an epoch's batches (vireid_lib.data.samplers.EPOCH_RULES): "official" AGW's
    # int(max(N_v, N_i) / (P K)) + 1, "min" MITML's and STAR's int(min(N_v, N_i) / (P K))
    epoch_rule: str = param("official", choice("official", "min"))
    # images: the training size, how images are resized (and whether the training images are cached,
    # resized once, as the official preprocessing does), the augmentation, and the test resize
    height: int = param(288, integer(16))
    width: int = param(144, integer(16))
    train_resize: str = param("lanczos", choice(*RESIZES))
    cache_training_images: bool = True
    test_resize: str = param("lanczos", choice(*RESIZES))
    pad: int = param(10, integer(0))  # at the paper's width; scaled with the width for smaller inputs
    flip: bool = True
    random_erasing: float = param(0.0, number(0.0, 1.0))
    erasing_fill: tuple[float, float, float] = REID_ERASING_FILL
    # video: frames sampled per tracklet (0 for image papers), and whether each sampled frame's COCO-17
    # keypoints are read beside it (a skeleton store; the model then receives them after the clips)
    seq_len: int = param(0, integer(0))
    skeletons: bool = False
    # Model selection: the official script's rule (``selection_rule``, a :class:`Selection`; its fields, e.g.
    # ``eval_every``, are parameters too), and which checkpoint this run reports: ``"official"`` the one that
    # rule keeps (chosen on the test set, as the paper did), ``"last"`` the last epoch only (no test-set choice).
    selection_rule: Selection = field(default_factory=Selection)
    selection: str = param("official", choice(*SELECTIONS))
    # video: which frames a test clip takes: "first" of each chunk (MITML's video_test), "random" one of each chunk
    # (seeded by the run's seed and the tracklet, so every evaluation sees the same clip) or "uniform" (BUPTCampus's
    # test.py: frame int(i n / S))
    test_frames: str = param("first", choice("first", "random", "uniform"))

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in fields(cls)}

    @classmethod
    def check_for(cls, name: str) -> Check:
        """The check of field ``name``: the nearest declaration's :func:`param` check, else one inferred from its
        default."""
        for klass in cls.__mro__:
            declared = getattr(klass, "__dataclass_fields__", {}).get(name)
            if declared is not None and "check" in declared.metadata:
                return declared.metadata["check"]
        default = next(f for f in fields(cls) if f.name == name)
        value = default.default_factory() if default.default is MISSING else default.default
        return inferred_check(value)

    @classmethod
    def check(cls, values: Mapping[str, object]) -> None:
        """Check every non-``None`` value of ``values`` that names a field (:class:`ParameterError` on the first
        refused one)."""
        known = cls.field_names()
        for name, value in values.items():
            if value is not None and name in known:
                cls.check_for(name)(name, value)


@dataclass(frozen=True)
class Variant:
    """A test feature: the model output ``output`` (evaluation mode), compared with ``metric``; ``flip``: the mean
    of the image's (or clip's) feature and its horizontal mirror's, as test scripts with flip averaging compute it
    (the extractor honours it; the cosine metric makes the mean and the sum, re-normalised or not, rank alike)."""

    output: str = "embedding"
    metric: str = "cosine"
    description: str = ""
    flip: bool = False


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
