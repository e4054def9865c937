"""The scoring core: hand-worked cases per rule, errors, and agreement with a plain reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.eval.reference import reference_evaluate
from vireid_lib.eval import EvaluationError, evaluate, pairwise_distance


def test_regdb_hand_worked() -> None:
    # query pid 1: ranked g0(1) g3(3) g2(1) g1(2) -> matches at ranks 1 and 3
    d = np.array([[0.1, 0.5, 0.3, 0.2]])
    out = evaluate(d, [1], [1, 2, 1, 3], rule="regdb", max_rank=4)
    assert out["AP"][0] == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert out["mINP"] == pytest.approx(2 / 3)
    assert out["cmc"].tolist() == [1.0, 1.0, 1.0, 1.0]
    # the first match at rank 3: CMC steps there
    out = evaluate(np.array([[0.9, 0.1, 0.2, 0.5]]), [1], [1, 2, 3, 1], rule="regdb", max_rank=4)
    assert out["cmc"].tolist() == [0.0, 0.0, 1.0, 1.0]
    assert out["mAP"] == pytest.approx((1 / 3 + 2 / 4) / 2) and out["mINP"] == pytest.approx(2 / 4)


def test_sysu_removes_camera_2_for_camera_3_queries_only() -> None:
    # gallery: g0 pid 1 cam 2 (closest), g1 pid 5 cam 1, g2 pid 1 cam 4
    d = np.array([[0.1, 0.2, 0.3], [0.1, 0.2, 0.3]])
    out = evaluate(d, [1, 1], [1, 5, 1], q_camids=[3, 6], g_camids=[2, 1, 4], rule="sysu", max_rank=3)
    # cam3 query: g0 removed -> list g1(5) g2(1): match at rank 2
    assert out["AP"][0] == pytest.approx(1 / 2)
    # cam6 query: nothing removed -> matches at ranks 1 and 3
    assert out["AP"][1] == pytest.approx((1 + 2 / 3) / 2)
    assert out["cmc"].tolist() == [0.5, 1.0, 1.0]


def test_sysu_cmc_collapses_repeated_identities_but_map_keeps_them() -> None:
    # ranked: pid 7, 7, 7, then the true pid 1
    d = np.array([[0.1, 0.2, 0.3, 0.4]])
    sysu = evaluate(d, [1], [7, 7, 7, 1], q_camids=[6], g_camids=[1, 1, 1, 1], rule="sysu", max_rank=4)
    regdb = evaluate(d, [1], [7, 7, 7, 1], rule="regdb", max_rank=4)
    assert sysu["cmc"].tolist() == [0.0, 1.0, 1.0, 1.0]  # second distinct identity
    assert regdb["cmc"].tolist() == [0.0, 0.0, 0.0, 1.0]  # fourth item
    assert sysu["mAP"] == regdb["mAP"] == pytest.approx(1 / 4)


def test_vcm_removes_same_identity_and_same_camera_only() -> None:
    # g0 pid 1 cam 1 (removed: same pid and camera), g1 pid 2 cam 1 (kept), g2 pid 1 cam 2 (kept)
    d = np.array([[0.1, 0.2, 0.3]])
    out = evaluate(d, [1], [1, 2, 1], q_camids=[1], g_camids=[1, 1, 2], rule="vcm", max_rank=3)
    assert out["AP"][0] == pytest.approx(1 / 2)
    assert out["cmc"].tolist() == [0.0, 1.0, 1.0]


def test_queries_without_a_match_are_skipped_everywhere() -> None:
    d = np.array([[0.1, 0.2], [0.2, 0.1], [0.3, 0.4]])
    out = evaluate(d, [1, 2, 9], [1, 3], rule="regdb", max_rank=2)
    assert out["num_valid_queries"] == 1 and out["valid"].tolist() == [True, False, False]
    assert np.isnan(out["AP"][1]) and np.isnan(out["INP"][2])
    assert out["mAP"] == 1.0 and out["mINP"] == 1.0 and out["cmc"].tolist() == [1.0, 1.0]
    # a SYSU cam3 query whose only match is in cam2 has nothing left to find
    out = evaluate(np.array([[0.1, 0.2], [0.1, 0.2]]), [1, 1], [1, 4], [3, 6], [2, 1], rule="sysu", max_rank=2)
    assert out["valid"].tolist() == [False, True]


def test_cmc_is_padded_when_fewer_identities_than_max_rank_remain() -> None:
    d = np.array([[0.3, 0.1, 0.2]])
    out = evaluate(d, [1], [1, 2, 3], q_camids=[6], g_camids=[1, 1, 1], rule="sysu", max_rank=20)
    assert len(out["cmc"]) == 20
    assert out["cmc"].tolist() == [0.0, 0.0] + [1.0] * 18
    out = evaluate(d, [1], [1, 2, 3], rule="regdb", max_rank=20)
    assert out["cmc"].tolist() == [0.0, 0.0] + [1.0] * 18


def test_ties_are_broken_by_gallery_position() -> None:
    d = np.array([[0.5, 0.5]])
    assert evaluate(d, [1], [2, 1], rule="regdb")["mAP"] == pytest.approx(0.5)
    assert evaluate(d, [1], [1, 2], rule="regdb")["mAP"] == pytest.approx(1.0)
    # two true matches at the same distance behind one impostor: ranks 2 and 3
    d = np.array([[0.2, 0.7, 0.7]])
    assert evaluate(d, [1], [5, 1, 1], rule="regdb")["AP"][0] == pytest.approx((1 / 2 + 2 / 3) / 2)
    # an identity tied with the first match comes first only if it is earlier in the gallery
    d = np.array([[0.4, 0.4, 0.9]])
    assert evaluate(d, [1], [3, 1, 1], [6], [1, 1, 1], rule="sysu", max_rank=2)["cmc"].tolist() == [0.0, 1.0]
    assert evaluate(d, [1], [1, 3, 1], [6], [1, 1, 1], rule="sysu", max_rank=2)["cmc"].tolist() == [1.0, 1.0]


@pytest.mark.parametrize("rule", ["sysu", "regdb", "vcm", "llcm", "bupt"])
def test_perfect_features_score_one_everywhere(rule: str) -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(10, 32))
    g_pids = np.repeat(np.arange(10), 4)
    q_pids = np.repeat(np.arange(10), 2)
    gallery = centres[g_pids] + 1e-3 * rng.normal(size=(40, 32))
    query = centres[q_pids] + 1e-3 * rng.normal(size=(20, 32))
    out = evaluate(pairwise_distance(query, gallery), q_pids, g_pids, np.full(20, 6), np.full(40, 1), rule=rule)
    assert out["cmc"].tolist() == [1.0] * 20 and out["mAP"] == 1.0 and out["mINP"] == 1.0


def random_case(seed: int) -> tuple:
    rng = np.random.default_rng(seed)
    nq, ng = int(rng.integers(1, 30)), int(rng.integers(1, 50))
    ids = int(rng.integers(1, 12))
    q_pids, g_pids = rng.integers(0, ids, nq), rng.integers(0, ids, ng)
    q_cams, g_cams = rng.integers(1, 7, nq), rng.integers(1, 7, ng)
    d = rng.normal(size=(nq, ng))
    if seed % 3 == 0:
        d = np.round(d, 1)  # plenty of exact ties
    return d, q_pids, g_pids, q_cams, g_cams


@pytest.mark.parametrize("rule", ["sysu", "regdb", "vcm", "llcm", "bupt"])
def test_agrees_with_plain_reference_over_many_seeds(rule: str) -> None:
    checked = 0
    for seed in range(300):
        d, q_pids, g_pids, q_cams, g_cams = random_case(seed)
        max_rank = int(np.random.default_rng(seed).integers(1, 25))
        expected = reference_evaluate(d, q_pids, g_pids, q_cams, g_cams, rule, max_rank)
        if expected["num_valid_queries"] == 0:
            with pytest.raises(EvaluationError, match="no query has a true match"):
                evaluate(d, q_pids, g_pids, q_cams, g_cams, rule, max_rank)
            continue
        got = evaluate(torch.as_tensor(d) if seed % 2 else d, q_pids, g_pids, q_cams, g_cams, rule, max_rank)
        np.testing.assert_allclose(got["cmc"], expected["cmc"], rtol=0, atol=1e-12)
        np.testing.assert_allclose(got["AP"], expected["AP"], rtol=0, atol=1e-12)
        assert got["mAP"] == pytest.approx(expected["mAP"], abs=1e-12)
        assert got["mINP"] == pytest.approx(expected["mINP"], abs=1e-12)
        assert got["num_valid_queries"] == expected["num_valid_queries"]
        checked += 1
    assert checked > 200


def test_blocks_of_queries_give_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    import vireid_lib.eval.scoring as scoring

    d, q_pids, g_pids, q_cams, g_cams = random_case(7)
    whole = evaluate(d, q_pids, g_pids, q_cams, g_cams, "sysu")
    monkeypatch.setattr(scoring, "BLOCK_ENTRIES", d.shape[1] * 2)  # two queries per block
    split = evaluate(d, q_pids, g_pids, q_cams, g_cams, "sysu")
    np.testing.assert_array_equal(whole["AP"], split["AP"])
    np.testing.assert_array_equal(whole["cmc"], split["cmc"])


@pytest.mark.parametrize("bad,message", [
    (np.array([[0.1, np.nan]]), "NaN or infinite values .*query 0, gallery 1"),
    (np.array([[0.1, np.inf]]), "NaN or infinite"),
    (np.zeros((0, 3)), "must both be non-empty"),
    (np.zeros((2, 0)), "must both be non-empty"),
    (np.zeros(3), "2-D query x gallery"),
    (np.array([[1e39, 0.0]]), "beyond float32's range"),
])
def test_bad_distances(bad: np.ndarray, message: str) -> None:
    q = np.zeros(bad.shape[0] if bad.ndim == 2 else 1, int)
    g = np.zeros(bad.shape[1] if bad.ndim == 2 else 3, int)
    with pytest.raises(EvaluationError, match=message):
        evaluate(bad, q, g, rule="regdb")


def test_bad_labels_and_arguments() -> None:
    d = np.zeros((2, 3))
    with pytest.raises(EvaluationError, match=r"q_pids has shape \(3,\) but the distance matrix has 2 queries"):
        evaluate(d, [1, 2, 3], [1, 2, 3], rule="regdb")
    with pytest.raises(EvaluationError, match="g_camids has shape"):
        evaluate(d, [1, 2], [1, 2, 3], [1, 1], [1, 1], rule="vcm")
    with pytest.raises(EvaluationError, match="pass q_camids and g_camids"):
        evaluate(d, [1, 2], [1, 2, 3], rule="sysu")
    with pytest.raises(EvaluationError, match=r"rule='market'.*\('sysu', 'regdb', 'vcm', 'llcm', 'bupt'\)"):
        evaluate(d, [1, 2], [1, 2, 3], rule="market")
    with pytest.raises(EvaluationError, match="max_rank=0"):
        evaluate(d, [1, 2], [1, 2, 3], rule="regdb", max_rank=0)
    with pytest.raises(EvaluationError, match="integer labels"):
        evaluate(d, [1.5, 2.0], [1, 2, 3], rule="regdb")
    with pytest.raises(EvaluationError, match="no query has a true match"):
        evaluate(d, [7, 8], [1, 2, 3], rule="regdb")


def test_distances_from_features() -> None:
    q = torch.tensor([[3.0, 0.0], [0.0, 1.0]])
    g = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    cosine = pairwise_distance(q, g)
    assert torch.allclose(cosine, -torch.tensor([[1.0, 0.0, 2 ** -0.5], [0.0, 1.0, 2 ** -0.5]]))
    assert torch.allclose(pairwise_distance(q, g, "sqeuclidean"), torch.tensor([[4.0, 13.0, 5.0], [2.0, 1.0, 1.0]]))
    assert torch.allclose(pairwise_distance(q, g, "euclidean"), torch.tensor([[2.0, 13 ** 0.5, 5 ** 0.5], [2 ** 0.5, 1.0, 1.0]]))
    with pytest.raises(EvaluationError, match="metric='manhattan'"):
        pairwise_distance(q, g, "manhattan")
    with pytest.raises(EvaluationError, match="query features have 2 dimensions and gallery features 3"):
        pairwise_distance(q, torch.ones(2, 3))
    with pytest.raises(EvaluationError, match="gallery features holds NaN"):
        pairwise_distance(q, torch.tensor([[float("nan"), 0.0]]))
    with pytest.raises(EvaluationError, match="non-empty N x D"):
        pairwise_distance(torch.ones(0, 2), g)


def test_a_20000_square_problem_fits_in_4_gib() -> None:
    """Run in a fresh process so that its peak resident memory is this problem's alone."""
    import subprocess
    import sys

    program = (
        "import numpy as np, resource\n"
        "from vireid_lib.eval import evaluate\n"
        "rng = np.random.default_rng(0)\n"
        "n = 20000\n"
        "d = rng.random((n, n), dtype=np.float32)\n"
        "out = evaluate(d, rng.integers(0, 500, n), rng.integers(0, 500, n), rng.choice([3, 6], n), rng.integers(1, 6, n), rule='sysu')\n"
        "print(out['num_valid_queries'], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    valid, peak_kib = (int(v) for v in done.stdout.split())
    assert valid > 19000
    assert peak_kib < 4 * 2**20
