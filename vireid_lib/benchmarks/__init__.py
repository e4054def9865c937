"""The field's benchmarks: one module each (reader, scoring rule, protocols, selection test), found by discovery.

A benchmark is a dataset together with how the field scores it: which reader parses its layout, which rule of
the evaluator scores it, what the reported protocol runs (directions, gallery trials), what a training
script's selection test runs, and what the plan needs to cost it. Every module of this package that declares
``BENCHMARK`` is one; no list names them, so adding a dataset is adding its reader (:mod:`vireid_lib.data`), its
synthetic twin and its module here. The runner, the engine, the evaluator, the plan and the tables read the
declarations; none of them asks "which dataset is this?".

(The speed benchmarks are scripts in the repository's ``benchmarks/`` folder, not this package.)
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..eval.scoring import removed_mask

__all__ = ["Benchmark", "benchmark", "benchmarks", "image_benchmarks", "names", "register", "video_benchmarks"]


@dataclass(frozen=True)
class Benchmark:
    """One benchmark, as the official code reads and scores it.

    ``reader``: the class that parses the layout (``reader(root)``). ``rule``: the evaluator's scoring rule
    (:data:`vireid_lib.eval.scoring.RULES`). ``directions``: the query directions the report scores.
    ``training_trials``: the trials that are each their own model (RegDB's ten train/test splits); empty when
    one model serves the whole test. ``gallery_trials``: how many random galleries the report averages
    (SYSU-MM01's and LLCM's ten; 1: a fixed gallery). ``published_train``: the (visible, infrared) training
    images, or tracklets, the plan costs a run with, and ``published_train_source`` where that figure comes from
    when the dataset publishes none.

    ``report(reader, extract, trial, gallery_trials, metric)`` scores every reported protocol;
    ``select(reader, extract, rule, trial, metric)`` runs a training script's selection test (``rule``: the
    paper's :class:`vireid_lib.selection.Selection`); ``describe_selection(rule)`` says in one line what that
    test scores; ``example(reader, trial, direction=None)`` is the split the ranked lists show (the first
    direction by default); ``supplementary(reader, extract, trial, metric)``, where the official test scores more
    than the reported directions (BUPTCampus's same-modality and ``all`` pairings), scores those.
    """

    key: str
    video: bool
    reader: type
    rule: str
    directions: tuple[str, ...]
    published_train: tuple[int, int]
    report: Callable[..., Any]
    select: Callable[..., Any]
    describe_selection: Callable[[Any], str]
    example: Callable[..., Any]
    training_trials: tuple[int, ...] = ()
    gallery_trials: int = 1
    published_train_source: str = ""
    supplementary: Callable[..., Any] | None = None
    order: int = 100  # where tables and plans list it among its kind (the field's usual order)

    @property
    def name(self) -> str:
        """As tables print it (the reader's ``NAME``: ``SYSU-MM01``, ``HITSZ-VCM``)."""
        return self.reader.NAME

    @property
    def published(self) -> dict[str, int]:
        """The split sizes the dataset publishes (the reader's ``PUBLISHED``): they decide ``real`` data."""
        return dict(self.reader.PUBLISHED)

    def open(self, root: Path | str) -> Any:
        """The reader over ``root``."""
        return self.reader(root)

    def run_trial(self, trial: int | None) -> int | None:
        """The training trial a run of this benchmark is (None where one model serves the whole test)."""
        return trial if self.training_trials else None

    def train(self, reader: Any, trial: int | None = None) -> tuple[list, list]:
        """The (visible, infrared) training records, of ``trial`` where each trial trains its own model."""
        return reader.train(trial) if self.training_trials else reader.train()

    def tag(self, trial: int | None) -> str:
        """A name for a run's data in file and folder names: the key, and the trial where it is one."""
        return f"{self.key}_t{trial}" if self.training_trials and trial is not None else self.key

    def removed(self, query: list, gallery: list) -> np.ndarray:
        """[query, gallery] True where the rule takes the gallery item out of the query's list."""
        return removed_mask(self.rule, np.array([q.pid for q in query]), np.array([q.camid for q in query]),
                            np.array([g.pid for g in gallery]), np.array([g.camid for g in gallery]))


_REGISTERED: dict[str, Benchmark] = {}


def register(declaration: Benchmark) -> Benchmark:
    """Make a benchmark declared outside this package (a test's toy, a user's own collection) known by its key,
    like the workbook's own; returns it."""
    _REGISTERED[declaration.key] = declaration
    return declaration


def declaring_modules() -> list[str]:
    """The dotted names of this package's benchmark modules, in name order."""
    return [f"{__name__}.{info.name}" for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name)
            if not info.name.startswith("_") and not info.ispkg]


@functools.lru_cache(maxsize=None)
def _workbook_benchmarks() -> tuple[tuple[str, Benchmark], ...]:
    """This package's declarations, found once per process (the runner and the tables ask for them often)."""
    found: dict[str, Benchmark] = {}
    for name in declaring_modules():
        declared = importlib.import_module(name).BENCHMARK
        if declared.key in found:
            raise ValueError(f"benchmark {declared.key!r} is declared twice ({name} and another module).")
        found[declared.key] = declared
    return tuple(found.items())


def benchmarks() -> dict[str, Benchmark]:
    """Every declared benchmark by its key (the workbook's, then any registered): image benchmarks first, each kind
    in its declared ``order``."""
    found = {**dict(_workbook_benchmarks()), **_REGISTERED}
    return dict(sorted(found.items(), key=lambda item: (item[1].video, item[1].order, item[0])))


def benchmark(key: str) -> Benchmark:
    known = benchmarks()
    if key not in known:
        raise KeyError(f"dataset={key!r} is not a known benchmark; use one of {list(known)}.")
    return known[key]


def names() -> dict[str, str]:
    """Every benchmark's key -> the name tables print (``{"sysu": "SYSU-MM01", ...}``)."""
    return {key: b.name for key, b in benchmarks().items()}


def image_benchmarks() -> tuple[str, ...]:
    return tuple(k for k, b in benchmarks().items() if not b.video)


def video_benchmarks() -> tuple[str, ...]:
    return tuple(k for k, b in benchmarks().items() if b.video)
