"""A light video baseline for HITSZ-VCM, built from MITML's parts (Lin et al., CVPR 2022); **not MITML**.

MITML itself, as its code runs it, is :mod:`vireid_lib.models.mitml` (about 135M parameters plus
a modality classifier); this lighter network (about 58M) is kept for quick experiments and as
the per-frame base CST builds on.

Every frame of a clip goes through AGW's two-stream ResNet-50 (modality stems, shared
layers 1-4, last stride 1); global average pooling gives one vector per frame, and the S
frame vectors are aggregated over time: their mean plus an LSTM branch (the LSTM's output
at the last frame). A BNNeck and a bias-free identity classifier follow; cross-entropy on
the logits and batch-hard triplet (margin 0.3) on the aggregated pre-BN feature train it.
The test feature is the post-BN feature.

What it takes from MITML: the two-stream per-frame backbone, average pooling, an LSTM over
frame features, the BNNeck, the losses, the sampler (8 identities x 2 visible + 2 infrared
tracklets) and the schedule (SGD, lr 0.1 for the head and 0.01 for the rest, 10 warm-up
epochs, x0.1 at 35 and x0.01 at 80, 200 epochs). What it leaves out: the second layer4 copy,
the two-layer LSTM driving a per-frame linear + SE gate, and the modality classifier with its
confusion term. Its one LSTM layer is added to the frame mean, and it trains at the head's lr.

Inputs are clips ``[B, S, 3, H, W]``; in training ``forward(visible, infrared)`` takes both
halves of a batch, in evaluation one of them (see :mod:`vireid_lib.models.contract`).
"""

from __future__ import annotations

from dataclasses import dataclass

from pathlib import Path

import torch
from torch import nn

from ..losses.identity import CrossEntropyLabelSmooth
from ..losses.metric import BatchHardTriplet
from .backbone import TwoStreamResNet50
from .base import GlobalFeatureReID
from .contract import Outputs
from .layers import BNNeck
from ..papers import Keep, Paper, Recipe

# The four checkpoints MITML's train.py keeps (STAR's copies it), each by `>` on its own score: rank-1 and mAP of
# IR -> visible ("t2v", as its files are named) and of visible -> IR ("v2t").
VCM_KEEPS = (Keep("t2v_rank1", "R1", "ir2rgb"), Keep("t2v_map", "mAP", "ir2rgb"),
             Keep("v2t_rank1", "R1", "rgb2ir"), Keep("v2t_map", "mAP", "rgb2ir"))


@dataclass(frozen=True)
class VideoRecipe(Recipe):
    """MITML's training recipe (``train.py``), which the video papers here build on."""

    optimizer: str = "sgd"
    lr: float = 0.1  # head (BNNeck, classifier); the rest trains at backbone_lr_factor x lr
    backbone_lr_factor: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "warmup_step"
    warmup_epochs: int = 10
    milestones: tuple[int, ...] = (35, 80)
    gamma: float = 0.1
    epochs: int = 200
    margin: float = 0.3
    seq_len: int = 6
    height: int = 288
    width: int = 144
    num_ids: int = 8
    num_per_modality: int = 2
    replace: bool = True
    epoch_rule: str = "min"  # utils.IdentitySampler: int(min(N_v, N_i) / (8 * 2)) batches, N the tracklet counts
    seed: int = 0
    # frames are resized on the fly (bilinear), nothing cached
    train_resize: str = "bilinear"
    cache_training_images: bool = False
    test_resize: str = "bilinear"


@dataclass(frozen=True)
class VideoBaselineRecipe(VideoRecipe):
    """The light baseline: MITML's recipe, and whether its one-layer LSTM branch is on."""

    lstm: bool = True


def split_clips(visible: torch.Tensor | None, infrared: torch.Tensor | None) -> tuple[int, int]:
    """(clips, frames per clip) of the given halves, checking they are ``[B, S, 3, H, W]`` clips."""
    given = [t for t in (visible, infrared) if t is not None]
    if not given:
        raise ValueError("a video model needs a visible or an infrared clip batch (both were None).")
    for t in given:
        if t.dim() != 5:
            raise ValueError(f"video models take clips [B, S, 3, H, W]; got a tensor of shape {tuple(t.shape)}.")
    lengths = {t.shape[1] for t in given}
    if len(lengths) != 1:
        raise ValueError(f"visible and infrared clips must have the same length S, got {sorted(lengths)}.")
    return sum(t.shape[0] for t in given), given[0].shape[1]


def frames_of(clips: torch.Tensor | None) -> torch.Tensor | None:
    """``[B, S, 3, H, W]`` -> ``[B*S, 3, H, W]`` (clip-major: the S frames of clip 0 first)."""
    return None if clips is None else clips.flatten(0, 1)


class ClipFeatureReID(GlobalFeatureReID):
    """Backbone per frame, pooling per frame, a temporal aggregation to one vector per clip, BNNeck."""

    def __init__(self, backbone: TwoStreamResNet50, neck: BNNeck, lstm: bool = True,
                 backbone_lr_factor: float = 0.1) -> None:
        super().__init__(backbone, nn.AdaptiveAvgPool2d(1), neck)
        dim = backbone.out_channels
        self.lstm = nn.LSTM(dim, dim, num_layers=1, batch_first=True) if lstm else None
        self.backbone_lr_factor = backbone_lr_factor

    def frame_maps(self, visible: torch.Tensor | None, infrared: torch.Tensor | None) -> torch.Tensor:
        """``[N, S, C, h, w]`` layer4 maps of ``[visible; infrared]`` clips."""
        clips, length = split_clips(visible, infrared)
        maps = self.backbone(frames_of(visible), frames_of(infrared))
        return maps.reshape(clips, length, *maps.shape[1:])

    def aggregate(self, frame_features: torch.Tensor) -> torch.Tensor:
        """``[N, S, C]`` -> ``[N, C]``: the frame mean, plus the LSTM's last output when enabled."""
        pooled = frame_features.mean(dim=1)
        if self.lstm is not None:
            output, _ = self.lstm(frame_features)
            pooled = pooled + output[:, -1]
        return pooled

    def pooled_feature(self, visible: torch.Tensor | None, infrared: torch.Tensor | None) -> torch.Tensor:
        maps = self.frame_maps(visible, infrared)
        return self.aggregate(maps.mean(dim=(-2, -1)))

    def forward(self, visible: torch.Tensor | None = None, infrared: torch.Tensor | None = None) -> Outputs:
        pooled = self.pooled_feature(visible, infrared)
        if not self.training:
            return self.test_outputs(pooled)
        bn, logits = self.neck(pooled)
        return {"pooled": pooled, "bn": bn, "logits": logits}

    def param_groups(self, base_lr: float) -> list[dict]:
        """Backbone at ``backbone_lr_factor * base_lr``; temporal branch, BNNeck and classifier at ``base_lr``."""
        backbone = [p for p in self.backbone.parameters() if p.requires_grad]
        ids = {id(p) for p in backbone}
        head = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        return [{"name": "backbone", "params": backbone, "lr": base_lr * self.backbone_lr_factor},
                {"name": "temporal branch, BNNeck and classifier", "params": head, "lr": base_lr}]


def build_video_baseline(num_classes: int, pretrained: bool = True, weights_file: str | Path | None = None,
                         last_stride: int = 1, lstm: bool = True, arch: str = "resnet50",
                         backbone_lr_factor: float = VideoBaselineRecipe.backbone_lr_factor) -> ClipFeatureReID:
    """The light video baseline (not MITML); ``arch`` other than "resnet50" is for quick experiments."""
    backbone = TwoStreamResNet50(pretrained=pretrained, weights_file=weights_file, last_stride=last_stride,
                                 non_local=False, shared_stem=False, arch=arch)
    # MITML's BNNeck: N(1, 0.01) BN weight, frozen zero bias, bias-free classifier drawn from N(0, 0.001).
    neck = BNNeck(backbone.out_channels, num_classes, bias_trainable=False, classifier_bias=False,
                  bn_weight_std=0.01, classifier_init="normal")
    return ClipFeatureReID(backbone, neck, lstm=lstm, backbone_lr_factor=backbone_lr_factor)


class VideoBaselineCriterion(nn.Module):
    """Cross-entropy on ``logits`` + batch-hard triplet (margin 0.3) on ``pooled``."""

    def __init__(self, num_classes: int, margin: float = 0.3, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.identity = CrossEntropyLabelSmooth(num_classes, epsilon=label_smoothing)
        self.triplet = BatchHardTriplet(margin=margin)

    def forward(self, outputs: Outputs, labels: torch.Tensor) -> Outputs:
        identity = self.identity(outputs["logits"], labels)
        triplet, precision = self.triplet.loss_and_precision(outputs["pooled"], labels)
        return {"loss": identity + triplet, "id": identity, "triplet": triplet, "triplet_precision": precision}


PAPER = Paper(
    method="baseline", title="Light video baseline (not MITML)", datasets=("vcm",), recipe=VideoBaselineRecipe(),
    build=lambda classes, recipe, weights: build_video_baseline(classes, lstm=recipe.lstm, arch=recipe.arch,
                                                                backbone_lr_factor=recipe.backbone_lr_factor, **weights),
    criterion=lambda classes, recipe, dataset: VideoBaselineCriterion(classes, margin=recipe.margin),
    fidelity=("Not MITML: a light network from MITML's parts (two-stream ResNet-50 per frame, frame mean plus a "
              "one-layer LSTM, BNNeck) with MITML's recipe; the faithful MITML is the 'mitml' paper."),
)
