"""CST's diversity-consistency loss on hand-made inputs, both as the released code computes it and with the fix."""

from __future__ import annotations

import pytest
import torch

from vireid_lib.losses.consistency import (OFFICIAL_COVARIANCE_FEATURES, OFFICIAL_COVARIANCE_ROWS,
                                         PairedDiversityConsistency)


def test_invariance_is_the_mean_squared_difference_over_every_element() -> None:
    x = torch.tensor([[1.0, 2.0], [3.0, -1.0]])
    y = x.clone()
    y[0, 0] += 2.0  # one element of four moves by 2: mse = 4 / 4 = 1
    out = PairedDiversityConsistency(1.0, 0.0, 0.0)(x, y)
    assert out["dc_invariance"].item() == pytest.approx(1.0)
    assert out["dc"].item() == pytest.approx(1.0)
    assert PairedDiversityConsistency()(x, x.clone())["dc_invariance"].item() == 0.0


def test_variance_penalises_spread_below_one_per_dimension_and_averages_the_halves() -> None:
    collapsed = torch.ones(6, 4)  # std = sqrt(0 + 1e-4) = 0.01 in every dimension: relu(1 - 0.01) = 0.99
    spread = torch.tensor([[-2.0, 2.0, 2.0, -2.0], [2.0, -2.0, -2.0, 2.0]]).repeat(3, 1)  # std > 1 everywhere
    out = PairedDiversityConsistency()(collapsed, spread)
    assert out["dc_variance"].item() == pytest.approx(0.99 / 2, abs=1e-6)
    assert PairedDiversityConsistency()(spread, spread)["dc_variance"].item() == 0.0


def test_covariance_divides_as_the_released_code_does_by_default_and_as_vicreg_with_the_fix() -> None:
    x = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])  # centred, perfectly correlated: x^T x = [[2, 2], [2, 2]]
    y = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])  # x^T x = [[2, -2], [-2, 2]]
    # off-diagonal squares per half: (2 / rows)^2 * 2; halves added; divided by `features`
    official = PairedDiversityConsistency()(x, y)["dc_covariance"].item()
    rows, features = OFFICIAL_COVARIANCE_ROWS, OFFICIAL_COVARIANCE_FEATURES
    assert (rows, features) == (3, 8192 ** 3)
    assert official == pytest.approx(2 * 2 * (2 / 3) ** 2 / 8192 ** 3, rel=1e-5)
    fixed = PairedDiversityConsistency(official=False)(x, y)["dc_covariance"].item()
    assert fixed == pytest.approx(2 * 2 * (2 / 1) ** 2 / 2)  # rows N - 1 = 1, features D = 2
    uncorrelated = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    assert PairedDiversityConsistency(official=False)(uncorrelated, uncorrelated)["dc_covariance"].item() == 0.0


def test_the_official_covariance_is_negligible_beside_the_fixed_one_at_cst_width() -> None:
    g = torch.Generator().manual_seed(0)
    shared = torch.randn(8, 1, generator=g)
    x = shared + 0.1 * torch.randn(8, 2048, generator=g)  # strongly correlated dimensions
    y = shared + 0.1 * torch.randn(8, 2048, generator=g)
    official = PairedDiversityConsistency()(x, y)["dc_covariance"].item()
    fixed = PairedDiversityConsistency(official=False)(x, y)["dc_covariance"].item()
    assert fixed > 100 and official < 1e-3


def test_total_is_the_weighted_sum_and_gradients_reach_both_halves() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 5, generator=g, requires_grad=True)
    y = torch.randn(8, 5, generator=g, requires_grad=True)
    loss = PairedDiversityConsistency(2.0, 3.0, 0.5, official=False)
    out = loss(x, y)
    expected = 2.0 * out["dc_invariance"] + 3.0 * out["dc_variance"] + 0.5 * out["dc_covariance"]
    torch.testing.assert_close(out["dc"].detach(), expected)
    out["dc"].backward()
    assert x.grad.abs().sum() > 0 and y.grad.abs().sum() > 0
    assert not out["dc_variance"].requires_grad  # the parts are reported, only the sum is trained


def test_bad_weights_and_unpaired_halves_are_refused() -> None:
    with pytest.raises(ValueError, match="invariance weight must be >= 0, got -1"):
        PairedDiversityConsistency(invariance=-1)
    with pytest.raises(ValueError, match="as many visible as infrared"):
        PairedDiversityConsistency()(torch.zeros(4, 3), torch.zeros(3, 3))
    with pytest.raises(ValueError, match=r"\[N >= 2, D\]"):
        PairedDiversityConsistency()(torch.zeros(1, 3), torch.zeros(1, 3))


def test_half_precision_inputs_are_computed_in_float32() -> None:
    x = torch.randn(4, 3).half()
    out = PairedDiversityConsistency()(x, x.clone())
    assert out["dc"].dtype == torch.float32
