"""Input types and speed-ups of the evaluator: each must leave every score exactly as it was."""

from __future__ import annotations

import warnings
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from vireid_lib.data import SYSUMM01
from vireid_lib.eval import EvaluationError, evaluate, run_sysu
from vireid_lib.eval import protocols, scoring


def labelled_problem(seed: int = 0, num_q: int = 60, num_g: int = 90, rule: str = "sysu"):
    """A small noisy matrix with SYSU-like cameras, so every rule removes something."""
    rng = np.random.default_rng(seed)
    q_pids, g_pids = rng.integers(0, 12, num_q), rng.integers(0, 12, num_g)
    q_cams, g_cams = rng.choice([3, 6], num_q), rng.choice([1, 2, 4, 5], num_g)
    distmat = rng.normal(size=(num_q, num_g)).astype(np.float32) - 2.0 * (q_pids[:, None] == g_pids[None, :])
    return distmat, q_pids, g_pids, q_cams, g_cams


def assert_same(got: dict, expected: dict) -> None:
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(got[key], value, err_msg=key)  # NaN == NaN, bit for bit otherwise
        else:
            assert got[key] == value, key


# Item 1: half-precision matrices.

@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("rule", ["sysu", "regdb", "vcm", "llcm", "bupt"])
def test_half_precision_matrix_scores_like_float32_of_the_same_values(dtype: torch.dtype, rule: str) -> None:
    distmat, *labels = labelled_problem(1)
    half = torch.as_tensor(distmat).to(dtype)  # rounding makes ties: the exact path is exercised too
    got = evaluate(half, *labels, rule=rule)
    assert_same(got, evaluate(half.float().numpy(), *labels, rule=rule))
    assert 0 < got["mAP"] < 1


# Item 2: torch tensors of every kind score like the numpy array.

def test_torch_tensors_score_exactly_like_numpy() -> None:
    distmat, *labels = labelled_problem(2)
    expected = evaluate(distmat, *labels, rule="sysu")
    transposed = torch.as_tensor(np.ascontiguousarray(distmat.T)).T  # a non-contiguous view
    assert not transposed.is_contiguous()
    for tensor in (torch.as_tensor(distmat), torch.as_tensor(distmat).requires_grad_(), transposed,
                   torch.as_tensor(distmat, dtype=torch.float64)):
        assert_same(evaluate(tensor, *[torch.as_tensor(x) for x in labels], rule="sysu"), expected)


# Item 3: the thread pool only for large matrices; same results either way.

def test_small_matrices_score_on_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scoring, "_cores", lambda: 8)
    assert scoring._thread_count(3803, 301 // 4) == 1  # well below the threshold
    assert scoring._thread_count(1, scoring.THREAD_MIN_ENTRIES - 1) == 1
    assert scoring._thread_count(1, scoring.THREAD_MIN_ENTRIES) == min(8, scoring.MAX_THREADS)
    monkeypatch.setattr(scoring, "_cores", lambda: 2)
    assert scoring._thread_count(20_000, 20_000) == 2


def test_cores_follow_the_affinity_mask() -> None:
    if hasattr(scoring.os, "sched_getaffinity"):
        assert scoring._cores() == len(scoring.os.sched_getaffinity(0))
    assert scoring._cores() >= 1


@pytest.mark.parametrize("rule", ["sysu", "regdb", "vcm", "llcm", "bupt"])
def test_threads_and_one_thread_give_identical_results(rule: str, monkeypatch: pytest.MonkeyPatch) -> None:
    distmat, *labels = labelled_problem(3, num_q=301, num_g=120)
    expected = evaluate(distmat, *labels, rule=rule)
    monkeypatch.setattr(scoring, "THREAD_MIN_ENTRIES", 0)
    monkeypatch.setattr(scoring, "_cores", lambda: 4)
    assert scoring._thread_count(*distmat.shape) == 4
    assert_same(evaluate(distmat, *labels, rule=rule), expected)


# Item 4: SYSU-MM01's distances computed once per run, sliced per trial.

def pid_extract(dtype: type):
    """Features from the record's identity plus noise seeded by its path: the same record gets
    the same row whichever call asks for it."""
    def extract(records):
        rows = [np.random.default_rng(r.pid).normal(size=48)
                + 1.2 * np.random.default_rng(zlib.crc32(str(r.path).encode())).normal(size=48) for r in records]
        return np.stack(rows).astype(dtype)
    return extract


@pytest.mark.parametrize("dtype, metric", [(np.float32, "cosine"), (np.float64, "cosine"), (np.float32, "euclidean"),
                                           (np.float64, "dot")])
def test_sysu_distances_once_equal_per_trial_distances(synthetic_sysu: Path, dtype: type, metric: str) -> None:
    reader = SYSUMM01(synthetic_sysu)
    settings = dict(modes=("all", "indoor"), shots=(1, 10), trials=range(10), metric=metric, rerank=False, max_rank=20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        once = run_sysu(reader, pid_extract(dtype), **settings)
        per_trial = protocols._run_sysu(reader, pid_extract(dtype), **settings, distances_once=False)
    assert len(once.per_trial) == 40 and once.per_trial["mAP"].std() > 0
    pd.testing.assert_frame_equal(once.per_trial, per_trial.per_trial, check_exact=True)
    pd.testing.assert_frame_equal(once.summary, per_trial.summary, check_exact=True)
    assert once.cmc.keys() == per_trial.cmc.keys()
    for key, curve in per_trial.cmc.items():
        np.testing.assert_array_equal(once.cmc[key], curve, err_msg=str(key))


def test_sysu_reranking_keeps_the_per_trial_path(synthetic_sysu: Path) -> None:
    reader = SYSUMM01(synthetic_sysu)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reranked = run_sysu(reader, pid_extract(np.float32), modes=("indoor",), trials=[0, 1], rerank=True)
        per_trial = protocols._run_sysu(reader, pid_extract(np.float32), ("indoor",), (1,), [0, 1], "cosine", True, 20,
                                        distances_once=False)
    pd.testing.assert_frame_equal(reranked.per_trial, per_trial.per_trial, check_exact=True)
    with pytest.raises(EvaluationError, match="distances_once"):
        protocols._run_sysu(reader, pid_extract(np.float32), ("indoor",), (1,), [0], "cosine", True, 20,
                            distances_once=True)
