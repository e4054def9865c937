"""The diversity-consistency loss on hand-made inputs."""

from __future__ import annotations

import pytest
import torch

from vireid_lib.losses.consistency import (DiversityConsistencyLoss, covariance_floor, covariance_term, invariance_term,
                                         variance_term)


def test_zero_spread_is_penalised_by_gamma_per_dimension() -> None:
    collapsed = torch.ones(6, 4)
    # std = sqrt(0 + 1e-4) = 0.01 in every dimension
    assert variance_term(collapsed, gamma=1.0) == pytest.approx(0.99, abs=1e-6)
    spread = torch.tensor([[-2.0, 2.0], [2.0, -2.0], [-2.0, -2.0], [2.0, 2.0]])  # std > 1 everywhere
    assert variance_term(spread, gamma=1.0) == 0.0


def test_identical_cross_modal_features_give_zero_invariance() -> None:
    labels = torch.tensor([0, 1, 0, 1])
    modalities = torch.tensor([0, 0, 1, 1])
    same = torch.tensor([[1.0, 2.0], [3.0, -1.0], [1.0, 2.0], [3.0, -1.0]])
    assert invariance_term(same, labels, modalities) == 0.0
    shifted = same.clone()
    shifted[2] += torch.tensor([2.0, 0.0])  # identity 0's infrared feature moves by (2, 0)
    # identity 0: mean over dims of (-2, 0)^2 = 2; identity 1: 0; average over identities = 1
    assert invariance_term(shifted, labels, modalities) == pytest.approx(1.0)
    # an identity seen in one modality only does not count
    assert invariance_term(shifted, torch.tensor([0, 1, 2, 3]), modalities) == 0.0


def test_covariance_counts_only_off_diagonal_terms() -> None:
    x = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])  # perfectly correlated: cov = [[2, 2], [2, 2]]
    assert covariance_term(x) == pytest.approx((2.0**2 + 2.0**2) / 2)
    y = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])  # uncorrelated
    assert covariance_term(y) == pytest.approx(0.0)


def test_total_is_the_weighted_sum_and_weights_are_checked() -> None:
    x = torch.randn(8, 5, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, 3] * 2)
    modalities = torch.tensor([0] * 4 + [1] * 4)
    out = DiversityConsistencyLoss(2.0, 3.0, 0.5)(x, labels, modalities)
    expected = 2.0 * out["dc_variance"] + 3.0 * out["dc_invariance"] + 0.5 * out["dc_covariance"]
    torch.testing.assert_close(out["dc"], expected)
    with pytest.raises(ValueError, match="invariance_weight=-1"):
        DiversityConsistencyLoss(invariance_weight=-1)
    with pytest.raises(ValueError, match=r"\[N >= 2, D\]"):
        DiversityConsistencyLoss()(torch.zeros(1, 3), labels[:1], modalities[:1])


def _hadamard(n: int) -> torch.Tensor:
    h = torch.ones(1, 1)
    while h.shape[0] < n:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)])
    return h


def test_a_decorrelated_unit_variance_batch_smaller_than_d_reaches_the_rank_floor() -> None:
    torch.manual_seed(0)
    n, d = 60, 64  # fewer samples than dimensions: the covariance has rank n - 1 = 59 < 64
    # The most decorrelated covariance of that rank with a unit diagonal is (d / (n-1)) x a projection of rank n-1
    # with a constant diagonal: the complement of 5 Hadamard columns (each row holds 5 entries of +-1/8).
    basis = _hadamard(d) / d**0.5
    spanned = basis[:, 5:]  # d x 59, orthonormal columns, every row of squared norm 59/64
    centred = torch.linalg.qr(torch.cat([torch.ones(n, 1), torch.randn(n, n - 1)], 1))[0][:, 1:]  # 59 centred columns
    features = (d**0.5) * centred @ spanned.T  # X^T X = d P, so every dimension has variance exactly 1
    assert features.var(dim=0).sub(1).abs().max() < 1e-4
    assert variance_term(features) == pytest.approx(0.0, abs=1e-6)
    floor = covariance_floor(n, d)
    assert floor == pytest.approx(d / (n - 1) - 1)
    assert covariance_term(features) == pytest.approx(floor, rel=1e-3) and covariance_term(features) < 0.1
    # a unit-variance batch whose dimensions share a common factor (correlation 0.5) costs over a hundred times more
    shared = torch.randn(n, 1)
    correlated = (shared + torch.randn(n, d)) / 2**0.5
    correlated = (correlated - correlated.mean(0)) / correlated.std(0)
    assert covariance_term(correlated) > 100 * covariance_term(features)
    # and a random batch of the same size sits well above the floor
    noise = torch.randn(n, d)
    assert covariance_term((noise - noise.mean(0)) / noise.std(0)) > 5 * floor


def test_the_floor_at_cst_recipe_batch() -> None:
    assert covariance_floor(32, 1024) == pytest.approx(1024 / 31 - 1)
    assert covariance_floor(2048, 1024) == 0.0
