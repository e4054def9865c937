"""IV-ReID strong baseline (seed 003), official code linyq17/IV-REID, built on Luo et al.'s
reid-strong-baseline.

Model: ONE ResNet-50 shared by both modalities (stem included, last stride 1, no non-local),
the released network's (``model/resnet.py``): its stem is conv1 -> bn1 -> maxpool with the
ReLU commented out, and every convolution carries a bias. Both are the default here because
the published 46.3 / 44.2 come from that network; ``stem_relu=True`` restores the usual stem
(and ``conv_bias=False`` drops the biases, which change no output: each feeds a BatchNorm).
After the backbone: global average pooling, a BatchNorm1d neck with a trainable bias and a shared identity
classifier with a bias. On top, two modality-specific identity heads, one "visible" and one
"infrared" (official ``IDENet``). Each head is exactly

    BatchNorm1d(2048) -> Linear(2048, 512) -> Linear(512, num_classes)

with NO activation between the two linear layers, as in the official code (and PAPERS.md:
"BN, FC 512, FC classes"); the pair is therefore a rank-512 linear map. Heads read the
post-BN feature (the official loop feeds them the neck output, not the GAP feature), and
gradients from the heads flow back into the backbone (nothing is detached in the model).

Training (the criterion lives in ``vireid_lib.losses``): cross-entropy on the shared logits
over all samples; each head trained with cross-entropy on its own modality's samples plus a
KL term ``KL(softmax(other head's logits on the same samples).detach() || head's)``, i.e. the
visible head on the visible half is pulled toward the infrared head's detached prediction on
that half, and vice versa; batch-hard triplet on the post-BN feature (margin 0.3 SYSU, 0.2
RegDB). No centre loss, no label smoothing.

Recipe (:class:`IVReIDRecipe`): Adam, lr 1e-4 (heads 1e-3), weight decay 5e-4, 100 epochs,
constant lr (the configured step schedule is never applied in the official code), 384x128
inputs, 8 identities x (4 visible + 4 infrared) without replacement, seed 2019.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..interface import Deviation, Keep, Paper, Recipe, Selection, param, positive
from pathlib import Path

import torch
from torch import nn

from ..losses.identity import CrossEntropyLabelSmooth, MutualKL
from ..losses.metric import BatchHardTriplet
from ..models.base import GlobalFeatureReID
from ..models.backbone import TwoStreamResNet50
from ..models.contract import Outputs
from ..models.layers import BNNeck, init_linear_kaiming
from ..models.official import LayoutMapping, OfficialLayout, rename_prefixes


@dataclass(frozen=True)
class IVReIDRecipe(Recipe):
    """IV-ReID's training recipe (official ``configs/res50_*.ini`` and ``train_*.py``)."""

    optimizer: str = "adam"
    lr: float = 1e-4
    head_lr_factor: float = param(10.0, positive())  # official make_optimizer(..., 'head'): the heads' own Adam at 10 x BASE_LR
    nesterov: bool = False
    weight_decay: float = 5e-4  # on every parameter, biases included (bias overrides are commented out)
    epochs: int = 100
    schedule: str = "constant"  # WarmupMultiStepLR is built in slover.py but never stepped
    warmup_epochs: int = 0
    milestones: tuple[int, ...] = ()
    margin_sysu: float = param(0.3, positive())
    margin_regdb: float = param(0.2, positive())
    # The official code has no LLCM: SYSU-MM01's margin, the other multi-camera set's (inferred, a Deviation says so).
    margin_llcm: float = param(0.3, positive())
    height: int = 384
    width: int = 128
    num_ids: int = 8
    num_per_modality: int = 4
    replace: bool = False
    selection_rule: Selection = Selection(
        eval_every=2, eval_first=2, keeps=(Keep("rank1", "R1"),), selection_trials=10, gallery_seed=2019,
        gallery_seed_step=33, walk="camera", directions=("t2v",),
        source="train_sysumm.py / train_regdb.py: evaluate when `(epoch + 1) % EVAL_PERIOD == 0` (2) and keep "
               "`rank1 > best_result[0]` as *_best.pth (SYSU-MM01: rank-1 averaged over its 10 all-search galleries, "
               "seeds 2019 + 33 k, drawn camera by camera; RegDB: thermal -> visible); the logged numbers of that "
               "epoch are the published ones")
    seed: int = 2019
    # torchvision's bilinear Resize on every image, in training and at test; nothing cached
    train_resize: str = "bilinear"
    cache_training_images: bool = False
    test_resize: str = "bilinear"
    # the released ResNet-50 (model/resnet.py): no ReLU after the stem's BN, a bias on every conv
    stem_relu: bool = False
    conv_bias: bool = True

    @property
    def head_lr(self) -> float:
        return self.lr * self.head_lr_factor

    def margin(self, dataset: str) -> float:
        """Triplet margin for ``dataset`` ("sysu", "regdb" or "llcm")."""
        key = dataset.lower()
        for name, margin in (("sysu", self.margin_sysu), ("regdb", self.margin_regdb), ("llcm", self.margin_llcm)):
            if key.startswith(name):
                return margin
        raise ValueError(f"IV-ReID defines margins for SYSU-MM01, RegDB and LLCM only, not {dataset!r}.")


class ModalityHead(nn.Module):
    """One IV-ReID identity head: BatchNorm1d -> Linear(in, hidden) -> Linear(hidden, classes).

    No activation between the linear layers (official ``IDENet``). The BN keeps PyTorch's
    default init (weight 1, bias 0, trainable); both linear layers use reid-strong-baseline's
    kaiming ``fan_out`` init with zero bias.
    """

    def __init__(self, in_dim: int, hidden_dim: int, num_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(in_dim)
        self.fc1 = nn.Linear(in_dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, num_classes)
        init_linear_kaiming(self.fc1)
        init_linear_kaiming(self.fc2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(self.bn(x)))


class IVReID(GlobalFeatureReID):
    """IV-ReID strong baseline following :mod:`vireid_lib.models.contract`.

    ``forward(visible, infrared)`` in training needs both batches (``B_v`` visible, ``B_i``
    infrared) and returns, over the concatenation ``[visible; infrared]`` (``N = B_v + B_i``):

    ========================================  ==========  =============================================
    key                                       shape       meaning
    ========================================  ==========  =============================================
    ``pooled``                                [N, 2048]   GAP feature, before the neck
    ``bn``                                    [N, 2048]   post-BN feature (triplet input, head input)
    ``logits``                                [N, C]      shared classifier on ``bn``
    ``visible_logits``                        [B_v, C]    visible head on the visible half (its CE)
    ``infrared_logits``                       [B_i, C]    infrared head on the infrared half (its CE)
    ``infrared_logits_on_visible``            [B_v, C]    infrared head on the visible half: the KL
                                                          target of ``visible_logits`` (detach it)
    ``visible_logits_on_infrared``            [B_i, C]    visible head on the infrared half: the KL
                                                          target of ``infrared_logits`` (detach it)
    ========================================  ==========  =============================================

    Nothing is detached here; the criterion detaches the KL targets, as the official loop does.
    As in the official code each head runs on the whole batch and is then split, so the
    heads' BatchNorm statistics in training come from both modalities (like every shared BN).

    In evaluation mode (typically one modality): ``{"embedding": post-BN feature, "pooled": GAP
    feature}``; the official test feature is the post-BN feature.
    """

    def __init__(
        self,
        backbone: TwoStreamResNet50,
        neck: BNNeck,
        visible_head: ModalityHead,
        infrared_head: ModalityHead,
        head_lr_factor: float = 10.0,
    ) -> None:
        super().__init__(backbone, nn.AdaptiveAvgPool2d(1), neck)
        self.head_lr_factor = head_lr_factor
        self.visible_head = visible_head
        self.infrared_head = infrared_head

    def forward(self, visible: torch.Tensor | None = None, infrared: torch.Tensor | None = None) -> Outputs:
        if self.training and (visible is None or infrared is None):
            raise ValueError(
                "IVReID needs both a visible and an infrared batch in training mode (its modality heads are "
                "trained on their own halves); call model.eval() to embed a single modality."
            )
        pooled = self.pooled_feature(visible, infrared)
        if not self.training:
            return self.test_outputs(pooled)
        bn, logits = self.neck(pooled)
        num_visible = visible.shape[0]
        by_visible_head = self.visible_head(bn)
        by_infrared_head = self.infrared_head(bn)
        return {
            "pooled": pooled,
            "bn": bn,
            "logits": logits,
            "visible_logits": by_visible_head[:num_visible],
            "infrared_logits": by_infrared_head[num_visible:],
            "infrared_logits_on_visible": by_infrared_head[:num_visible],
            "visible_logits_on_infrared": by_visible_head[num_visible:],
        }

    def param_groups(self, base_lr: float) -> list[dict]:
        """Backbone, neck and shared classifier at ``base_lr``; both modality heads at
        ``head_lr_factor * base_lr`` (10x: the official separate head optimiser)."""
        heads = list(self.visible_head.parameters()) + list(self.infrared_head.parameters())
        head_ids = {id(p) for p in heads}
        base = [p for p in self.parameters() if p.requires_grad and id(p) not in head_ids]
        return [
            {"name": "backbone, BNNeck and classifier", "params": base, "lr": base_lr},
            {"name": "modality heads", "params": [p for p in heads if p.requires_grad], "lr": self.head_lr_factor * base_lr},
        ]


def build_ivreid(
    num_classes: int,
    pretrained: bool = True,
    weights_file: str | Path | None = None,
    last_stride: int = 1,
    head_dim: int = 512,
    head_lr_factor: float = 10.0,
    arch: str = "resnet50",
    stem_relu: bool = False,
    conv_bias: bool = True,
) -> IVReID:
    """IV-ReID strong baseline with the official defaults.

    ``weights_file`` (a torchvision ResNet-50 state dict) overrides ``pretrained``; ``arch``
    other than "resnet50" is for quick experiments. ``stem_relu=False`` and ``conv_bias=True``
    are the released ResNet-50 (no ReLU after the stem's BatchNorm, a bias on every conv).
    """
    backbone = TwoStreamResNet50(
        arch=arch,
        pretrained=pretrained,
        weights_file=weights_file,
        last_stride=last_stride,
        non_local=False,
        shared_stem=True,
        stem_relu=stem_relu,
        conv_bias=conv_bias,
    )
    dim = backbone.out_channels
    # Official Baseline with FC_BIAS = yes: default BatchNorm1d (weight 1, bias 0, bias trained)
    # and a classifier with bias, initialised by weights_init_kaiming (fan_out), not N(0, 0.001).
    neck = BNNeck(dim, num_classes, bias_trainable=True, classifier_bias=True, classifier_init="kaiming")
    return IVReID(
        backbone,
        neck,
        ModalityHead(dim, head_dim, num_classes),
        ModalityHead(dim, head_dim, num_classes),
        head_lr_factor=head_lr_factor,
    )


class IVReIDCriterion(nn.Module):
    """The IV-ReID baseline's objective, as its official training loop sums it (unit weights).

    Cross-entropy of the shared classifier on the whole batch and of each modality head on
    its own half; a KL term pulling each head toward the other head's detached prediction on
    the same samples; batch-hard triplet (margin 0.3 SYSU-MM01, 0.2 RegDB) on the post-BN
    feature.
    """

    def __init__(self, num_classes: int, margin: float = 0.3) -> None:
        super().__init__()
        self.identity = CrossEntropyLabelSmooth(num_classes)
        self.triplet = BatchHardTriplet(margin=margin)
        self.kl = MutualKL()

    def forward(self, outputs: dict[str, torch.Tensor], labels: torch.Tensor) -> dict[str, torch.Tensor]:
        half = len(labels) // 2
        visible, infrared = labels[:half], labels[half:]
        identity = (self.identity(outputs["logits"], labels) + self.identity(outputs["visible_logits"], visible)
                    + self.identity(outputs["infrared_logits"], infrared))
        kl = (self.kl(outputs["visible_logits"], outputs["infrared_logits_on_visible"])
              + self.kl(outputs["infrared_logits"], outputs["visible_logits_on_infrared"]))
        triplet, precision = self.triplet.loss_and_precision(outputs["bn"], labels)
        return {"loss": identity + kl + triplet, "id": identity.detach(), "kl": kl.detach(),
                "triplet": triplet.detach(), "triplet_precision": precision}


# ---------------------------------------------------------------------------------------------
# The authors' checkpoints: IV-ReID's scripts save the whole ``Baseline`` with ``torch.save(model)``
# (``base`` = its ResNet-50, ``bottleneck``, ``share_classifier``); the modality heads (``IDENet``)
# are a separate module that is never saved. Mapped onto :class:`IVReID`.
# ---------------------------------------------------------------------------------------------

_OFFICIAL_PREFIXES = (
    ("base.conv1.", "backbone.stem.conv1."),
    ("base.bn1.", "backbone.stem.bn1."),
    *((f"base.layer{i}.", f"backbone.layer{i}.") for i in range(1, 5)),
    ("bottleneck.", "neck.bn."),
    ("share_classifier.", "neck.classifier."),
    # IDENet, should a user have saved it beside the model
    ("rgb_bn.", "visible_head.bn."), ("rgb_fc1.", "visible_head.fc1."), ("rgb_fc2.", "visible_head.fc2."),
    ("ir_bn.", "infrared_head.bn."), ("ir_fc1.", "infrared_head.fc1."), ("ir_fc2.", "infrared_head.fc2."),
)


def _following_bn(conv: str) -> str:
    """The BatchNorm an official convolution feeds: conv1 -> bn1, ..., downsample.0 -> downsample.1."""
    head, _, name = conv.rpartition(".")
    if name == "0" and head.endswith("downsample"):
        return f"{head}.1"
    return f"{head}.{name.replace('conv', 'bn')}" if head else name.replace("conv", "bn")


def _identify_official(keys) -> bool:
    return "base.conv1.weight" in keys and "bottleneck.weight" in keys and "share_classifier.weight" in keys


def _convert_official(state, model: IVReID) -> LayoutMapping:
    mapping = LayoutMapping()
    rename_prefixes(state, _OFFICIAL_PREFIXES, mapping)
    own = model.state_dict()
    convs = [k[: -len(".bias")] for k in state if k.endswith(".bias") and state.get(k[:-5] + ".weight", torch.empty(0)).ndim == 4]
    folded = [c for c in convs if _workbook(c + ".bias") in mapping.state and _workbook(c + ".bias") not in own]
    for conv in folded:
        # BN(conv(x) + b) with running mean m equals BN(conv(x)) with running mean m - b: at test time
        # (running statistics) every output is unchanged, and in training the BN removes any bias anyway.
        bias = mapping.state.pop(_workbook(conv + ".bias"))
        mean_key = _workbook(_following_bn(conv) + ".running_mean")
        mapping.state[mean_key] = mapping.state[mean_key] - bias
    if folded:
        mapping.notes.append(f"{len(folded)} convolution biases of the released ResNet-50 folded into the running mean "
                             "of the BatchNorm each feeds (this model was built with conv_bias=False): outputs unchanged")
    for head in ("visible_head", "infrared_head"):
        for key in own:
            if key.startswith(head + ".") and key not in mapping.state:
                mapping.absent[key] = ("the official scripts never save the modality heads (IDENet); "
                                       "they train the backbone and are not used at test time")
    return mapping


def _workbook(official: str) -> str:
    for prefix, target in _OFFICIAL_PREFIXES:
        if official.startswith(prefix):
            return target + official[len(prefix):]
    return official


OFFICIAL_LAYOUTS = (OfficialLayout("IV-ReID baseline, linyq17/IV-REID (Baseline)", _identify_official, _convert_official),)


PAPER = Paper(
    method="ivreid", title="IV-ReID baseline", datasets=("sysu", "regdb", "llcm"), recipe=IVReIDRecipe(),
    notebook="ivreid_baseline.ipynb",
    build=lambda classes, recipe, weights: build_ivreid(classes, arch=recipe.arch, stem_relu=recipe.stem_relu,
                                                        conv_bias=recipe.conv_bias,
                                                        head_lr_factor=recipe.head_lr_factor, **weights),
    criterion=lambda classes, recipe, dataset: IVReIDCriterion(classes, margin=recipe.margin(dataset)),
    layouts=OFFICIAL_LAYOUTS,
    deviations=(
        Deviation("Its ResNet-50 has no ReLU after the stem's BatchNorm (`model/resnet.py`).", "stem_relu=True"),
        Deviation("Its configured warm-up and step schedule is never applied: the lr stays constant.", ""),
        Deviation("Its selection galleries come from unsorted file listings (os.walk, glob); the workbook draws them "
                  "with the same seeds, camera by camera, from sorted listings, so its exact draws cannot be repeated. "
                  "Its published numbers are the best epoch's averages on those galleries (the record keeps them as "
                  "the kept checkpoint's selection-test scores); the workbook's rows score that checkpoint on the "
                  "standard protocol (galleries 0-9), like every paper.", default="workbook"),
        Deviation("Its code has no LLCM: on LLCM the triplet margin is SYSU-MM01's 0.3 (inferred: LLCM is the other "
                  "multi-camera set; `margin_llcm` sets it).", default="workbook", datasets=("llcm",)),
    ),
    fidelity=("The released ResNet-50 (`model/resnet.py`): no ReLU after the stem's BatchNorm and a bias on every "
              "convolution, the network behind the published 46.3 / 44.2. `stem_relu=True` restores the usual stem. "
              "Images are resized with bilinear filtering in training and at test, as the official code."),
)
