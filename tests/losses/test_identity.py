"""Identity losses against values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vireid_lib.losses import CrossEntropyLabelSmooth, MutualKL


def test_label_smooth_with_zero_epsilon_is_plain_cross_entropy() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    targets = torch.tensor([0, 4, 2, 2, 1, 3])
    loss = CrossEntropyLabelSmooth(num_classes=5)(logits, targets)
    assert torch.allclose(loss, F.cross_entropy(logits, targets), rtol=1e-12, atol=0)


def test_label_smooth_matches_hand_formula() -> None:
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    targets = torch.tensor([0, 2])
    eps, k = 0.1, 3
    # Row 1: log p_j = j - log(e + e^2 + e^3) for logits j = 1, 2, 3; target class 0 gets
    # mass 1 - eps + eps/3, the other two eps/3 each.
    lse = math.log(math.e + math.e**2 + math.e**3)
    log_p = [1 - lse, 2 - lse, 3 - lse]
    q = [1 - eps + eps / k, eps / k, eps / k]
    row1 = -sum(qi * lpi for qi, lpi in zip(q, log_p))
    # Row 2: uniform logits, every log p = -log 3, and the targets sum to 1 whatever eps is.
    row2 = math.log(3)
    expected = (row1 + row2) / 2
    loss = CrossEntropyLabelSmooth(num_classes=3, epsilon=eps)(logits, targets)
    assert loss.item() == pytest.approx(expected, rel=1e-12)


def test_label_smooth_rejects_bad_inputs() -> None:
    loss = CrossEntropyLabelSmooth(num_classes=3)
    with pytest.raises(ValueError, match="num_classes=3"):
        loss(torch.zeros(2, 4), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="relabel"):
        loss(torch.zeros(2, 3), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="epsilon"):
        CrossEntropyLabelSmooth(num_classes=3, epsilon=1.5)


def test_mutual_kl_matches_hand_formula() -> None:
    # Row 1: student [0, 0] -> p_s = (1/2, 1/2); teacher [log 3, 0] -> p_t = (3/4, 1/4).
    # Row 2: student [log 3, 0] -> (3/4, 1/4); teacher [0, 0] -> (1/2, 1/2).
    student = torch.tensor([[0.0, 0.0], [math.log(3), 0.0]], dtype=torch.float64)
    teacher = torch.tensor([[math.log(3), 0.0], [0.0, 0.0]], dtype=torch.float64)
    kl_row1 = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    kl_row2 = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    expected = (kl_row1 + kl_row2) / 2  # batchmean: summed over classes, averaged over 2 rows
    assert MutualKL()(student, teacher).item() == pytest.approx(expected, rel=1e-12)


def test_mutual_kl_temperature_softens_and_rescales() -> None:
    student = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
    teacher = torch.tensor([[math.log(3), 0.0]], dtype=torch.float64)
    # T = 2: teacher logits / 2 = [log(3)/2, 0] -> p_t = (sqrt3, 1) / (sqrt3 + 1); student stays uniform.
    s3 = math.sqrt(3)
    p1, p2 = s3 / (s3 + 1), 1 / (s3 + 1)
    kl = p1 * math.log(p1 / 0.5) + p2 * math.log(p2 / 0.5)
    expected = kl * 2**2  # times T^2
    assert MutualKL(temperature=2.0)(student, teacher).item() == pytest.approx(expected, rel=1e-12)


def test_mutual_kl_is_zero_for_identical_predictions() -> None:
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 3.0, 1.0]])
    assert MutualKL()(logits, logits.clone()).item() == pytest.approx(0.0, abs=1e-7)


def test_mutual_kl_gradient_reaches_only_the_student() -> None:
    student = torch.tensor([[0.0, 0.0], [1.0, -1.0]], requires_grad=True)
    teacher = torch.tensor([[1.0, 0.0], [0.0, 2.0]], requires_grad=True)
    loss = MutualKL()(student, teacher)
    grad_student, grad_teacher = torch.autograd.grad(loss, [student, teacher], allow_unused=True)
    assert grad_teacher is None or torch.count_nonzero(grad_teacher) == 0
    assert torch.count_nonzero(grad_student) > 0


def test_mutual_kl_rejects_mismatched_heads() -> None:
    with pytest.raises(ValueError, match="same shape"):
        MutualKL()(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="temperature"):
        MutualKL(temperature=0.0)
