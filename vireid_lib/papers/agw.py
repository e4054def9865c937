"""AGW: the cross-modality baseline of Ye et al., "Deep Learning for Person Re-identification:
A Survey and Outlook" (TPAMI 2021), official code mangye16/Cross-Modal-Re-ID-baseline.

Model: two-stream ResNet-50 (modality-specific stems, shared layer1-4, last stride 1) with
non-local attention blocks after layer2 blocks 2-3 and layer3 blocks 3-5, GeM pooling with a
fixed p = 3, and a BNNeck (BatchNorm1d with a frozen zero bias, bias-free classifier).
Training: cross-entropy on the logits plus the weighted regularised triplet (WRT) on the
pre-BN pooled feature (the criterion lives in ``vireid_lib.losses``). Test feature: the
post-BN feature, L2-normalised by the evaluator.

Recipe (:class:`AGWRecipe`): SGD with Nesterov momentum 0.9 and weight decay 5e-4; base lr 0.1
for the BNNeck and classifier and 0.1x for the backbone; linear warm-up ``lr * (e + 1) / 10``
for epochs 0-9, lr until epoch 19, 0.1 lr until 49, 0.01 lr after; 81 epochs; 288x144
inputs; batches of 8 identities x 4 visible + 4 infrared images.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..interface import Deviation, Keep, Paper, Recipe, Selection, param, positive
from pathlib import Path

import torch
from torch import nn

from ..losses.identity import CrossEntropyLabelSmooth
from ..losses.metric import WeightedRegularizedTriplet
from ..models.base import GlobalFeatureReID
from ..models.backbone import TwoStreamResNet50
from ..models.contract import Outputs
from ..models.layers import BNNeck, GeM
from ..models.official import LayoutMapping, OfficialLayout, is_embed_net, map_embed_net


# Cross-Modal-Re-ID-baseline's data_manager.py draws SYSU-MM01 galleries with `random.seed(trial)` commented out.
UNSEEDED_GALLERIES = Deviation(
    "Its SYSU-MM01 galleries are drawn unseeded (`random.seed(trial)` is commented out in data_manager.py), so its "
    "selection gallery and test.py's 10 differ on every run; the workbook seeds each by its trial (0 for the "
    "selection test), as PROTOCOLS.md and MMN's and MCE's copies of the code do.", default="workbook")


@dataclass(frozen=True)
class AGWRecipe(Recipe):
    """AGW's published training recipe (official ``train.py`` defaults): the base recipe's values,
    plus the backbone at 0.1x the head's lr and the torchvision stem."""

    backbone_lr_factor: float = param(0.1, positive())  # BNNeck + classifier at lr 0.1, the backbone at 0.01
    stem_relu: bool = True
    official_one_channel: bool = True  # the non-local blocks' 1-channel width (open PR #28)
    selection_rule: Selection = Selection(
        eval_every=2, eval_first=3, keeps=(Keep("rank1", "R1"),),
        source="train.py: tests after 0-based epochs with `epoch > 0 and epoch % 2 == 0` and keeps "
               "`cmc_att[0] > best_acc` (rank-1 of the post-BN feature) as *_best.t; SYSU-MM01: one all-search "
               "single-shot gallery scored by eval_sysu, RegDB: the trial's visible -> thermal by eval_regdb")


class AGW(GlobalFeatureReID):
    """AGW model following :mod:`vireid_lib.models.contract`.

    ``forward(visible, infrared)``:

    * training: ``{"pooled": [N, 2048] GeM feature before the BNNeck (WRT triplet input),
      "bn": [N, 2048] post-BN feature, "logits": [N, C]}`` over ``[visible; infrared]``;
    * evaluation (typically one modality, the other ``None``): ``{"embedding": [N, 2048]
      post-BN feature, "pooled": [N, 2048] pre-BN feature}``.
    """

    def __init__(
        self, backbone: TwoStreamResNet50, pool: GeM, neck: BNNeck, backbone_lr_factor: float = 0.1
    ) -> None:
        super().__init__(backbone, pool, neck)
        self.backbone_lr_factor = backbone_lr_factor

    def forward(self, visible: torch.Tensor | None = None, infrared: torch.Tensor | None = None) -> Outputs:
        pooled = self.pooled_feature(visible, infrared)
        if self.training:
            bn, logits = self.neck(pooled)
            return {"pooled": pooled, "bn": bn, "logits": logits}
        return self.test_outputs(pooled)

    def param_groups(self, base_lr: float) -> list[dict]:
        """Backbone (stems, layers, non-local blocks) at ``0.1 * base_lr``; BNNeck and
        classifier at ``base_lr``, as the official optimiser splits them. Frozen parameters
        (the BNNeck bias) are left out; GeM's p is fixed, so the pooling has none."""
        backbone = [p for p in self.backbone.parameters() if p.requires_grad]
        head = [p for p in list(self.pool.parameters()) + list(self.neck.parameters()) if p.requires_grad]
        return [
            {"name": "backbone (stems, layers, non-local blocks)", "params": backbone, "lr": self.backbone_lr_factor * base_lr},
            {"name": "BNNeck and classifier", "params": head, "lr": base_lr},
        ]


def build_agw(
    num_classes: int,
    pretrained: bool = True,
    weights_file: str | Path | None = None,
    last_stride: int = 1,
    non_local: bool = True,
    official_one_channel: bool = True,
    gem_p: float = 3.0,
    arch: str = "resnet50",
    stem_relu: bool = True,
    backbone_lr_factor: float = AGWRecipe.backbone_lr_factor,
) -> AGW:
    """AGW with the paper's defaults.

    ``official_one_channel=True`` keeps the official 1-channel non-local blocks (the open
    PR #28 defect, see :class:`~vireid_lib.models.layers.NonLocal`); ``False`` gives them the
    intended ``in_channels // 2`` inner width. ``weights_file`` (a torchvision ResNet-50 state
    dict) overrides ``pretrained``. ``arch`` other than "resnet50" is for quick experiments.
    """
    backbone = TwoStreamResNet50(
        arch=arch,
        pretrained=pretrained,
        weights_file=weights_file,
        last_stride=last_stride,
        non_local=non_local,
        official_one_channel=official_one_channel,
        shared_stem=False,
        stem_relu=stem_relu,
    )
    # Official BNNeck init: weights_init_kaiming draws the BatchNorm1d weight from N(1, 0.01);
    # the classifier gets N(0, 0.001) and no bias; the BN bias is frozen at zero ("no shift").
    neck = BNNeck(
        backbone.out_channels,
        num_classes,
        bias_trainable=False,
        classifier_bias=False,
        bn_weight_std=0.01,
        classifier_init="normal",
    )
    return AGW(backbone, GeM(p=gem_p, learnable=False), neck, backbone_lr_factor=backbone_lr_factor)


class AGWCriterion(nn.Module):
    """AGW's training objective: identity cross-entropy on the BNNeck logits plus the weighted
    regularised triplet (WRT) on the pre-BN pooled feature, with unit weights."""

    def __init__(self, num_classes: int, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.identity = CrossEntropyLabelSmooth(num_classes, epsilon=label_smoothing)
        self.wrt = WeightedRegularizedTriplet()

    def forward(self, outputs: dict[str, torch.Tensor], labels: torch.Tensor) -> dict[str, torch.Tensor]:
        identity = self.identity(outputs["logits"], labels)
        wrt, precision = self.wrt.loss_and_precision(outputs["pooled"], labels)
        return {"loss": identity + wrt, "id": identity.detach(), "wrt": wrt.detach(), "triplet_precision": precision}


# ---------------------------------------------------------------------------------------------
# The authors' checkpoints (Cross-Modal-Re-ID-baseline ``train.py`` saves ``{"net": state_dict,
# "cmc", "mAP", "mINP", "epoch"}`` as ``*_best.t``), mapped onto :class:`AGW`.
# ---------------------------------------------------------------------------------------------

def _convert_official(state, model: AGW) -> LayoutMapping:
    mapping = LayoutMapping()
    map_embed_net(state, model, mapping)
    mapping.notes.append("the official GeM adds 1e-12 after the mean instead of clamping; on these post-ReLU maps "
                         "the two pool the same features to within that epsilon")
    return mapping


OFFICIAL_LAYOUTS = (OfficialLayout("AGW, mangye16/Cross-Modal-Re-ID-baseline (embed_net)", is_embed_net,
                                   _convert_official),)


PAPER = Paper(
    method="agw", title="AGW", datasets=("sysu", "regdb", "llcm"), recipe=AGWRecipe(),
    notebook="ivreid_baseline.ipynb",
    build=lambda classes, recipe, weights: build_agw(classes, arch=recipe.arch, stem_relu=recipe.stem_relu,
                                                     official_one_channel=recipe.official_one_channel,
                                                     backbone_lr_factor=recipe.backbone_lr_factor, **weights),
    criterion=lambda classes, recipe, dataset: AGWCriterion(classes),
    layouts=OFFICIAL_LAYOUTS,
    deviations=(
        Deviation("The non-local blocks' inner width is always 1 channel (open PR #28).", "official_one_channel=False"),
        UNSEEDED_GALLERIES,
    ),
    fidelity=("The official two-stream ResNet-50 with its 1-channel non-local blocks (the open PR #28 defect; "
              "`official_one_channel=False` fixes it) and fixed GeM p = 3. Training images are cached and test "
              "images resized with Lanczos, as the official preprocessing and `TestData` do."),
)
