"""Protocol runners: every official test setting of a dataset, scored into one tidy table.

A runner takes a dataset reader and an ``extract`` callable (records -> one feature row per
record, e.g. a trained model's test features) and returns an :class:`Evaluation`:

* SYSU-MM01: all / indoor search x single / 10-shot, trials 0-9; the query features are
  extracted once, every gallery image that any trial draws is extracted once, and (without
  re-ranking) the query x gallery-image distances are computed once and sliced per trial.
* RegDB: visible-to-thermal and thermal-to-visible for each trial; every trial is its own
  trained model, so ``extract`` is asked for per trial.
* HITSZ-VCM: infrared-to-visible and visible-to-infrared, from one extraction of the two
  tracklet sets (the second direction is the first with the roles swapped).

The summary has one row per dataset / protocol / direction with R1, R5, R10, R20, mAP and
mINP as percentages, their mean and standard deviation over trials, and the numbers of
trials and valid queries. Re-ranked results are marked in a column of their own: no paper
reproduced here uses re-ranking.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..data.bupt import PAIRINGS, BUPTCampus
from ..data.llcm import LLCM
from ..data.records import INFRARED, VISIBLE
from ..data.regdb import RegDB
from ..data.sysu import SYSUMM01
from ..data.vcm import HITSZVCM
from .distance import pairwise_distance
from .rerank import k_reciprocal_rerank
from .scoring import EvaluationError, evaluate

Extract = Callable[[Sequence], object]
RANKS = (1, 5, 10, 20)
METRIC_COLUMNS = [f"R{k}" for k in RANKS] + ["mAP", "mINP"]
SHOT_NAMES = {1: "single-shot", 10: "multi-shot (10)"}


@dataclass
class Evaluation:
    """Scores of one model (or one model per trial) on every protocol that was run.

    ``summary``: one row per dataset / protocol / direction, percentages, mean and std over
    trials. ``per_trial``: one row per trial. ``cmc``: the mean CMC curve (fractions, ranks
    1..max_rank) per ``(protocol, direction)``, for plots.
    """

    summary: pd.DataFrame
    per_trial: pd.DataFrame
    cmc: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)

    def readable(self) -> pd.DataFrame:
        """The summary as a reader wants it: setting, then R1, mAP and mINP as "mean ± std" over
        trials, then R5 / R10 / R20, then the counts (re-ranked rows are labelled in the protocol)."""
        rows = []
        for _, row in self.summary.iterrows():
            entry = {"protocol": row["protocol"] + (" (re-ranked)" if row["reranked"] else ""), "direction": row["direction"]}
            for metric in ("R1", "mAP", "mINP", "R5", "R10", "R20"):
                spread = row[f"{metric}_std"]
                entry[metric] = f"{row[metric]:.2f}" + ("" if pd.isna(spread) else f" ± {spread:.2f}")
            entry["trials"] = int(row["trials"])
            # a mean over trials, so possibly fractional; a whole one reads as the count it is ("23", not "23.00")
            valid = float(row["valid_queries"])
            entry["valid queries"] = str(int(valid)) if valid.is_integer() else f"{valid:.1f}"
            rows.append(entry)
        return pd.DataFrame(rows)


def score(query_features: object, gallery_features: object, query: Sequence, gallery: Sequence, rule: str,
          metric: str = "cosine", rerank: bool = False, max_rank: int = 20) -> dict:
    """Distances from features (or k-reciprocal re-ranked ones), then the official scoring."""
    distmat = k_reciprocal_rerank(query_features, gallery_features) if rerank else \
        pairwise_distance(query_features, gallery_features, metric)
    return _evaluate_records(distmat, query, gallery, rule, max_rank)


def _evaluate_records(distmat: object, query: Sequence, gallery: Sequence, rule: str, max_rank: int) -> dict:
    return evaluate(distmat, [r.pid for r in query], [r.pid for r in gallery],
                    [r.camid for r in query], [r.camid for r in gallery], rule=rule, max_rank=max_rank)


def _features(extract: Extract, records: Sequence, what: str) -> np.ndarray:
    features = extract(records)
    array = features.detach().cpu().numpy() if hasattr(features, "detach") else np.asarray(features)
    if array.ndim != 2 or array.shape[0] != len(records):
        raise EvaluationError(
            f"extract returned features of shape {tuple(array.shape)} for {len(records)} {what}; "
            "it must return one feature row per record, in order."
        )
    return array


def _trial_row(dataset: object, protocol: str, direction: str, trial: int, result: dict, rerank: bool,
               num_query: int, num_gallery: int) -> dict:
    row = {"dataset": type(dataset).NAME, "protocol": protocol, "direction": direction, "trial": trial,
           "reranked": rerank, "queries": num_query, "gallery": num_gallery,
           "valid_queries": result["num_valid_queries"]}
    cmc = result["cmc"]
    for k in RANKS:
        row[f"R{k}"] = 100.0 * float(cmc[min(k, len(cmc)) - 1])
    row["mAP"] = 100.0 * result["mAP"]
    row["mINP"] = 100.0 * result["mINP"]
    return row


def summarise(per_trial: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation (over trials, ddof=1; NaN for a single trial) per protocol."""
    keys = ["dataset", "protocol", "direction", "reranked"]
    grouped = per_trial.groupby(keys, sort=False)
    summary = grouped[METRIC_COLUMNS].mean()
    spread = grouped[METRIC_COLUMNS].std(ddof=1).add_suffix("_std")
    counts = grouped.agg(trials=("trial", "count"), valid_queries=("valid_queries", "mean"))
    table = pd.concat([summary, spread, counts], axis=1).reset_index()
    ordered = keys + ["trials", "valid_queries"] + [c for m in METRIC_COLUMNS for c in (m, f"{m}_std")]
    return table[ordered]


def _orient(direction: str, names: tuple[str, str], query: Sequence, gallery: Sequence, query_features: np.ndarray,
            gallery_features: np.ndarray, dataset: str) -> tuple[Sequence, Sequence, np.ndarray, np.ndarray]:
    """The split as given for ``names[0]``, with query and gallery swapped for ``names[1]``."""
    if direction == names[0]:
        return query, gallery, query_features, gallery_features
    if direction == names[1]:
        return gallery, query, gallery_features, query_features
    raise EvaluationError(f"direction={direction!r} is not a {dataset} direction; use one of {names}.")


def _evaluation(rows: list[dict], curves: dict[tuple[str, str], list[np.ndarray]]) -> Evaluation:
    per_trial = pd.DataFrame(rows)
    return Evaluation(summarise(per_trial), per_trial, {key: np.mean(c, axis=0) for key, c in curves.items()})


def run_sysu(dataset: SYSUMM01, extract: Extract, modes: Iterable[str] = ("all", "indoor"),
             shots: Iterable[int] = (1,), trials: Iterable[int] = range(10), metric: str = "cosine",
             rerank: bool = False, max_rank: int = 20, rule: str = "sysu", walk: str = "identity") -> Evaluation:
    """SYSU-MM01: queries extracted once, each gallery image once, scored per mode, shot, trial.

    ``trials`` are the galleries' seeds (the papers' 0..9). ``rule`` is the scoring rule: ``"sysu"`` (the
    official ``eval_sysu``, the protocol) or another, for a script that selects its checkpoint with one (MMN's
    ``train.py`` scores SYSU-MM01 with ``eval_regdb``: no camera filter, the plain CMC). ``walk``: the order of
    the galleries' random draws (:meth:`SYSUMM01.gallery`).

    Without re-ranking the query x pool distances are computed once too, and each trial's
    matrix is its gallery's columns: the trials share most of their images, so the per-trial
    matrices would repeat most of the work (re-ranking needs each trial's gallery x gallery
    distances, so it keeps the per-trial path). A column of the pool matrix can differ from
    the same column of a per-trial matrix in its last bit (BLAS may sum a dot product in
    another order for another matrix width), so the two paths could rank two distances within
    a few ulps of each other differently; tests/eval/test_speedups.py checks that every row and
    curve is identical on a synthetic SYSU-MM01 in float32 and float64.
    """
    return _run_sysu(dataset, extract, modes, shots, trials, metric, rerank, max_rank, distances_once=not rerank,
                     rule=rule, walk=walk)


def _run_sysu(dataset: SYSUMM01, extract: Extract, modes: Iterable[str], shots: Iterable[int],
              trials: Iterable[int], metric: str, rerank: bool, max_rank: int, distances_once: bool,
              rule: str = "sysu", walk: str = "identity") -> Evaluation:
    """:func:`run_sysu`, with the query x gallery distances computed once for the pool of every
    trial's images (``distances_once``) or once per trial by :func:`score` (the path
    re-ranking takes, kept as the reference the one-pass path is tested and timed against)."""
    if distances_once and rerank:
        raise EvaluationError("distances_once=True cannot re-rank: k-reciprocal re-ranking needs each "
                              "trial's own gallery x gallery distances; pass distances_once=False.")
    modes, shots, trials = list(modes), list(shots), list(trials)
    query = dataset.query()
    query_features = _features(extract, query, "query images")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short 10-shot folders: reported by the reader's own split
        galleries = {(mode, shot, t): dataset.gallery(mode, t, shot, walk) for mode in modes for shot in shots
                     for t in trials}
    pool = sorted({r.path: r for g in galleries.values() for r in g}.values(), key=lambda r: str(r.path))
    pool_features = _features(extract, pool, "gallery images")
    row_of = {r.path: i for i, r in enumerate(pool)}
    pool_distances = pairwise_distance(query_features, pool_features, metric).numpy() if distances_once else None
    rows, curves = [], {}
    for (mode, shot, t), gallery in galleries.items():
        columns = [row_of[r.path] for r in gallery]
        if pool_distances is None:
            result = score(query_features, pool_features[columns], query, gallery, rule, metric, rerank, max_rank)
        else:
            result = _evaluate_records(pool_distances[:, columns], query, gallery, rule, max_rank)
        protocol = f"{mode}-search, {SHOT_NAMES[shot]}" + ("" if rule == "sysu" else f", scored by the {rule} rule")
        rows.append(_trial_row(dataset, protocol, "ir2rgb", t, result, rerank, len(query), len(gallery)))
        curves.setdefault((protocol, "ir2rgb"), []).append(result["cmc"])
    return _evaluation(rows, curves)


def run_regdb(dataset: RegDB, extract_for_trial: Callable[[int], Extract], trials: Iterable[int] = range(1, 11),
              directions: Iterable[str] = ("v2t", "t2v"), metric: str = "cosine", rerank: bool = False,
              max_rank: int = 20, rule: str = "regdb") -> Evaluation:
    """RegDB: each trial's test lists scored with that trial's model, in both directions."""
    rows, curves = [], {}
    directions = list(directions)
    for t in trials:
        extract = extract_for_trial(t)
        split = dataset.split(t, "v2t")  # visible query, thermal gallery; t2v swaps them
        visible = _features(extract, split.query, "visible images")
        thermal = _features(extract, split.gallery, "thermal images")
        for direction in directions:
            q, g, qf, gf = _orient(direction, ("v2t", "t2v"), split.query, split.gallery, visible, thermal, "RegDB")
            result = score(qf, gf, q, g, rule, metric, rerank, max_rank)
            rows.append(_trial_row(dataset, "standard", direction, t, result, rerank, len(q), len(g)))
            curves.setdefault(("standard", direction), []).append(result["cmc"])
    return _evaluation(rows, curves)


def run_vcm(dataset: HITSZVCM, extract: Extract, directions: Iterable[str] = ("ir2rgb", "rgb2ir"),
            metric: str = "cosine", rerank: bool = False, max_rank: int = 20) -> Evaluation:
    """HITSZ-VCM: the query_IDX tracklets and the others, extracted once, scored both ways."""
    split = dataset.split("ir2rgb")
    chosen = _features(extract, split.query, "query tracklets")
    others = _features(extract, split.gallery, "gallery tracklets")
    rows, curves = [], {}
    for direction in directions:
        q, g, qf, gf = _orient(direction, ("ir2rgb", "rgb2ir"), split.query, split.gallery, chosen, others, "HITSZ-VCM")
        result = score(qf, gf, q, g, "vcm", metric, rerank, max_rank)
        rows.append(_trial_row(dataset, "standard", direction, 0, result, rerank, len(q), len(g)))
        curves.setdefault(("standard", direction), []).append(result["cmc"])
    return _evaluation(rows, curves)


def run_llcm(dataset: LLCM, extract: Extract, trials: Iterable[int] = range(10),
             directions: Iterable[str] = ("ir2rgb", "rgb2ir"), metric: str = "cosine", rerank: bool = False,
             max_rank: int = 20, rule: str = "llcm") -> Evaluation:
    """LLCM: every gallery trial (``random.seed(trial)``, the papers' 0..9) in each direction, as ``DEEN/test.py``
    runs them (``rgb2ir`` is its transposed ``[2, 1]`` mode: single-shot near-infrared queries against every
    visible image, see :mod:`vireid_lib.data.llcm`). Every test image is extracted once; the draws are rows of it."""
    pools = {modality: dataset.test_images(modality) for modality in (INFRARED, VISIBLE)}
    features = {modality: _features(extract, records, f"{'near-infrared' if modality == INFRARED else 'visible'} "
                                    "test images") for modality, records in pools.items()}
    row_of = {r.path: (modality, i) for modality, records in pools.items() for i, r in enumerate(records)}

    def rows_of(records: Sequence) -> np.ndarray:
        return np.stack([features[row_of[r.path][0]][row_of[r.path][1]] for r in records])

    rows, curves = [], {}
    for t in trials:
        for direction in directions:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # identities without a match: the scoring skips them
                split = dataset.split(t, direction)
            result = score(rows_of(split.query), rows_of(split.gallery), split.query, split.gallery, rule, metric,
                           rerank, max_rank)
            rows.append(_trial_row(dataset, "standard", direction, t, result, rerank, len(split.query),
                                   len(split.gallery)))
            curves.setdefault(("standard", direction), []).append(result["cmc"])
    return _evaluation(rows, curves)


def run_bupt(dataset: BUPTCampus, extract: Extract, directions: Iterable[str] = tuple(PAIRINGS),
             metric: str = "cosine", rerank: bool = False, max_rank: int = 20, drop_visible_remainder: bool = True) -> Evaluation:
    """BUPTCampus: ``test.py``'s pairings (``rgb2ir``, ``ir2rgb``, ``rgb2rgb``, ``ir2ir``, ``all``) of the query and
    gallery tracklets, each extracted once (``extract`` takes tracklet records), scored by ``evaluation.py``'s rule."""
    query = dataset.test("query", drop_visible_remainder)
    gallery = dataset.test("gallery", drop_visible_remainder)
    query_features = _features(extract, query, "query tracklets")
    gallery_features = _features(extract, gallery, "gallery tracklets")
    rows, curves = [], {}
    for direction in directions:
        wanted_query, wanted_gallery = PAIRINGS[direction]
        qi = [i for i, r in enumerate(query) if wanted_query in (None, r.modality)]
        gi = [i for i, r in enumerate(gallery) if wanted_gallery in (None, r.modality)]
        q, g = [query[i] for i in qi], [gallery[i] for i in gi]
        result = score(query_features[qi], gallery_features[gi], q, g, "bupt", metric, rerank, max_rank)
        rows.append(_trial_row(dataset, "standard", direction, 0, result, rerank, len(q), len(g)))
        curves.setdefault(("standard", direction), []).append(result["cmc"])
    return _evaluation(rows, curves)
