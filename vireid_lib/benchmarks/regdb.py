"""RegDB (Nguyen et al., Sensors 2017): ten train/test splits, each its own model, scored in both directions
(visible to thermal and back) without a camera filter."""

from __future__ import annotations

import warnings

from ..data.regdb import RegDB
from ..eval import run_regdb
from . import Benchmark


def report(reader: RegDB, extract, trial: int | None, gallery_trials: int, metric: str):
    return run_regdb(reader, lambda t: extract, trials=[trial], metric=metric)


def select(reader: RegDB, extract, rule, trial: int | None, metric: str):
    return run_regdb(reader, lambda t: extract, trials=[trial], metric=metric, directions=rule.directions or ("v2t",),
                     rule=rule.rule or "regdb")


def describe_selection(rule) -> str:
    return f"the run's RegDB trial, {' and '.join(rule.directions or ('v2t',))}"


def example(reader: RegDB, trial: int | None, direction: str | None = None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return reader.split(trial, direction or "v2t")


BENCHMARK = Benchmark(
    key="regdb", video=False, reader=RegDB, rule="regdb", directions=("v2t", "t2v"),
    published_train=(2060, 2060), report=report, select=select, describe_selection=describe_selection,
    example=example, training_trials=tuple(range(1, 11)), order=20)
