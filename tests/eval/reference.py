"""A plain per-query implementation of the four scoring rules, written from PROTOCOLS.md (LLCM's from eval_llcm).

One query at a time with a full stable sort, in the style of the official evaluation code,
and independent of vireid_lib.eval: the tests check the vectorised evaluator against it and
benchmarks/eval_bench.py times the evaluator against it.
"""

from __future__ import annotations

import numpy as np


def reference_evaluate(distmat, q_pids, g_pids, q_camids=None, g_camids=None, rule="sysu", max_rank=20) -> dict:
    distmat = np.asarray(distmat, dtype=np.float64)
    q_pids, g_pids = np.asarray(q_pids), np.asarray(g_pids)
    q_camids = None if q_camids is None else np.asarray(q_camids)
    g_camids = None if g_camids is None else np.asarray(g_camids)
    steps = np.arange(max_rank)
    curves, aps, inps = [], [], []
    for q in range(distmat.shape[0]):
        order = np.argsort(distmat[q], kind="stable")  # ties: earlier gallery item first
        if rule == "sysu":  # cams 2 and 3 share a room: cam2 leaves the list of a cam3 query
            keep = ~((q_camids[q] == 3) & (g_camids[order] == 2))
        elif rule in ("vcm", "llcm"):  # same identity seen by the same camera (number) leaves the list
            keep = ~((g_pids[order] == q_pids[q]) & (g_camids[order] == q_camids[q]))
        else:
            keep = np.ones(len(order), dtype=bool)
        ranked = g_pids[order][keep]
        positions = np.flatnonzero(ranked == q_pids[q])
        if len(positions) == 0:  # no true match left: skipped by every metric
            aps.append(np.nan)
            inps.append(np.nan)
            continue
        aps.append(np.mean(np.arange(1, len(positions) + 1) / (positions + 1)))
        inps.append(len(positions) / (positions[-1] + 1))
        if rule in ("sysu", "llcm"):  # CMC over identities in order of first appearance
            _, first_seen = np.unique(ranked, return_index=True)
            distinct = ranked[np.sort(first_seen)]
            rank = int(np.flatnonzero(distinct == q_pids[q])[0])
        else:
            rank = int(positions[0])
        curves.append((rank <= steps).astype(np.float64))
    aps = np.asarray(aps, dtype=np.float64)
    valid = ~np.isnan(aps)
    return {
        "cmc": np.mean(curves, axis=0) if curves else None,
        "mAP": float(np.nanmean(aps)) if valid.any() else None,
        "mINP": float(np.nanmean(inps)) if valid.any() else None,
        "num_valid_queries": int(valid.sum()),
        "AP": aps,
    }
