"""LLCM (Zhang and Wang, CVPR 2023, ``ZYK100/LLCM``, folder ``DEEN/``): ten random single-shot galleries in each
direction, scored by ``eval_llcm`` (the query's identity seen by its own camera number leaves its list)."""

from __future__ import annotations

import warnings

from ..data.llcm import LLCM
from ..eval import run_llcm
from . import Benchmark

DIRECTIONS = ("ir2rgb", "rgb2ir")


def report(reader: LLCM, extract, trial: int | None, gallery_trials: int, metric: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_llcm(reader, extract, trials=range(gallery_trials), metric=metric)  # DEEN/test.py


def select(reader: LLCM, extract, rule, trial: int | None, metric: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DEEN/train.py's test: the trial-0 gallery, its default direction
        return run_llcm(reader, extract, trials=[0], directions=_selection_directions(rule), metric=metric)


def _selection_directions(rule) -> tuple[str, ...]:
    return tuple(d for d in rule.directions if d in DIRECTIONS) or ("ir2rgb",)


def describe_selection(rule) -> str:
    return f"the trial-0 LLCM gallery, {' and '.join(_selection_directions(rule))} (DEEN/train.py's test)"


def example(reader: LLCM, trial: int | None, direction: str | None = None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return reader.split(0, direction or "ir2rgb")


# LLCM publishes no per-split counts: its README's 46,767 images x 713 of 1,064 identities, halved between the
# modalities (an estimate for the plan only).
BENCHMARK = Benchmark(
    key="llcm", video=False, reader=LLCM, rule="llcm", directions=DIRECTIONS,
    published_train=(15670, 15669), published_train_source="an estimate from LLCM's README totals",
    report=report, select=select, describe_selection=describe_selection, example=example, gallery_trials=10,
    order=30)
