"""Metric losses against values worked out by hand on points on a line."""

from __future__ import annotations

import math

import pytest
import torch

from vireid_lib.losses import (
    BatchHardTriplet,
    WeightedRegularizedTriplet,
    batch_hard_mining,
    pairwise_euclidean,
    weighted_mining,
)

DIAG = 1e-6  # sqrt of the 1e-12 floor: the distance of a point to itself


def softplus(v: float) -> float:
    return math.log1p(math.exp(v))


def line(*xs: float, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Points on a line as N x 1 features."""
    return torch.tensor([[x] for x in xs], dtype=dtype)


# ----------------------------------------------------------------------------- distances


def test_pairwise_euclidean_on_a_3_4_5_triangle() -> None:
    p = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]], dtype=torch.float64)
    expected = torch.tensor([[DIAG, 3.0, 4.0], [3.0, DIAG, 5.0], [4.0, 5.0, DIAG]], dtype=torch.float64)
    assert torch.allclose(pairwise_euclidean(p, p), expected, rtol=0, atol=1e-12)
    squared = torch.tensor([[0.0, 9.0, 16.0], [9.0, 0.0, 25.0], [16.0, 25.0, 0.0]], dtype=torch.float64)
    assert torch.allclose(pairwise_euclidean(p, p, squared=True), squared, rtol=0, atol=1e-12)
    # Rectangular: the first point against the other two.
    assert torch.allclose(pairwise_euclidean(p[:1], p[1:]), torch.tensor([[3.0, 4.0]], dtype=torch.float64))


def test_pairwise_euclidean_gradient_is_finite_for_identical_points() -> None:
    x = torch.tensor([[1.0, 2.0], [1.0, 2.0], [0.0, 0.0]], requires_grad=True)
    pairwise_euclidean(x, x).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_pairwise_euclidean_stays_float32_under_bf16_autocast() -> None:
    x = torch.tensor([[100.0, 0.0], [100.5, 0.0]])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        dist = pairwise_euclidean(x, x)
    # In bf16, 100^2 + 100.5^2 - 2 * 100 * 100.5 would lose the 0.25 entirely.
    assert dist.dtype == torch.float32
    assert dist[0, 1].item() == pytest.approx(0.5, rel=1e-4)


def test_pairwise_euclidean_rejects_mismatched_dimensions() -> None:
    with pytest.raises(ValueError, match="dimensions"):
        pairwise_euclidean(torch.zeros(2, 3), torch.zeros(2, 4))


# ----------------------------------------------------------------------------- batch-hard triplet

# Points 0, 2 (label 0) and 3, 7 (label 1); distances to the other points:
#   anchor at 0: positive 2       -> d_ap = 2;  negatives 3, 7 -> d_an = 3
#   anchor at 2: positive 2       -> d_ap = 2;  negatives 1, 5 -> d_an = 1
#   anchor at 3: positive 4       -> d_ap = 4;  negatives 3, 1 -> d_an = 1
#   anchor at 7: positive 4       -> d_ap = 4;  negatives 7, 5 -> d_an = 5
HARD_X = (0.0, 2.0, 3.0, 7.0)
HARD_LABELS = torch.tensor([0, 0, 1, 1])
HARD_AP = [2.0, 2.0, 4.0, 4.0]
HARD_AN = [3.0, 1.0, 1.0, 5.0]


def test_batch_hard_mining_by_hand() -> None:
    d_ap, d_an = batch_hard_mining(pairwise_euclidean(line(*HARD_X), line(*HARD_X)), HARD_LABELS)
    assert d_ap.tolist() == pytest.approx(HARD_AP, abs=1e-12)
    assert d_an.tolist() == pytest.approx(HARD_AN, abs=1e-12)


def test_batch_hard_triplet_with_margin_by_hand() -> None:
    # relu(d_ap - d_an + 0.3): relu(-0.7) = 0, relu(1.3) = 1.3, relu(3.3) = 3.3, relu(-0.7) = 0.
    expected = (0.0 + 1.3 + 3.3 + 0.0) / 4
    loss, precision = BatchHardTriplet(margin=0.3).loss_and_precision(line(*HARD_X), HARD_LABELS)
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    # d_an > d_ap for anchors 0 (3 > 2) and 7 (5 > 4) only.
    assert precision.item() == pytest.approx(0.5)
    assert BatchHardTriplet()(line(*HARD_X), HARD_LABELS).item() == pytest.approx(expected, rel=1e-12)


def test_batch_hard_triplet_soft_margin_by_hand() -> None:
    # softplus(d_ap - d_an): softplus(-1), softplus(1), softplus(3), softplus(-1).
    expected = (softplus(-1) + softplus(1) + softplus(3) + softplus(-1)) / 4
    loss = BatchHardTriplet(margin=None)(line(*HARD_X), HARD_LABELS)
    assert loss.item() == pytest.approx(expected, rel=1e-12)


def test_batch_hard_triplet_does_not_depend_on_batch_order() -> None:
    order = [3, 0, 2, 1]
    x = line(*HARD_X)[order]
    labels = HARD_LABELS[order]
    assert BatchHardTriplet()(x, labels).item() == pytest.approx((1.3 + 3.3) / 4, rel=1e-12)


def test_batch_hard_triplet_is_zero_when_classes_are_far_apart() -> None:
    # d_ap = 1 and d_an = 99 for every anchor: relu(1 - 99 + 0.3) = 0.
    loss, precision = BatchHardTriplet(margin=0.3).loss_and_precision(line(0, 1, 100, 101), HARD_LABELS)
    assert loss.item() == 0.0
    assert precision.item() == 1.0


def test_batch_hard_triplet_normalize_ignores_feature_scale() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    loss = BatchHardTriplet(normalize=True)
    assert loss(10 * x, labels).item() == pytest.approx(loss(x, labels).item(), rel=1e-9)


# ----------------------------------------------------------------------------- WRT

# Points 0, 1 (label 0) and 3, 4 (label 1). Every anchor's positives are itself (distance
# DIAG, official behaviour) and its partner at distance 1. Negatives: anchors 0 and 4 see
# {3, 4}, anchors 1 and 3 see {2, 3}.
WRT_X = (0.0, 1.0, 3.0, 4.0)
WRT_LABELS = torch.tensor([0, 0, 1, 1])


def official_positive() -> float:
    # AGW shifts the positive logits by their max (1): exp(DIAG - 1) for the anchor, exp(0) for
    # the partner, and adds 1e-6 to the denominator. Without the 1e-6 and DIAG the weights are
    # 1 / (1 + e) = 0.2689 (anchor) and e / (1 + e) = 0.7311 (partner).
    e_self, e_partner = math.exp(DIAG - 1.0), math.exp(0.0)
    z = e_self + e_partner + 1e-6
    return (DIAG * e_self + 1.0 * e_partner) / z


def official_negative(d1: float, d2: float) -> float:
    # AGW's shift for the negative logits -d is always 0 (the masked entries count as 0 in the
    # max), so the weights are exp(-d) / (exp(-d1) + exp(-d2) + 1e-6).
    e1, e2 = math.exp(-d1), math.exp(-d2)
    return (d1 * e1 + d2 * e2) / (e1 + e2 + 1e-6)


def exact_negative(d1: float, d2: float) -> float:
    # softmax(-d) over the two negatives: w1 = 1 / (1 + exp(d1 - d2)), e.g. (3, 4) -> 0.7311, 0.2689.
    w1 = 1.0 / (1.0 + math.exp(d1 - d2))
    return w1 * d1 + (1.0 - w1) * d2


def test_wrt_weighted_distances_by_hand() -> None:
    dist = pairwise_euclidean(line(*WRT_X), line(*WRT_X))
    fp, cn = weighted_mining(dist, WRT_LABELS)
    assert fp.tolist() == pytest.approx([official_positive()] * 4, rel=1e-12)
    assert fp[0].item() == pytest.approx(math.e / (1 + math.e), abs=1e-5)
    expected_cn = [official_negative(3, 4), official_negative(2, 3), official_negative(2, 3), official_negative(3, 4)]
    assert cn.tolist() == pytest.approx(expected_cn, rel=1e-12)
    # (3 e^-3 + 4 e^-4) / (e^-3 + e^-4) = (3e + 4) / (e + 1) = 3.2689, up to the 1e-6.
    assert cn[0].item() == pytest.approx((3 * math.e + 4) / (math.e + 1), abs=1e-4)


def test_wrt_loss_by_hand() -> None:
    fp = official_positive()
    # SoftMarginLoss(cn - fp, 1) = mean softplus(fp - cn); anchors 0 and 4 alike, 1 and 3 alike.
    expected = (2 * softplus(fp - official_negative(3, 4)) + 2 * softplus(fp - official_negative(2, 3))) / 4
    loss, precision = WeightedRegularizedTriplet().loss_and_precision(line(*WRT_X), WRT_LABELS)
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    assert loss.item() == pytest.approx(0.1353, abs=1e-4)
    assert precision.item() == 1.0
    # The same in float32, the dtype training runs in.
    loss32 = WeightedRegularizedTriplet()(line(*WRT_X, dtype=torch.float32), WRT_LABELS)
    assert loss32.item() == pytest.approx(expected, rel=1e-5)


def test_wrt_with_both_fixes_by_hand() -> None:
    # exclude_anchor: the partner is the only positive, weight 1, so fp = 1 exactly.
    # exact_softmax: the negative weights sum to 1, no 1e-6.
    fp = 1.0
    expected = (2 * softplus(fp - exact_negative(3, 4)) + 2 * softplus(fp - exact_negative(2, 3))) / 4
    loss = WeightedRegularizedTriplet(exclude_anchor=True, exact_softmax=True)(line(*WRT_X), WRT_LABELS)
    assert loss.item() == pytest.approx(expected, rel=1e-12)


def test_wrt_decreases_as_classes_separate() -> None:
    official, exact = WeightedRegularizedTriplet(), WeightedRegularizedTriplet(exact_softmax=True)
    shifts = [0.0, 1.0, 2.0, 4.0, 6.0, 8.0]
    for loss_fn in (official, exact):
        values = [loss_fn(line(0, 1, 3 + s, 4 + s), WRT_LABELS).item() for s in shifts]
        assert all(a > b for a, b in zip(values, values[1:])), values
    # The exact softmax keeps decreasing however far the classes move apart.
    far = [exact(line(0, 1, 3 + s, 4 + s), WRT_LABELS).item() for s in (8.0, 16.0, 32.0)]
    assert far[0] > far[1] > far[2]


def test_wrt_official_negative_weights_vanish_for_distant_classes() -> None:
    # Official quirk, kept on purpose: with negatives 40 and 41 away, exp(-40) + exp(-41) ~ 6e-18 (anchor at 1)
    # is swamped by the 1e-6 in the denominator, so closest_negative ~ 0 and the loss tends to
    # softplus(furthest_positive) instead of 0. exact_softmax=True removes it.
    x = line(0, 1, 41, 42)
    fp = official_positive()
    cn_anchor0 = official_negative(41, 42)
    cn_anchor1 = official_negative(40, 41)
    assert cn_anchor0 < 1e-9 and cn_anchor1 < 1e-9  # e.g. 40 * e^-40 / 1e-6 ~ 2e-10
    expected = (2 * softplus(fp - cn_anchor0) + 2 * softplus(fp - cn_anchor1)) / 4
    assert WeightedRegularizedTriplet()(x, WRT_LABELS).item() == pytest.approx(expected, rel=1e-12)
    assert WeightedRegularizedTriplet(exact_softmax=True)(x, WRT_LABELS).item() < 1e-15


def test_wrt_gradient_is_finite_with_duplicate_features() -> None:
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(8, 16, generator=gen) * 5
    x = torch.cat([x, x[:2]]).requires_grad_(True)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3, 0, 0])
    for loss_fn in (WeightedRegularizedTriplet(), WeightedRegularizedTriplet(exact_softmax=True), BatchHardTriplet()):
        (grad,) = torch.autograd.grad(loss_fn(x, labels), x)
        assert torch.isfinite(grad).all()


# ----------------------------------------------------------------------------- bad batches

LOSSES = [BatchHardTriplet(), BatchHardTriplet(margin=None), WeightedRegularizedTriplet(),
          WeightedRegularizedTriplet(exclude_anchor=True, exact_softmax=True)]


@pytest.mark.parametrize("loss_fn", LOSSES, ids=lambda m: type(m).__name__)
def test_identity_seen_once_raises_with_sampler_fix(loss_fn: torch.nn.Module) -> None:
    with pytest.raises(ValueError, match=r"anchor 2 \(label 1\).*at least 2 images per identity"):
        loss_fn(line(0, 1, 3), torch.tensor([0, 0, 1]))


@pytest.mark.parametrize("loss_fn", LOSSES, ids=lambda m: type(m).__name__)
def test_single_identity_batch_raises_with_sampler_fix(loss_fn: torch.nn.Module) -> None:
    with pytest.raises(ValueError, match="at least 2 identities per batch"):
        loss_fn(line(0, 1, 3), torch.tensor([5, 5, 5]))


def test_mining_functions_check_their_inputs() -> None:
    dist = pairwise_euclidean(line(0, 1, 3), line(0, 1, 3))
    with pytest.raises(ValueError, match="at least 2 images per identity"):
        batch_hard_mining(dist, torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="at least 2 images per identity"):
        weighted_mining(dist, torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="labels must have shape"):
        batch_hard_mining(dist, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="margin"):
        BatchHardTriplet(margin=-0.1)
