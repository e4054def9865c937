"""GeM, AGW's non-local block and the BNNeck."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from vireid_lib.models.layers import BNNeck, GeM, NonLocal


def test_gem_p1_is_average_pooling() -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 3, 4, 5) + 0.1
    torch.testing.assert_close(GeM(p=1.0)(x), F.adaptive_avg_pool2d(x, 1).flatten(1))


def test_gem_large_p_approaches_max_pooling() -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 3, 4, 2) + 0.1
    max_pooled = x.amax(dim=(-2, -1))
    err_p3 = (GeM(p=3.0)(x) - max_pooled).abs().max()
    err_p100 = (GeM(p=100.0)(x) - max_pooled).abs().max()
    assert err_p100 < err_p3
    # (1/N)^(1/p) bound: with N = 8 positions and p = 100 the gap is at most ~2%.
    torch.testing.assert_close(GeM(p=100.0)(x), max_pooled, rtol=0.025, atol=0.0)


def test_gem_p3_matches_formula_and_has_no_parameters_when_fixed() -> None:
    x = torch.rand(2, 3, 4, 2) + 0.1
    expected = x.pow(3).mean(dim=(-2, -1)).pow(1 / 3)
    gem = GeM()
    torch.testing.assert_close(gem(x), expected)
    assert list(gem.parameters()) == []


def test_gem_learnable_p_is_a_parameter_that_learns() -> None:
    gem = GeM(p=3.0, learnable=True)
    assert isinstance(gem.p, nn.Parameter)
    assert float(gem.p.detach()) == 3.0
    x = torch.rand(2, 3, 4, 2) + 0.1
    gem(x).sum().backward()
    assert gem.p.grad is not None and gem.p.grad.abs() > 0


def test_nonlocal_starts_as_identity() -> None:
    torch.manual_seed(0)
    block = NonLocal(16)
    x = torch.randn(2, 16, 4, 3)
    block.train()
    torch.testing.assert_close(block(x), x, rtol=0, atol=0)
    block.eval()
    torch.testing.assert_close(block(x), x, rtol=0, atol=0)


def test_nonlocal_inner_width_official_and_fixed() -> None:
    official = NonLocal(16)
    assert official.inter_channels == 1
    assert official.theta.out_channels == official.phi.out_channels == official.g.out_channels == 1
    assert official.out_conv.in_channels == 1
    fixed = NonLocal(16, reduction=2, official_one_channel=False)
    assert fixed.inter_channels == 8
    assert fixed.theta.out_channels == 8 and fixed.out_conv.in_channels == 8


def test_nonlocal_changes_output_once_bn_weight_nonzero() -> None:
    torch.manual_seed(0)
    block = NonLocal(8).eval()
    x = torch.randn(2, 8, 3, 2)
    with torch.no_grad():
        block.out_bn.weight.fill_(1.0)
    assert not torch.allclose(block(x), x)


def _set_conv(conv: nn.Conv2d, weight: float, bias: float) -> None:
    with torch.no_grad():
        conv.weight.fill_(weight)
        conv.bias.fill_(bias)


def test_nonlocal_hand_computed_divides_by_n_without_softmax() -> None:
    # One channel, two positions x = [1, 2]. theta = phi = x, g = x + 1 = [2, 3].
    # affinity = theta phi^T / N = [[1, 2], [2, 4]] / 2; y = affinity @ g = [4, 8]; z = x + y.
    # (Softmax would give a convex mix of g, and no division by N would give [9, 18].)
    block = NonLocal(1, official_one_channel=True).eval()
    _set_conv(block.theta, 1.0, 0.0)
    _set_conv(block.phi, 1.0, 0.0)
    _set_conv(block.g, 1.0, 1.0)
    _set_conv(block.out_conv, 1.0, 0.0)
    with torch.no_grad():
        block.out_bn.weight.fill_(1.0)
        block.out_bn.bias.fill_(0.0)
    block.out_bn.eps = 0.0  # running mean 0, var 1: the eval-mode BN is then exactly the identity
    x = torch.tensor([1.0, 2.0]).view(1, 1, 2, 1)
    torch.testing.assert_close(block(x), torch.tensor([5.0, 10.0]).view(1, 1, 2, 1))


def test_bnneck_agw_bias_frozen_at_zero_after_a_step() -> None:
    torch.manual_seed(0)
    neck = BNNeck(6, 3)
    assert neck.bn.bias.requires_grad is False
    assert neck.classifier.bias is None
    torch.testing.assert_close(neck.bn.weight.detach(), torch.ones(6))
    assert neck.classifier.weight.std() < 0.01  # N(0, 0.001)
    opt = torch.optim.SGD([p for p in neck.parameters() if p.requires_grad], lr=1.0, weight_decay=5e-4)
    x = torch.randn(4, 6)
    bn, logits = neck(x)
    assert bn.shape == (4, 6) and logits.shape == (4, 3)
    F.cross_entropy(logits, torch.tensor([0, 1, 2, 0])).backward()
    opt.step()
    assert neck.bn.bias.grad is None
    torch.testing.assert_close(neck.bn.bias.detach(), torch.zeros(6), rtol=0, atol=0)


def test_bnneck_trainable_bias_for_ivreid() -> None:
    torch.manual_seed(0)
    neck = BNNeck(6, 3, bias_trainable=True, classifier_bias=True, classifier_init="kaiming")
    assert neck.bn.bias.requires_grad is True
    assert neck.classifier.bias is not None
    torch.testing.assert_close(neck.classifier.bias.detach(), torch.zeros(3))
    opt = torch.optim.SGD(neck.parameters(), lr=1.0)
    _, logits = neck(torch.randn(4, 6))
    F.cross_entropy(logits, torch.tensor([0, 1, 2, 0])).backward()
    opt.step()
    assert neck.bn.bias.detach().abs().sum() > 0


def test_bnneck_rejects_unknown_init() -> None:
    with pytest.raises(ValueError, match="classifier_init"):
        BNNeck(4, 2, classifier_init="xavier")  # type: ignore[arg-type]
