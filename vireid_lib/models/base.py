"""The shape most papers share: backbone -> global pooling -> BNNeck, post-BN test feature."""

from __future__ import annotations

import torch
from torch import nn

from .layers import BNNeck


class GlobalFeatureReID(nn.Module):
    """Backbone, a global pooling to one vector per image, and a BNNeck.

    Subclasses (AGW, the IV-ReID baseline, and the papers that extend them) add their own
    heads and training outputs; the evaluation output is the same for all: the post-BN
    feature as ``"embedding"`` (the official test feature) and the pre-BN one as ``"pooled"``.
    """

    def __init__(self, backbone: nn.Module, pool: nn.Module, neck: BNNeck) -> None:
        super().__init__()
        self.backbone = backbone
        self.pool = pool
        self.neck = neck

    @property
    def num_classes(self) -> int:
        return self.neck.classifier.out_features

    def pooled_feature(self, visible: torch.Tensor | None, infrared: torch.Tensor | None) -> torch.Tensor:
        """[N, D] pooled feature of ``[visible; infrared]``."""
        return self.pool(self.backbone(visible, infrared)).flatten(1)

    def test_outputs(self, pooled: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"embedding": self.neck.bn(pooled), "pooled": pooled}
