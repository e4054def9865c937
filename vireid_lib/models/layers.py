"""Small layers shared by the per-paper models: GeM pooling, AGW's non-local block, BNNeck.

Each is written once here and configured by the model files with the paper's settings.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn


def init_linear_kaiming(linear: nn.Linear) -> None:
    """Kaiming-normal weights (``fan_out``) and a zero bias.

    This is reid-strong-baseline's ``weights_init_kaiming`` for ``Linear`` layers, which the
    IV-ReID baseline applies to its bias-carrying classifier and to its modality heads.
    """
    nn.init.kaiming_normal_(linear.weight, a=0.0, mode="fan_out")
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)


def init_linear_classifier(linear: nn.Linear, std: float = 0.001) -> None:
    """Normal weights with a tiny ``std`` and a zero bias (reid-strong-baseline's classifier init).

    A near-zero classifier starts every identity at almost uniform probability, which keeps the
    first cross-entropy steps from swamping the pretrained backbone.
    """
    nn.init.normal_(linear.weight, mean=0.0, std=std)
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)


class GeM(nn.Module):
    """Generalised-mean pooling over H and W: ``(mean_hw x^p)^(1/p)`` -> ``[B, C]``.

    ``p = 1`` is average pooling and ``p -> inf`` tends to max pooling. AGW fixes ``p = 3``
    (``learnable=False``, no parameter); MCE learns ``p`` starting from 3.

    Inputs are clamped at ``eps`` before the power, which keeps the fractional root and its
    gradient finite. AGW's official pooling instead adds 1e-12 after the mean and does not
    clamp; on the post-ReLU maps it pools the two differ only by that epsilon. The pooling is
    computed in float32 so that ``x^p`` cannot overflow under float16 autocast.
    """

    def __init__(self, p: float = 3.0, learnable: bool = False, eps: float = 1e-6) -> None:
        super().__init__()
        if p <= 0:
            raise ValueError(f"GeM needs p > 0, got p={p}.")
        self.eps = eps
        self.learnable = learnable
        if learnable:
            self.p: nn.Parameter | float = nn.Parameter(torch.tensor(float(p)))
        else:
            self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"GeM expects a [B, C, H, W] map, got shape {tuple(x.shape)}.")
        x = x.float().clamp(min=self.eps)
        return x.pow(self.p).mean(dim=(-2, -1)).pow(1.0 / self.p)

    def extra_repr(self) -> str:
        p = float(self.p.detach()) if isinstance(self.p, nn.Parameter) else self.p
        return f"p={p:g}, learnable={self.learnable}, eps={self.eps:g}"


class NonLocal(nn.Module):
    """AGW's non-local block (Wang et al. 2018, embedded dot-product form), residual.

    ``z = x + BN(W(y))`` with ``y_i = (1/N) sum_j theta(x_i) . phi(x_j) g(x_j)``, where
    theta, phi and g are 1x1 convolutions to the inner width and N = H*W is the number of
    positions. As in AGW the affinity is divided by N instead of going through a softmax.
    The output BatchNorm's weight and bias start at zero, so a new block is exactly the
    identity and cannot disturb the pretrained backbone it is inserted into.

    Official defect (mangye16/Cross-Modal-Re-ID-baseline ``model.py`` and ReID-Survey; fix
    proposed in the still-open PR #28): the inner width is computed as
    ``reduc_ratio // reduc_ratio``, i.e. always 1 channel, instead of
    ``in_channels // reduc_ratio``. ``official_one_channel=True`` (default) reproduces the
    1-channel block that produced the published numbers; ``False`` gives the intended
    ``in_channels // reduction`` width.
    """

    def __init__(self, in_channels: int, reduction: int = 2, official_one_channel: bool = True) -> None:
        super().__init__()
        if in_channels < 1 or reduction < 1:
            raise ValueError(f"NonLocal needs in_channels >= 1 and reduction >= 1, got {in_channels}, {reduction}.")
        self.in_channels = in_channels
        self.reduction = reduction
        self.official_one_channel = official_one_channel
        self.inter_channels = 1 if official_one_channel else max(1, in_channels // reduction)
        # The official convolutions keep PyTorch's default init and carry a bias.
        self.theta = nn.Conv2d(in_channels, self.inter_channels, kernel_size=1)
        self.phi = nn.Conv2d(in_channels, self.inter_channels, kernel_size=1)
        self.g = nn.Conv2d(in_channels, self.inter_channels, kernel_size=1)
        self.out_conv = nn.Conv2d(self.inter_channels, in_channels, kernel_size=1)
        self.out_bn = nn.BatchNorm2d(in_channels)
        nn.init.zeros_(self.out_bn.weight)
        nn.init.zeros_(self.out_bn.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        n = h * w
        theta = self.theta(x).flatten(2).transpose(1, 2)  # [B, N, C']
        phi = self.phi(x).flatten(2)  # [B, C', N]
        g = self.g(x).flatten(2).transpose(1, 2)  # [B, N, C']
        affinity = torch.matmul(theta, phi) / n  # [B, N, N]; divided by N, no softmax (AGW)
        y = torch.matmul(affinity, g).transpose(1, 2).reshape(b, self.inter_channels, h, w)
        return x + self.out_bn(self.out_conv(y))

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, inter_channels={self.inter_channels}, "
            f"official_one_channel={self.official_one_channel}"
        )


class BNNeck(nn.Module):
    """BatchNorm1d bottleneck followed by the identity classifier (Luo et al., reid-strong-baseline).

    ``forward(x)`` returns ``(bn_feature, logits)``; ``num_classes=None`` builds the neck without a
    classifier (MCE scores against identity memories instead) and ``logits`` is ``None``.
    With ``bias_trainable=False`` (AGW) the BN
    bias is frozen at zero (``requires_grad=False``: the "no shift" neck), so an optimiser never
    moves it; IV-ReID trains it (``bias_trainable=True``) and gives the classifier a bias.

    Initialisation: BN weight 1 (plus ``N(0, bn_weight_std)`` noise: AGW's official code draws
    it from ``N(1, 0.01)``), bias 0; classifier ``"normal"`` = weights ``N(0, 0.001)``, bias 0
    (reid-strong-baseline and AGW), or ``"kaiming"`` = kaiming-normal ``fan_out``, bias 0 (what
    reid-strong-baseline, and hence IV-ReID, uses for a classifier with bias).
    """

    def __init__(
        self,
        dim: int,
        num_classes: int | None,
        bias_trainable: bool = False,
        classifier_bias: bool = False,
        bn_weight_std: float = 0.0,
        classifier_init: Literal["normal", "kaiming"] = "normal",
    ) -> None:
        super().__init__()
        if num_classes is not None and num_classes < 1:
            raise ValueError(f"BNNeck needs num_classes >= 1 (or None for no classifier), got {num_classes}.")
        if classifier_init not in ("normal", "kaiming"):
            raise ValueError(f"classifier_init must be 'normal' or 'kaiming', got {classifier_init!r}.")
        self.bn = nn.BatchNorm1d(dim)
        nn.init.ones_(self.bn.weight)
        if bn_weight_std > 0:
            with torch.no_grad():
                self.bn.weight.add_(torch.randn_like(self.bn.weight) * bn_weight_std)
        nn.init.zeros_(self.bn.bias)
        self.bn.bias.requires_grad_(bias_trainable)
        self.classifier = None if num_classes is None else nn.Linear(dim, num_classes, bias=classifier_bias)
        if self.classifier is not None:
            (init_linear_classifier if classifier_init == "normal" else init_linear_kaiming)(self.classifier)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        feature = self.bn(x)
        return feature, None if self.classifier is None else self.classifier(feature)


class TemporalFeatureLearning(nn.Module):
    """One Linear and one SE gate per frame position: a clip summary gates every frame's feature. MITML's
    ``temporal_feat_learning`` (the summary is its LSTM's output, S = 6) and CST's ``SENet_learning`` (the
    transformer's clip feature, S = 14; ``temporal`` and ``frames`` are the same GeM features) are this layer.

    ``forward(summary [N, D], temporal [N, S, D], frames [N, S, D]) -> [N, D]``: for each i,
    ``gate_i = SE_i((Linear_i(summary) + temporal[:, i]) / 2)`` and the output is the mean over i
    of ``frames[:, i] * gate_i + frames[:, i]``.
    """

    def __init__(self, dim: int = 2048, seq_len: int = 6, reduction: int = 16) -> None:
        super().__init__()
        self.seq_len = seq_len
        self.linears = nn.ModuleList(nn.Linear(dim, dim) for _ in range(seq_len))
        self.gates = nn.ModuleList(
            nn.Sequential(nn.Linear(dim, dim // reduction, bias=False), nn.ReLU(inplace=True),
                          nn.Linear(dim // reduction, dim, bias=False), nn.Sigmoid())
            for _ in range(seq_len))

    def forward(self, summary: torch.Tensor, temporal: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        weights = self.gate_values(summary, temporal)
        return (frames * weights + frames).mean(dim=1)

    def gate_values(self, summary: torch.Tensor, temporal: torch.Tensor) -> torch.Tensor:
        """``[N, S, D]``: every frame position's gate (in 0..1) for this summary."""
        if temporal.shape[1] != self.seq_len:
            raise ValueError(f"temporal feature learning was built for {self.seq_len} frames, got {temporal.shape[1]}.")
        return torch.stack([gate((linear(summary) + temporal[:, i]) / 2)
                            for i, (linear, gate) in enumerate(zip(self.linears, self.gates))], dim=1)
