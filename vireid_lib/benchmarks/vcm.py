"""HITSZ-VCM (Lin et al., CVPR 2022): tracklets, the ``query_IDX`` tracklets against the others in both
directions, scored with the query's identity seen by its own camera removed."""

from __future__ import annotations

import warnings

from ..data.vcm import HITSZVCM
from ..eval import run_vcm
from . import Benchmark

DIRECTIONS = ("ir2rgb", "rgb2ir")


def report(reader: HITSZVCM, extract, trial: int | None, gallery_trials: int, metric: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # queries without a cross-camera match are skipped by the protocol
        return run_vcm(reader, extract, directions=DIRECTIONS, metric=metric)


def select(reader: HITSZVCM, extract, rule, trial: int | None, metric: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_vcm(reader, extract, directions=rule.directions or DIRECTIONS, metric=metric)


def describe_selection(rule) -> str:
    return f"HITSZ-VCM, {' and '.join(rule.directions or DIRECTIONS)}"


def example(reader: HITSZVCM, trial: int | None, direction: str | None = None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return reader.split(direction or "ir2rgb")


BENCHMARK = Benchmark(
    key="vcm", video=True, reader=HITSZVCM, rule="vcm", directions=DIRECTIONS,
    published_train=(5460, 4291), report=report, select=select, describe_selection=describe_selection,
    example=example, order=10)
