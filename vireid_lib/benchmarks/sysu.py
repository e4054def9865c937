"""SYSU-MM01 (Wu et al., ICCV 2017): infrared queries against visible galleries, all-search and indoor-search,
ten random galleries (the official ``eval_sysu``: camera-2 items leave a camera-3 query's list)."""

from __future__ import annotations

import warnings

from ..data.sysu import SYSUMM01
from ..eval import run_sysu
from . import Benchmark


def report(reader: SYSUMM01, extract, trial: int | None, gallery_trials: int, metric: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unmatched indoor queries are part of the protocol
        return run_sysu(reader, extract, modes=("all", "indoor"), shots=(1, 10), trials=range(gallery_trials),
                        metric=metric)


def select(reader: SYSUMM01, extract, rule, trial: int | None, metric: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_sysu(reader, extract, modes=(rule.mode,), shots=(1,), trials=rule.gallery_seeds(), metric=metric,
                        rule=rule.rule or "sysu", walk=rule.walk)


def describe_selection(rule) -> str:
    seeds = rule.gallery_seeds()
    shown = (f"seed {seeds[0]}" if len(seeds) == 1 else
             f"seeds {seeds[0]}, {seeds[1]}, ..., {seeds[-1]}" if len(seeds) > 2 else f"seeds {seeds}")
    order = "" if rule.walk == "identity" else ", drawn camera by camera"
    scored = f", scored by the {rule.rule} rule (no camera filter)" if rule.rule and rule.rule != "sysu" else ""
    return (f"{len(seeds)} {rule.mode}-search single-shot SYSU-MM01 "
            f"galler{'y' if len(seeds) == 1 else 'ies'} ({shown}{order}){scored}")


def example(reader: SYSUMM01, trial: int | None, direction: str | None = None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return reader.split("all", 0)


BENCHMARK = Benchmark(
    key="sysu", video=False, reader=SYSUMM01, rule="sysu", directions=("ir2rgb",),
    published_train=(22258, 11909), report=report, select=select, describe_selection=describe_selection,
    example=example, gallery_trials=10, order=10)
