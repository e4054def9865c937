"""MITML (Lin et al., "Learning Modal-Invariant and Temporal-Memory for Video-based
Visible-Infrared Person Re-Identification", CVPR 2022), as ``VCM-project233/MITML`` runs it.

The network (``model_main.py``, ``embed_net``), per frame of a ``[B, S, 3, H, W]`` clip:

* the two-stream ResNet-50 (visible and thermal stems, shared layer1-layer3, last stride 1),
  then **two layer4s** on the layer3 map: the main one (``base_resnet.base.layer4``) and a
  separate copy (``base_resnet.layer4``, deep-copied from the same weights, trained on its
  own). Average pooling gives ``x_h`` (main) and ``x_l`` (copy) per frame;
* a **2-layer LSTM** (2048 -> 2048) over the S frame vectors ``x_l``; its last output ``t``
  summarises the clip;
* **temporal feature learning** (``temporal_feat_learning``): for frame position i,
  ``t_i = Linear_i(t) + x_l[i]`` and an SE gate (2048 -> 128 -> 2048, ReLU, sigmoid, no
  biases) of ``t_i / 2`` rescales the main feature, ``x_h[i] * gate + x_h[i]``; the S gated
  vectors are averaged. There is one Linear and one SE per frame position, so the official
  network exists for S = 6 only: another ``seq_len`` is an error here, not a silent change;
* BNNeck (BatchNorm1d with a frozen zero bias, weight N(1, 0.01)) and a bias-free classifier
  (N(0, 0.001)); the test feature is the post-BN feature (the official one L2-normalises it,
  which the evaluator does too).

Training (``train.py``): cross-entropy on the logits and batch-hard triplet (margin 0.3) on the
pooled pre-BN feature; a **modality classifier** (:class:`ModalityClassifier`, 3 classes) is
trained every step on the detached pooled features by its own SGD (lr 0.01 constant, momentum
0.9, Nesterov, weight decay 5e-4), and from epoch 60 (0-based, ``epoch < 60`` in the official
loop) the re-ID loss gains the **confusion term**: the classifier's cross-entropy on the
(not detached) features against the third class, for both modalities, weight 1. The main SGD
trains the BNNeck and classifier at lr 0.1 and every other parameter (stems, layers, the
layer4 copy, the LSTM, the temporal learning) at 0.01, with 10 warm-up epochs, x0.1 at 35 and
x0.01 at 80, 200 epochs; the official script tests every 10 epochs from epoch 0.

Where this reading of the code differs from ``PAPERS.md`` (the code wins):

* the modality classes: the official labels are **visible = 1, thermal = 0** (``modal_v_labels``
  are ones), the third class 2; PAPERS.md lists them as "visible, infrared, neither";
* in the official loop the network steps before the classifier until epoch 60 and after it
  from then on; the classifier reads detached features and holds no parameter of the network,
  so doing its step first (inside the criterion) gives the same numbers. From epoch 60 the
  confusion term reads the classifier as just updated, and the classifier's BatchNorm sees the
  batch twice a step, as in the official code.

Not reproduced: ``bottleneck1``, ``classifier1`` / ``classifier2`` and each SE layer's ``l``
convolution are built by ``embed_net`` but never run (so never trained), and the stems' and
trunk's unused ResNet parts; they are not built here, and a released file's copies of them are
named unused by :data:`OFFICIAL_LAYOUTS`. ``TemporalMemory``, ``FeatureBlock`` and ``ClassBlock``
are defined in ``model_main.py`` but ``embed_net`` never builds them, so they are not in the file.
The modality classifier is saved beside the network (``net_modal_classifier``) and ``test.py``
never reads it; loading takes ``net`` only.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from ..losses.identity import CrossEntropyLabelSmooth
from ..losses.metric import BatchHardTriplet
from ..interface import Deviation, Keep, Paper, Recipe, Selection, integer, param, positive
from ..models.backbone import TwoStreamResNet50, out_channels
from ..models.base import GlobalFeatureReID
from ..models.contract import Outputs
from ..models.layers import BNNeck, TemporalFeatureLearning
from ..models.official import LayoutMapping, OfficialLayout, map_embed_net, rename_prefixes
from ..models.video import frames_of, split_clips


# The four checkpoints MITML's train.py keeps (STAR's copies it), each by `>` on its own score: rank-1 and mAP of
# IR -> visible ("t2v", as its files are named) and of visible -> IR ("v2t").
VCM_KEEPS = (Keep("t2v_rank1", "R1", "ir2rgb"), Keep("t2v_map", "mAP", "ir2rgb"),
             Keep("v2t_rank1", "R1", "rgb2ir"), Keep("v2t_map", "mAP", "rgb2ir"))


@dataclass(frozen=True)
class VideoRecipe(Recipe):
    """MITML's training recipe (``train.py``), which the video papers here build on."""

    optimizer: str = "sgd"
    lr: float = 0.1  # head (BNNeck, classifier); the rest trains at backbone_lr_factor x lr
    backbone_lr_factor: float = param(0.1, positive())
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "warmup_step"
    warmup_epochs: int = 10
    milestones: tuple[int, ...] = (35, 80)
    gamma: float = 0.1
    epochs: int = 200
    margin: float = param(0.3, positive())
    seq_len: int = param(6, integer(1))
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


SEQ_LEN = 6  # one Linear and one SE gate per frame position: the official network is built for six frames
VCM_TRAIN_IDS = 500  # HITSZ-VCM's training identities: the classifier size of the official network
# The official modality labels (train.py: modal_v_labels = 1, modal_t_labels = 0, modal_3_labels = 2).
MODALITY_CLASS = {"visible": 1, "infrared": 0, "neither": 2}


@dataclass(frozen=True)
class MITMLRecipe(VideoRecipe):
    """MITML's ``train.py``: the shared video schedule, the adversarial modality classifier and its test schedule."""

    confusion_epoch: int = 60  # 0-based epoch from which the confusion term joins the loss (epoch < 60 has none)
    confusion_weight: float = 1.0
    modality_lr: float = param(0.01, positive())  # the modality classifier's own SGD, constant
    selection_rule: Selection = Selection(
        eval_every=10, eval_first=1, keeps=VCM_KEEPS, reported=(("ir2rgb", "t2v_map"), ("rgb2ir", "t2v_map")),
        source="train.py: tests after 0-based epochs with `epoch % 10 == 0` (0..190; the last epoch is never tested) "
               "and keeps t2v_rank1_best, t2v_map_best, v2t_rank1_best and v2t_map_best, each by `>`; test.py loads "
               "*t2v_map_best.t by default and prints both directions from it")


class MITML(GlobalFeatureReID):
    """MITML's network (see the module doc). Training outputs over ``[visible; infrared]`` clips:
    ``pooled`` [N, D] (the gated clip feature, pre-BN), ``bn``, ``logits`` [N, C], ``modality`` [N]
    (0 visible, 1 infrared, the workbook's convention). Evaluation: ``embedding`` (post-BN), ``pooled``."""

    def __init__(self, backbone: TwoStreamResNet50, neck: BNNeck, seq_len: int = SEQ_LEN,
                 backbone_lr_factor: float = 0.1) -> None:
        super().__init__(backbone, nn.AdaptiveAvgPool2d(1), neck)
        dim = backbone.out_channels
        self.seq_len = seq_len
        self.temporal_layer4 = copy.deepcopy(backbone.layer4)  # base_resnet.layer4: same start, own weights
        self.lstm = nn.LSTM(dim, dim, num_layers=2, batch_first=True)
        self.temporal = TemporalFeatureLearning(dim, seq_len)
        self.backbone_lr_factor = backbone_lr_factor

    def pooled_feature(self, visible: torch.Tensor | None, infrared: torch.Tensor | None) -> torch.Tensor:
        clips, length = split_clips(visible, infrared)
        if length != self.seq_len:
            raise ValueError(f"MITML is built for clips of {self.seq_len} frames (one linear and one SE gate per frame "
                             f"position) but got {length}; use seq_len={self.seq_len}.")
        shared = self.backbone(frames_of(visible), frames_of(infrared), until="layer3")
        frames = self.pool(self.backbone.layer4(shared)).flatten(1).reshape(clips, length, -1)  # x_h
        temporal = self.pool(self.temporal_layer4(shared)).flatten(1).reshape(clips, length, -1)  # x_l
        summary = self.lstm(temporal)[0][:, -1]  # zero initial state, the top layer's last output
        return self.temporal(summary, temporal, frames)

    def forward(self, visible: torch.Tensor | None = None, infrared: torch.Tensor | None = None) -> Outputs:
        pooled = self.pooled_feature(visible, infrared)
        if not self.training:
            return self.test_outputs(pooled)
        bn, logits = self.neck(pooled)
        modality = torch.ones(len(pooled), dtype=torch.long, device=pooled.device)
        modality[:0 if visible is None else visible.shape[0]] = 0
        return {"pooled": pooled, "bn": bn, "logits": logits, "modality": modality}

    def param_groups(self, base_lr: float) -> list[dict]:
        """The BNNeck and classifier at ``base_lr``; every other parameter at ``backbone_lr_factor * base_lr``."""
        head = [p for p in self.neck.parameters() if p.requires_grad]
        ids = {id(p) for p in head}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        return [{"name": "stems, layers, layer4 copy, LSTM, temporal gates", "params": rest,
                 "lr": base_lr * self.backbone_lr_factor},
                {"name": "BNNeck and classifier", "params": head, "lr": base_lr}]


def build_mitml(num_classes: int, seq_len: int = SEQ_LEN, pretrained: bool = True,
                weights_file: str | Path | None = None, last_stride: int = 1, arch: str = "resnet50",
                backbone_lr_factor: float = MITMLRecipe.backbone_lr_factor) -> MITML:
    """MITML's network; ``arch`` other than "resnet50" is for quick experiments (the widths follow it)."""
    if seq_len != SEQ_LEN:
        raise ValueError(f"seq_len={seq_len}: MITML's network has one linear and one SE gate per frame position and "
                         f"exists for {SEQ_LEN} frames only (train.py fixes seq_lenth = 6); use seq_len={SEQ_LEN}.")
    backbone = TwoStreamResNet50(pretrained=pretrained, weights_file=weights_file, last_stride=last_stride,
                                 non_local=False, shared_stem=False, arch=arch)
    neck = BNNeck(backbone.out_channels, num_classes, bias_trainable=False, classifier_bias=False,
                  bn_weight_std=0.01, classifier_init="normal")
    return MITML(backbone, neck, seq_len, backbone_lr_factor=backbone_lr_factor)


class ModalityClassifier(nn.Module):
    """``modal_Classifier``: a feature [N, D] as a length-1 sequence through Conv1d(D -> 1024, k 3, stride 2)
    and 7 Conv1d blocks halving the width (each with BatchNorm and ReLU), then Linear(8 -> classes)."""

    def __init__(self, dim: int = 2048, classes: int = 3, hidden: int = 1024, blocks: int = 7) -> None:
        super().__init__()
        widths = [hidden // 2**i for i in range(blocks + 1)]
        if widths[-1] < 1:
            raise ValueError(f"hidden={hidden} cannot be halved {blocks} times.")
        self.blocks = nn.Sequential(*(
            nn.Sequential(nn.Conv1d(c_in, c_out, kernel_size=3, stride=2, padding=1), nn.BatchNorm1d(c_out),
                          nn.ReLU(inplace=True))
            for c_in, c_out in zip([dim] + widths[:-1], widths)))
        self.linear = nn.Linear(widths[-1], classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(self.blocks(features.unsqueeze(2)).squeeze(2))


def official_size(num_classes: int = VCM_TRAIN_IDS, arch: str = "resnet50") -> tuple[int, int]:
    """(parameters of the network, of the modality classifier) at the paper's size, counted without
    allocating weights (on the meta device): about 135.0M and 8.4M for ResNet-50 and 500 identities."""
    with torch.device("meta"):
        model = build_mitml(num_classes, pretrained=False, arch=arch)
        classifier = ModalityClassifier(model.backbone.out_channels)
    return sum(p.numel() for p in model.parameters()), sum(p.numel() for p in classifier.parameters())


def _modality_loss(logits: torch.Tensor, modality: torch.Tensor, targets: dict[int, int]) -> torch.Tensor:
    """Sum over the modalities present of the mean cross-entropy against ``targets[modality]``, as the
    official code adds its visible-half and thermal-half terms."""
    total = logits.new_zeros(())
    for code, target in targets.items():
        rows = modality == code
        if rows.any():
            labels = torch.full((int(rows.sum()),), target, dtype=torch.long, device=logits.device)
            total = total + nn.functional.cross_entropy(logits[rows], labels)
    return total


class MITMLCriterion(nn.Module):
    """Cross-entropy + batch-hard triplet, the adversarial modality classifier, and the confusion term.

    It owns the modality classifier and its SGD: in training, every call first fits the
    classifier one step on the detached ``pooled`` features (true modality), then, from
    ``confusion_epoch`` on, adds ``confusion_weight`` x the classifier's cross-entropy of the
    (not detached) features against the third class. The trainer tells it the epoch
    (``set_epoch``); the classifier's optimiser state travels in the criterion's state dict
    (``get_extra_state``), so a resumed run continues exactly. Under torch.distributed the
    classifier's gradients are averaged over the processes, so the replicas stay equal. Both
    classifier passes run in float32, outside autocast.
    """

    def __init__(self, num_classes: int, dim: int = 2048, margin: float = 0.3, confusion_epoch: int = 60,
                 confusion_weight: float = 1.0, modality_lr: float = 0.01, momentum: float = 0.9,
                 weight_decay: float = 5e-4) -> None:
        super().__init__()
        if confusion_epoch < 0 or confusion_weight < 0 or modality_lr <= 0:
            raise ValueError(f"confusion_epoch={confusion_epoch} and confusion_weight={confusion_weight} must be >= 0 "
                             f"and modality_lr={modality_lr} > 0.")
        self.identity = CrossEntropyLabelSmooth(num_classes, epsilon=0.0)
        self.triplet = BatchHardTriplet(margin=margin)
        self.modality = ModalityClassifier(dim)
        self.optimizer = torch.optim.SGD(self.modality.parameters(), lr=modality_lr, momentum=momentum,
                                         weight_decay=weight_decay, nesterov=True)
        self.confusion_epoch = confusion_epoch
        self.confusion_weight = confusion_weight
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """The 0-based epoch about to run (the trainer calls this before its first step)."""
        self.epoch = epoch

    @property
    def confusion_on(self) -> bool:
        return self.epoch >= self.confusion_epoch

    def get_extra_state(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "epoch": self.epoch}

    def set_extra_state(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch = int(state["epoch"])

    def _fit_classifier(self, features: torch.Tensor, modality: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step of the classifier on detached features; (its loss, its accuracy before the step)."""
        truth = {0: MODALITY_CLASS["visible"], 1: MODALITY_CLASS["infrared"]}
        with torch.enable_grad():
            logits = self.modality(features.detach())
            loss = _modality_loss(logits, modality, truth)
        if self.training:
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if dist.is_available() and dist.is_initialized():
                for p in self.modality.parameters():
                    if p.grad is not None:
                        dist.all_reduce(p.grad)
                        p.grad /= dist.get_world_size()
            self.optimizer.step()
        targets = torch.where(modality == 0, MODALITY_CLASS["visible"], MODALITY_CLASS["infrared"])
        accuracy = (logits.detach().argmax(dim=1) == targets).float().mean()
        return loss.detach(), accuracy

    def forward(self, outputs: Outputs, labels: torch.Tensor) -> Outputs:
        identity = self.identity(outputs["logits"], labels)
        triplet, precision = self.triplet.loss_and_precision(outputs["pooled"], labels)
        with torch.autocast(outputs["pooled"].device.type, enabled=False):
            features = outputs["pooled"].float()
            adversary, accuracy = self._fit_classifier(features, outputs["modality"])
            if self.confusion_on:
                neither = {0: MODALITY_CLASS["neither"], 1: MODALITY_CLASS["neither"]}
                confusion = _modality_loss(self.modality(features), outputs["modality"], neither)
            else:
                confusion = features.new_zeros(())
        loss = identity + triplet + self.confusion_weight * confusion
        return {"loss": loss, "id": identity, "triplet": triplet, "triplet_precision": precision,
                "confusion": confusion.detach(), "modality": adversary, "modality_accuracy": accuracy}


# ---------------------------------------------------------------------------------------------
# The authors' checkpoints: train.py saves ``{"net": embed_net.state_dict(), "net_modal_classifier":
# modal_Classifier.state_dict(), "mAP", "epoch"}`` as ``*t2v_rank1_best.t``, ``*t2v_map_best.t``,
# ``*v2t_rank1_best.t`` and ``*v2t_map_best.t``; test.py loads ``"net"`` only. The network is AGW's
# embed_net (stems, shared layers, BNNeck under the same names, via DDAG) plus MITML's modules below.
# The modality classifier is no part of the network: it is the criterion's (MITMLCriterion.modality,
# first_layer -> blocks.0, layers.i -> blocks.(i+1), Liner -> linear) and evaluation never needs it.
# ---------------------------------------------------------------------------------------------

# Official module -> workbook module, for what MITML adds to embed_net. nn.LSTM names its tensors and
# orders its gates (i, f, g, o) the same with or without batch_first, so the LSTM's names carry over.
# temporal_feat_learning's Linears a..f and SE layers se_1..se_6 serve frame positions 0..5 in order.
_MITML_PREFIXES = (
    ("base_resnet.layer4.", "temporal_layer4."),
    ("lstm.", "lstm."),
    *((f"temporal_feat_learning.{name}.", f"temporal.linears.{i}.") for i, name in enumerate("abcdef")),
    *((f"temporal_feat_learning.se_{i + 1}.fc.", f"temporal.gates.{i}.") for i in range(SEQ_LEN)),
)
# Built by embed_net.__init__ but never called by its forward, so never trained either.
_MITML_NEVER_USED = (
    ("bottleneck1.", "a second BNNeck BatchNorm that embed_net builds but its forward never runs"),
    ("classifier1.", "an extra classifier that embed_net builds but its forward never runs"),
    ("classifier2.", "an extra classifier that embed_net builds but its forward never runs"),
    *((f"temporal_feat_learning.se_{i + 1}.l.", "the 1x1 convolution each SELayer builds but its forward never calls")
      for i in range(SEQ_LEN)),
)


def _identify_official(keys) -> bool:
    # the layer4 copy and the temporal learning exist in MITML's embed_net only, not in AGW's it builds on
    return "base_resnet.layer4.0.conv1.weight" in keys and "temporal_feat_learning.a.weight" in keys


def _convert_official(state, model: MITML) -> LayoutMapping:
    mapping = LayoutMapping()
    rename_prefixes(state, _MITML_PREFIXES, mapping)  # before map_embed_net, which names the rest of base_resnet unused
    map_embed_net(state, model, mapping)
    for key in state:
        reason = next((why for prefix, why in _MITML_NEVER_USED if key.startswith(prefix)), None)
        if reason is not None and key not in mapping.used:
            mapping.unused[key] = reason
    mapping.notes.append("the adversarial modality classifier train.py saves beside the network "
                         "('net_modal_classifier') is a training-time part (the workbook's MITMLCriterion holds it); "
                         "evaluation does not use it, so it is not loaded")
    return mapping


OFFICIAL_LAYOUTS = (OfficialLayout("MITML, VCM-project233/MITML (embed_net)", _identify_official, _convert_official),)


PAPER = Paper(
    method="mitml", title="MITML", datasets=("vcm", "bupt"), recipe=MITMLRecipe(),
    # BUPTCampus: its own test.py's frames (int(i n / S)), at MITML's six
    dataset_recipes={"bupt": replace(MITMLRecipe(), test_frames="uniform")},
    build=lambda classes, recipe, weights: build_mitml(classes, seq_len=recipe.seq_len, arch=recipe.arch,
                                                       backbone_lr_factor=recipe.backbone_lr_factor, **weights),
    criterion=lambda classes, recipe, dataset: MITMLCriterion(
        classes, dim=out_channels(recipe.arch), margin=recipe.margin,
        confusion_epoch=recipe.confusion_epoch, confusion_weight=recipe.confusion_weight,
        modality_lr=recipe.modality_lr),
    layouts=OFFICIAL_LAYOUTS,
    fidelity=("MITML as VCM-project233/MITML runs it: two layer4s (the copy feeds a 2-layer LSTM), per-frame linear + "
              "SE gating for S = 6, BNNeck; a 3-class modality classifier with its own SGD on detached features and "
              "the confusion term from epoch 60; BNNeck and classifier at lr 0.1, the rest at 0.01. Its test every 10 "
              "epochs keeps four checkpoints (rank-1 and mAP of each direction); both directions are reported from "
              "the IR -> VIS mAP one, which test.py loads."),
    deviations=(
        Deviation("Which kept checkpoint the published numbers come from is not stated: test.py's default, the "
                  "IR -> VIS mAP checkpoint scored in both directions, is assumed; the record holds all four.",
                  default="workbook"),
    ),
)
