"""The torch route of the evaluator (``backend="torch"``), run on CPU tensors (and on CUDA where there is
one): the same CMC as the numpy route and the plain reference, AP and INP to 1e-12, ties in the same order."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.eval.reference import reference_evaluate
from vireid_lib.eval import EvaluationError, evaluate
from vireid_lib.eval import scoring

RULES = ("sysu", "regdb", "vcm", "llcm", "bupt")
DTYPES = (torch.float32, torch.float64, torch.bfloat16)


def tied_case(seed: int, rule: str) -> tuple:
    """A small problem full of exact ties (integer distances, +0.0 beside -0.0 in some seeds, or
    bfloat16 rounding), with some queries left without a true match: identities the gallery lacks,
    and for SYSU-MM01 and HITSZ-VCM cameras chosen so that the rule removes matches too."""
    rng = np.random.default_rng(seed)
    num_q, num_g = int(rng.integers(1, 40)), int(rng.integers(1, 60))
    ids = int(rng.integers(1, 10))
    q_pids, g_pids = rng.integers(0, ids + 2, num_q), rng.integers(0, ids, num_g)  # ids and ids+1: never in the gallery
    if rule == "sysu":
        q_cams, g_cams = rng.choice([3, 6], num_q), rng.choice([1, 2, 4, 5], num_g)
    else:
        q_cams, g_cams = rng.integers(1, 4, num_q), rng.integers(1, 4, num_g)
    if seed % 2:
        d = rng.integers(-3, 6, (num_q, num_g)).astype(np.float64)
        d = np.where(rng.random(d.shape) < 0.5, -d, d)  # -0.0 and 0.0 side by side: one distance
    else:
        d = rng.normal(size=(num_q, num_g))
    return d, q_pids, g_pids, q_cams, g_cams


def assert_torch_route_agrees(d: torch.Tensor, labels: tuple, rule: str, max_rank: int) -> bool:
    """The torch route against the numpy route and the reference; False if no query is valid."""
    values = d.float().numpy() if d.dtype == torch.bfloat16 else d.numpy()  # exact: bf16 widens to float32
    expected = reference_evaluate(values.astype(np.float64), *labels, rule=rule, max_rank=max_rank)
    if expected["num_valid_queries"] == 0:
        for backend in ("numpy", "torch"):
            with pytest.raises(EvaluationError, match="no query has a true match"):
                evaluate(d, *labels, rule=rule, max_rank=max_rank, backend=backend)
        return False
    numpy_route = evaluate(values, *labels, rule=rule, max_rank=max_rank, backend="numpy")
    got = evaluate(d, *labels, rule=rule, max_rank=max_rank, backend="torch")
    np.testing.assert_array_equal(got["cmc"], numpy_route["cmc"])
    np.testing.assert_array_equal(got["cmc"], expected["cmc"])
    np.testing.assert_array_equal(got["valid"], ~np.isnan(expected["AP"]))
    np.testing.assert_allclose(got["AP"], expected["AP"], rtol=0, atol=1e-12)  # NaN where skipped, in both
    np.testing.assert_allclose(got["AP"], numpy_route["AP"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(got["INP"], numpy_route["INP"], rtol=0, atol=1e-12)
    assert got["mAP"] == pytest.approx(expected["mAP"], abs=1e-12)
    assert got["mINP"] == pytest.approx(expected["mINP"], abs=1e-12)
    assert got["num_valid_queries"] == expected["num_valid_queries"] and got["num_queries"] == len(labels[0])
    return True


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("rule", RULES)
def test_torch_route_equals_numpy_route_and_reference(rule: str, dtype: torch.dtype,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    checked = 0
    for seed in range(150):
        d, *labels = tied_case(seed, rule)
        # one query per block, a few per block, and the whole matrix in one block
        monkeypatch.setattr(scoring, "DEVICE_BLOCK_ENTRIES", (1, 3 * d.shape[1], 1 << 24)[seed % 3])
        max_rank = int(np.random.default_rng(seed).integers(1, 25))
        checked += assert_torch_route_agrees(torch.as_tensor(d).to(dtype), tuple(labels), rule, max_rank)
    assert checked > 100


def test_blocks_are_really_used(monkeypatch: pytest.MonkeyPatch) -> None:
    d, *labels = tied_case(1, "sysu")
    calls = []
    score_block = scoring._score_block_torch
    monkeypatch.setattr(scoring, "_score_block_torch", lambda block, *rest: calls.append(len(block)) or
                        score_block(block, *rest))
    monkeypatch.setattr(scoring, "DEVICE_BLOCK_ENTRIES", 2 * d.shape[1] + 1)
    whole = evaluate(d, *labels, rule="sysu", backend="numpy")
    blocked = evaluate(torch.as_tensor(d), *labels, rule="sysu", backend="torch")
    assert calls == [2] * (len(d) // 2) + [1] * (len(d) % 2)
    np.testing.assert_array_equal(blocked["cmc"], whole["cmc"])


def test_ties_and_zeros_rank_in_gallery_order() -> None:
    def scored(d: list, q: list, g: list, *cams, rule: str = "regdb", **kw) -> dict:
        return evaluate(torch.tensor(d), q, g, *cams, rule=rule, backend="torch", **kw)

    assert scored([[0.5, 0.5]], [1], [2, 1])["mAP"] == 0.5
    assert scored([[0.5, 0.5]], [1], [1, 2])["mAP"] == 1.0
    assert scored([[0.0, -0.0]], [1], [2, 1])["mAP"] == 0.5  # -0.0 is not closer than 0.0
    assert scored([[-0.0, 0.0]], [1], [2, 1])["mAP"] == 0.5
    # two true matches at the same distance behind one impostor: ranks 2 and 3
    assert scored([[0.2, 0.7, 0.7]], [1], [5, 1, 1])["AP"][0] == pytest.approx((1 / 2 + 2 / 3) / 2, abs=1e-15)
    # SYSU-MM01: an identity tied with the first match comes first only if earlier in the gallery
    sysu = dict(rule="sysu", max_rank=2)
    assert scored([[0.4, 0.4, 0.9]], [1], [3, 1, 1], [6], [1, 1, 1], **sysu)["cmc"].tolist() == [0.0, 1.0]
    assert scored([[0.4, 0.4, 0.9]], [1], [1, 3, 1], [6], [1, 1, 1], **sysu)["cmc"].tolist() == [1.0, 1.0]
    # ... and repeated identities ahead count once: pid 7 three times, then pid 4, then the match
    out = scored([[0.1, 0.1, 0.2, 0.3, 0.3]], [1], [7, 7, 7, 4, 1], [6], [1] * 5, rule="sysu", max_rank=4)
    assert out["cmc"].tolist() == [0.0, 0.0, 1.0, 1.0] and out["mAP"] == 0.2


def test_rules_remove_what_the_protocols_say() -> None:
    # SYSU-MM01: the cam3 query loses the cam2 item g0 (its own identity) -> match at rank 2;
    # the cam6 query keeps everything -> matches at ranks 1 and 3
    d = torch.tensor([[0.1, 0.2, 0.3], [0.1, 0.2, 0.3]])
    out = evaluate(d, [1, 1], [1, 5, 1], [3, 6], [2, 1, 4], rule="sysu", max_rank=3, backend="torch")
    assert out["AP"].tolist() == [1 / 2, (1 + 2 / 3) / 2] and out["cmc"].tolist() == [0.5, 1.0, 1.0]
    # HITSZ-VCM: g0 (same pid, same camera) leaves; g1 (other pid, same camera) and g2 stay
    out = evaluate(d[:1], [1], [1, 2, 1], [1], [1, 1, 2], rule="vcm", max_rank=3, backend="torch")
    assert out["AP"].tolist() == [1 / 2] and out["INP"].tolist() == [1 / 2] and out["cmc"].tolist() == [0.0, 1.0, 1.0]


def test_queries_without_a_match_are_skipped_like_the_numpy_route() -> None:
    d = torch.tensor([[0.1, 0.2], [0.2, 0.1], [0.3, 0.4]])
    out = evaluate(d, [1, 2, 9], [1, 3], rule="regdb", max_rank=2, backend="torch")
    assert out["num_valid_queries"] == 1 and out["valid"].tolist() == [True, False, False]
    assert np.isnan(out["AP"][1]) and np.isnan(out["INP"][2])
    assert out["mAP"] == 1.0 and out["mINP"] == 1.0 and out["cmc"].tolist() == [1.0, 1.0]
    # a SYSU cam3 query whose only match is in cam2, and a VCM query whose only match shares its camera
    out = evaluate(d[:2], [1, 1], [1, 4], [3, 6], [2, 1], rule="sysu", max_rank=2, backend="torch")
    assert out["valid"].tolist() == [False, True]
    out = evaluate(d[:2], [1, 1], [1, 4], [2, 5], [2, 1], rule="vcm", max_rank=2, backend="torch")
    assert out["valid"].tolist() == [False, True]
    with pytest.raises(EvaluationError, match="no query has a true match"):
        evaluate(d, [7, 8, 9], [1, 3], rule="regdb", backend="torch")


def test_any_input_is_scored_and_left_as_it_was() -> None:
    d, *labels = tied_case(3, "vcm")
    whole = np.round(d)
    transposed = torch.as_tensor(np.ascontiguousarray(d.T)).T  # a non-contiguous view
    # each input beside the numpy array the numpy route scores it as
    cases = [(transposed, d), (torch.as_tensor(d).requires_grad_(), d), (torch.as_tensor(d).half(),
             torch.as_tensor(d).half().float().numpy()), (torch.as_tensor(whole).to(torch.int64), whole), (d, d)]
    for distmat, values in cases:
        before = torch.as_tensor(distmat).detach().clone()
        expected = evaluate(values, *labels, rule="vcm", backend="numpy")
        got = evaluate(distmat, *[torch.as_tensor(x) for x in labels], rule="vcm", backend="torch")
        np.testing.assert_array_equal(got["cmc"], expected["cmc"])
        np.testing.assert_allclose(got["AP"], expected["AP"], rtol=0, atol=1e-12)
        assert torch.equal(torch.as_tensor(distmat).detach(), before)  # removed items were written to a copy


def test_auto_scores_cpu_tensors_with_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    d, *labels = tied_case(5, "sysu")
    routes = []
    for name in ("_score_numpy", "_score_torch"):
        original = getattr(scoring, name)
        monkeypatch.setattr(scoring, name, lambda *a, _name=name, _f=original: routes.append(_name) or _f(*a))
    monkeypatch.setattr(scoring, "DEVICE_MIN_ENTRIES", 1)  # any size counts as large: only the device decides
    for distmat in (d, torch.as_tensor(d), torch.as_tensor(d).bfloat16()):
        evaluate(distmat, *labels, rule="sysu")
    evaluate(torch.as_tensor(d), *labels, rule="sysu", backend="numpy")
    assert routes == ["_score_numpy"] * 4
    evaluate(d, *labels, rule="sysu", backend="torch")  # a numpy array forced onto torch: scored on the CPU
    assert routes[-1] == "_score_torch"


@pytest.mark.parametrize("bad,message", [
    (torch.tensor([[0.1, float("nan")], [0.0, float("inf")]]),
     r"2 NaN or infinite values \(first at query 0, gallery 1\)"),
    (torch.zeros((0, 3)), "must both be non-empty"),
    (torch.zeros(3), "2-D query x gallery"),
    (torch.tensor([[1e39, 0.0]], dtype=torch.float64), "beyond float32's range"),
])
def test_bad_distances_give_the_numpy_routes_message(bad: torch.Tensor, message: str) -> None:
    q = np.zeros(bad.shape[0] if bad.ndim == 2 else 1, int)
    g = np.zeros(bad.shape[1] if bad.ndim == 2 else 3, int)
    errors = []
    for backend in ("numpy", "torch"):
        with pytest.raises(EvaluationError, match=message) as caught:
            evaluate(bad, q, g, rule="regdb", backend=backend)
        errors.append(str(caught.value))
    assert errors[0] == errors[1]


def test_unknown_backend_is_named() -> None:
    with pytest.raises(EvaluationError, match=r"backend='cuda' is not known; use one of \('auto', 'numpy', 'torch'\)"):
        evaluate(np.zeros((1, 1)), [0], [0], rule="regdb", backend="cuda")
