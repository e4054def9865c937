"""BUPTCampus (Du et al., TIFS 2023, ``dyhBUPT/BUPTCampus``): paired tracklets; ``test.py``'s cross-modality
pairings of the query and gallery lists, scored by ``evaluation.py``'s rule (no camera filter)."""

from __future__ import annotations

import warnings

from ..data.bupt import BUPTCampus
from ..eval import run_bupt
from . import Benchmark

DIRECTIONS = ("ir2rgb", "rgb2ir")


def report(reader: BUPTCampus, extract, trial: int | None, gallery_trials: int, metric: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_bupt(reader, extract, directions=DIRECTIONS, metric=metric)


def select(reader: BUPTCampus, extract, rule, trial: int | None, metric: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_bupt(reader, extract, directions=rule.directions or DIRECTIONS, metric=metric)


def supplementary(reader: BUPTCampus, extract, trial: int | None, metric: str):
    """test.py's other pairings: visible to visible, infrared to infrared, and every tracklet to every other."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_bupt(reader, extract, directions=("rgb2rgb", "ir2ir", "all"), metric=metric)


def describe_selection(rule) -> str:
    return f"BUPTCampus (no filter), {' and '.join(rule.directions or DIRECTIONS)}"


def example(reader: BUPTCampus, trial: int | None, direction: str | None = None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return reader.split(direction or "ir2rgb")


# The official repository states no training count: 3,574 paired tracklets is what M3-ReID's data manager counts.
BENCHMARK = Benchmark(
    key="bupt", video=True, reader=BUPTCampus, rule="bupt", directions=DIRECTIONS,
    published_train=(3574, 3574), published_train_source="M3-ReID's count (the official repository states none)",
    report=report, select=select, describe_selection=describe_selection, example=example, supplementary=supplementary,
    order=20)
