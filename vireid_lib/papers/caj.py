"""CAJ: Ye et al., "Channel Augmented Joint Learning for Visible-Infrared Recognition" (ICCV 2021), official code
mangye16/Cross-Modal-Re-ID-baseline, folder ``ICCV21_CAJ/`` (``train_ext.py``, ``loss.py``, ``data_loader.py``,
``ChannelAug.py``, ``testa.py``), run as its README's command: ``train_ext.py --method adp --augc 1 --rande 0.5
--alpha 1 --square 1 --gamma 1``.

Network: AGW's (``train_ext.py`` builds the root ``model.embed_net`` with ``no_local='on', gm_pool='on'`` for
every method but ``base``): two-stream ResNet-50 with the 1-channel non-local blocks, GeM p = 3, BNNeck.

Batch ``[V, V_ca, I]`` (labels ``cat(label1, label1, label2)``): ``data_loader.py`` applies hard-coded pipelines
whatever ``--augc`` / ``--rande`` say (those flags only rename the checkpoint; the code wins over the README's
description of them): visible view A = pad, crop, flip, normalise, ChannelRandomErasing(0.5) (the ``"erasing"``
view); visible view B = the same + ChannelExchange (``"caj"``); thermal = the same + ChannelAdapGray(0.5)
(``"caj"``).

Loss (``loss.py``): cross-entropy on the logits of all three parts plus ``TripletLoss_ADP(alpha, gamma,
square)`` on the pre-BN pooled feature: softmax-weighted hardest positive and negative distances (weights over
``alpha * d``), then with ``square=1`` a SoftMarginLoss on ``min(gamma * (d_ap - d_an)^2, 88)`` whose sign says
whether the anchor violates the ranking (``square=0``: SoftMarginLoss on ``gamma * (d_an - d_ap)``). The KL term
``train_ext.py`` computes has weight ``--kl 0``, so it is not built. The clamp at 88 has zero gradient: an anchor
with ``gamma (d_ap - d_an)^2 > 88`` stops learning from the triplet term (the repository's issue #27, "the loss
stalls"); :class:`CAJCriterion` logs the clamped fraction so a run shows whether it does. ``square=False`` is the
repository's unsquared variant.

Recipe: AGW's optimiser (SGD, Nesterov, 5e-4; BNNeck and classifier at lr 0.1, the rest 0.1x) and schedule (warm-up
to epoch 9, x0.1 at 20, x0.01 at 50), 100 epochs. Selection (``train_ext.py``): after 0-based epochs 2, 4, ..., 98
(1-based 3, ..., 99; the 100th is never tested), keep ``cmc_att[0] > best_acc``, the rank-1 of the post-BN feature
**without** flip. Reported numbers: ``testa.py`` (the README's "testing augmentation with HorizontalFlip"): each
image and its mirror through the network, their L2-normalised features averaged and normalised again. Its RegDB
loop loads ``..._sq0_...`` files while the README trains ``--square 1`` (``..._sq1_...``): a name mismatch of the
test script, not a setting; the workbook evaluates the run's own checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..interface import BatchLayout, Deviation, Keep, Paper, Selection, Variant, param, positive
from ..losses.identity import CrossEntropyLabelSmooth
from ..losses.metric import pairwise_euclidean, weighted_mining
from ..models.contract import Outputs
from .agw import AGW, OFFICIAL_LAYOUTS, UNSEEDED_GALLERIES, AGWRecipe, build_agw

CLAMP = 88.0  # loss.py: torch.clamp_max(diff_pow, max=88)


class AdaptiveWeightedTriplet(nn.Module):
    """``TripletLoss_ADP`` of ``ICCV21_CAJ/loss.py`` on the Euclidean distances of the features (see the module doc).

    ``clamp``: the squared variant's ceiling (88 in the code). Returns the loss, the precision (anchors whose
    weighted negative is at least as far as the weighted positive, as ``correct`` counts them) and the fraction of
    anchors whose squared difference reached the clamp (no triplet gradient from them).
    """

    def __init__(self, alpha: float = 1.0, gamma: float = 1.0, square: bool = True, clamp: float = CLAMP) -> None:
        super().__init__()
        self.alpha, self.gamma, self.square, self.clamp = alpha, gamma, square, clamp

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # loss.py: pdist_torch, then the softmax weights over alpha x distance (the anchor among its own positives)
        positive, negative = weighted_mining(pairwise_euclidean(features, features), labels, scale=self.alpha)
        if self.square:
            difference = (positive - negative).pow(2) * self.gamma
            clamped = difference >= self.clamp
            difference = difference.clamp_max(self.clamp)
            # y = -1 where the anchor violates the ranking (d_ap > d_an): the loss grows with the difference
            target = torch.where(positive > negative, -torch.ones_like(positive), torch.ones_like(positive))
            loss = F.soft_margin_loss(difference, target)
        else:
            clamped = torch.zeros_like(positive, dtype=torch.bool)
            loss = F.soft_margin_loss(self.gamma * (negative - positive), torch.ones_like(positive))
        precision = (negative >= positive).float().mean().detach()
        return loss, precision, clamped.float().mean().detach()


class CAJ(AGW):
    """AGW's network as CAJ's test scripts read it: in evaluation every output is L2-normalised (``embed_net``'s
    ``l2norm``), so flip averaging averages unit vectors as ``testa.py`` does."""

    def forward(self, visible: torch.Tensor | None = None, infrared: torch.Tensor | None = None,
                *rest: torch.Tensor) -> Outputs:
        """Training: ``(V, V_ca, I)`` as the batch layout orders them; the two visible views go through the visible
        stem together, as ``train_ext.py``'s ``net(cat(input10, input11), input2)``. Evaluation: one modality."""
        if rest:
            visible, infrared = torch.cat([visible, infrared]), rest[0]
        outputs = super().forward(visible, infrared)
        if self.training:
            return outputs
        return {name: F.normalize(value, dim=1) for name, value in outputs.items()}


@dataclass(frozen=True)
class CAJRecipe(AGWRecipe):
    """``train_ext.py``'s defaults with the README's flags (``--method adp --alpha 1 --square 1 --gamma 1``)."""

    epochs: int = 100  # range(start_epoch, 100 - start_epoch)
    adp_alpha: float = param(1.0, positive())  # --alpha: the softmax weights' scale
    adp_gamma: float = param(1.0, positive())  # --gamma (the recipe's own gamma is the lr step factor, 0.1)
    square: bool = True  # --square 1: the squared difference, clamped at 88; False: --square 0
    selection_rule: Selection = Selection(
        eval_every=2, eval_first=3, keeps=(Keep("rank1", "R1"),), variant="original",
        source="ICCV21_CAJ/train_ext.py: tests after 0-based epochs with `epoch > 0 and epoch % 2 == 0` (the 100th "
               "never) without flip and keeps `cmc_att[0] > best_acc` (rank-1 of the post-BN feature) as *_best.t; "
               "SYSU-MM01: one all-search single-shot gallery scored by eval_sysu, RegDB: the trial's visible -> "
               "thermal by eval_regdb")


class CAJCriterion(nn.Module):
    """Cross-entropy on the logits plus the ADP triplet on the pre-BN pooled feature, unit weights (``train_ext.py``:
    ``loss_id + loss_tri + 0 * loss_kl``)."""

    def __init__(self, num_classes: int, alpha: float = 1.0, gamma: float = 1.0, square: bool = True) -> None:
        super().__init__()
        self.identity = CrossEntropyLabelSmooth(num_classes, epsilon=0.0)
        self.adp = AdaptiveWeightedTriplet(alpha, gamma, square)

    def forward(self, outputs: dict[str, torch.Tensor], labels: torch.Tensor) -> dict[str, torch.Tensor]:
        identity = self.identity(outputs["logits"], labels)
        adp, precision, clamped = self.adp(outputs["pooled"], labels)
        return {"loss": identity + adp, "id": identity.detach(), "adp": adp.detach(), "clamped": clamped,
                "triplet_precision": precision}


def build_caj(num_classes: int, recipe: CAJRecipe, **weights) -> CAJ:
    agw = build_agw(num_classes, arch=recipe.arch, stem_relu=recipe.stem_relu,
                    official_one_channel=recipe.official_one_channel, backbone_lr_factor=recipe.backbone_lr_factor,
                    **weights)
    return CAJ(agw.backbone, agw.pool, agw.neck, backbone_lr_factor=recipe.backbone_lr_factor)


PAPER = Paper(
    method="caj", title="CAJ", datasets=("sysu", "regdb", "llcm"), recipe=CAJRecipe(), notebook="caj.ipynb",
    build=lambda classes, recipe, weights: build_caj(classes, recipe, **weights),
    criterion=lambda classes, recipe, dataset: CAJCriterion(classes, recipe.adp_alpha, recipe.adp_gamma, recipe.square),
    # data_loader.py yields (img1_a, img1_b, img2): the two visible views, then the thermal one
    batch=BatchLayout(views={"visible": ("erasing", "caj"), "infrared": ("caj",)}),
    variants={
        "flip": Variant("embedding", flip=True, description="testa.py: the mean of the image's and its mirror's "
                        "L2-normalised post-BN feature (the README's numbers)"),
        "original": Variant("embedding", description="train_ext.py's test: no flip (it picks the checkpoint)"),
        "pool flip": Variant("pooled", flip=True, description="testa.py's POOL line: the pre-BN GeM feature, "
                             "flip-averaged"),
    },
    layouts=OFFICIAL_LAYOUTS,  # CAJ's files are the same embed_net as AGW's
    deviations=(
        Deviation("The squared ADP loss clamps gamma (d_ap - d_an)^2 at 88; an anchor past it gives no triplet "
                  "gradient, which can stall training (the repository's issue #27). The notebook shows the clamped "
                  "fraction; the switch is the repository's unsquared variant.", "square=False"),
        Deviation("The non-local blocks' inner width is always 1 channel (AGW's open PR #28).",
                  "official_one_channel=False"),
        UNSEEDED_GALLERIES,
        Deviation("Its augmentations draw from Python's unseeded `random`, so no two official runs see the same views; "
                  "the workbook seeds them per epoch and worker.", default="workbook"),
    ),
    fidelity=("AGW's two-stream ResNet-50 (1-channel non-local blocks, GeM p = 3, BNNeck), trained on [V, V_ca, I] "
              "with data_loader.py's hard-coded views, cross-entropy and the squared ADP triplet clamped at 88; "
              "the checkpoint is picked without flip and reported with testa.py's flip averaging."),
)
