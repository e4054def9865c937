"""MMN: "Towards a Unified Middle Modality Learning for Visible-Infrared Person
Re-Identification" (Zhang et al., ACM MM 2021), official code ZYK100/MMN.

Model (``model.py``): AGW's two-stream ResNet-50 without non-local blocks and GeM, plus a
middle-modality generator: per modality a 1x1 conv 3->1 + ReLU, a 1x1 conv 1->1 + ReLU and a
BatchNorm2d(1); one shared 1x1 conv 1->3 + ReLU decodes both into three-channel middle-modality
images M_v and M_i (every generator conv starts at weight 0.333, bias 0, so the encoder starts
as the channel mean). Training runs the batch ``[V, M_v, I, M_i]``: the visible stem takes
``[V; M_v]``, the thermal stem ``[I; M_i]``. The layer4 map is cut into four horizontal stripes,
each average-pooled, each with its own BNNeck (frozen zero bias, N(1, 0.01) weight) and
bias-free classifier.

Test (``test.py``): an image of either modality goes through the generator too, so the model
yields its original and its middle-modality feature; the test feature is the L2-normalised
concatenation of the four post-BN stripes (8192-d). The official script prints several score
variants; three are declared here: ``original`` (original query x original gallery, the README's
numbers), ``middle`` (middle x middle) and ``sum`` (the sum of the four query/gallery
similarity matrices, which is the dot product of the summed normalised features).

Criterion (``train.py``, ``loss.py``): cross-entropy averaged over the stripes; per stripe the
batch-hard triplet (margin 0.3) averaged over the pairs (V, I), (V, M_i), (M_v, I), (M_v, M_i),
averaged over the stripes; the distribution-consistency loss on (M_v, M_i) averaged over the
stripes, times ``delta`` = 0.2. Official defect: the loss's projection head lives in the loss
module, whose parameters never reach the optimiser, so it stays at its random initialisation;
``fix_dc_head=False`` (default) reproduces that, ``True`` trains it with the heads' lr.
PAPERS.md writes the weight as 0.25 x 0.2: the 0.25 is the average over the four stripes.

Recipe: 384 x 192 (the SYSU preprocessing caches Lanczos-resized images; test images are resized
with Lanczos by ``TestData``), pad 10, random crop, flip, random erasing p 0.5 filling zeros;
4 identities x 4 images per modality; AGW's SGD (lr 0.1 for BNNecks and classifiers, 0.01 for
everything else, generator included), warm-up 10, x0.1 from epoch 20, x0.01 from 50, 81 epochs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..losses.consistency import ProjectedPairDistance
from ..losses.metric import BatchHardTriplet
from ..interface import BatchLayout, Deviation, Keep, Paper, Recipe, Selection, Variant, param, positive
from ..models.backbone import TwoStreamResNet50, out_channels
from ..models.contract import Outputs
from ..models.layers import BNNeck

STRIPES = 4


@dataclass(frozen=True)
class MMNRecipe(Recipe):
    """MMN's recipe (``train.py``): AGW's optimiser and schedule, its own sampler and augmentation."""

    backbone_lr_factor: float = param(0.1, positive())  # everything but the BNNecks and classifiers (generator included)
    height: int = 384
    width: int = 192
    num_ids: int = 4
    num_per_modality: int = 4
    random_erasing: float = 0.5
    erasing_fill: tuple[float, float, float] = (0.0, 0.0, 0.0)  # RandomErasing(probability=0.5, mean=[0, 0, 0])
    margin: float = param(0.3, positive())
    dc_weight: float = 0.2  # train.py --delta ("0.2 for PCB")
    fix_dc_head: bool = False  # official: the DC projection head is never optimised
    stem_relu: bool = True
    selection_rule: Selection = Selection(
        eval_every=2, eval_first=3, keeps=(Keep("rank1", "R1"),), rule="regdb",
        source="train.py (L419-438): tests after 0-based epochs with `epoch > 0 and epoch % 2 == 0` and keeps "
               "`cmc_att[0] > best_acc` (rank-1, original features) as *_best.t, which test.py loads; SYSU-MM01: the "
               "trial-0 all-search gallery scored by eval_regdb (no camera filter, plain CMC), RegDB: the trial's "
               "visible -> thermal")


class MiddleModalityGenerator(nn.Module):
    """Images of either modality -> three-channel middle-modality images (see the module doc)."""

    def __init__(self) -> None:
        super().__init__()
        self.visible_encode, self.visible_fc = nn.Conv2d(3, 1, 1), nn.Conv2d(1, 1, 1)
        self.infrared_encode, self.infrared_fc = nn.Conv2d(3, 1, 1), nn.Conv2d(1, 1, 1)
        # BatchNorm2d keeps PyTorch's init: the official weights_init_kaiming only matches BatchNorm1d.
        self.visible_bn, self.infrared_bn = nn.BatchNorm2d(1), nn.BatchNorm2d(1)
        self.decode = nn.Conv2d(1, 3, 1)
        for conv in (self.visible_encode, self.visible_fc, self.infrared_encode, self.infrared_fc, self.decode):
            nn.init.constant_(conv.weight, 0.333)
            nn.init.zeros_(conv.bias)

    def encode(self, images: torch.Tensor, modality: str) -> torch.Tensor:
        """One modality's single-channel map (before the shared decoder)."""
        encode, fc, bn = ((self.visible_encode, self.visible_fc, self.visible_bn) if modality == "visible"
                          else (self.infrared_encode, self.infrared_fc, self.infrared_bn))
        return bn(torch.relu(fc(torch.relu(encode(images)))))

    def forward(self, visible: torch.Tensor | None, infrared: torch.Tensor | None) -> list[torch.Tensor]:
        """The middle-modality images of each given batch, in the order (visible, infrared)."""
        codes = [self.encode(x, m) for x, m in ((visible, "visible"), (infrared, "infrared")) if x is not None]
        return list(torch.relu(self.decode(torch.cat(codes))).split([len(c) for c in codes]))


class MMN(nn.Module):
    """MMN following :mod:`vireid_lib.models.contract`.

    Training, ``forward(visible, infrared)`` with ``B`` images each, outputs over the ``4B`` rows
    ``[V, M_v, I, M_i]``: ``pooled_k`` [4B, 2048] (stripe k's average-pooled feature),
    ``logits_k`` [4B, C], for k = 0..3 from the top; ``pooled`` their concatenation; ``middle``
    the generated images ``[M_v; M_i]``. Evaluation, one modality: ``embedding`` (original images,
    L2-normalised post-BN stripes, 8192-d), ``embedding_middle`` (their middle-modality images),
    ``embedding_sum`` (the sum of both, compared by dot product), ``pooled``.
    """

    def __init__(self, backbone: TwoStreamResNet50, num_classes: int, backbone_lr_factor: float = 0.1) -> None:
        super().__init__()
        self.generator = MiddleModalityGenerator()
        self.backbone = backbone
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.necks = nn.ModuleList(
            BNNeck(backbone.out_channels, num_classes, bias_trainable=False, classifier_bias=False, bn_weight_std=0.01,
                   classifier_init="normal") for _ in range(STRIPES))
        self.backbone_lr_factor = backbone_lr_factor

    def stripes(self, maps: torch.Tensor) -> list[torch.Tensor]:
        """Four horizontal stripes of the layer4 map, each average-pooled: 4 x [N, C]."""
        if maps.shape[2] < STRIPES:
            raise ValueError(f"the layer4 map has {maps.shape[2]} rows, fewer than MMN's {STRIPES} stripes; use taller "
                             "inputs (at least 64 pixels).")
        return [self.pool(part).flatten(1) for part in torch.chunk(maps, STRIPES, dim=2)]

    def forward(self, visible: torch.Tensor | None = None, infrared: torch.Tensor | None = None) -> Outputs:
        middle = self.generator(visible, infrared)
        parts = [x for x in (visible, infrared) if x is not None]
        streams = [torch.cat([x, m]) for x, m in zip(parts, middle)]
        if visible is not None and infrared is not None:
            maps = self.backbone(*streams)  # [V; M_v] through the visible stem, [I; M_i] the thermal one
        else:
            maps = self.backbone(streams[0], None) if visible is not None else self.backbone(None, streams[0])
        pooled = self.stripes(maps)
        if self.training:
            outputs: Outputs = {"pooled": torch.cat(pooled, dim=1), "middle": torch.cat(middle)}
            for k, (feature, neck) in enumerate(zip(pooled, self.necks)):
                outputs[f"pooled_{k}"], outputs[f"logits_{k}"] = feature, neck(feature)[1]
            return outputs
        post = nn.functional.normalize(torch.cat([neck.bn(f) for f, neck in zip(pooled, self.necks)], dim=1), dim=1)
        original, generated = post.chunk(2)
        return {"embedding": original, "embedding_middle": generated, "embedding_sum": original + generated,
                "pooled": torch.cat(pooled, dim=1).chunk(2)[0]}

    @torch.no_grad()
    def middle_images(self, images: torch.Tensor, modality: str) -> torch.Tensor:
        """The middle-modality images the generator makes of ``images`` (evaluation mode)."""
        was_training = self.training
        self.eval()
        try:
            args = (images, None) if modality == "visible" else (None, images)
            return self.generator(*args)[0]
        finally:
            self.train(was_training)

    def param_groups(self, base_lr: float) -> list[dict]:
        """Official groups: the BNNecks and classifiers at ``base_lr``, everything else (stems, layers,
        generator) at ``backbone_lr_factor * base_lr``."""
        head_ids = {id(p) for p in self.necks.parameters()}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in head_ids]
        head = [p for p in self.necks.parameters() if p.requires_grad]
        return [{"name": "stems, layers and generator", "params": rest, "lr": self.backbone_lr_factor * base_lr},
                {"name": "BNNecks and classifiers", "params": head, "lr": base_lr}]


def build_mmn(num_classes: int, pretrained: bool = True, weights_file: str | Path | None = None, arch: str = "resnet50",
              stem_relu: bool = True, backbone_lr_factor: float = MMNRecipe.backbone_lr_factor) -> MMN:
    """MMN with the official defaults (two-stream ResNet-50, last stride 1, no non-local, no GeM)."""
    backbone = TwoStreamResNet50(pretrained=pretrained, weights_file=weights_file, last_stride=1, non_local=False,
                                 shared_stem=False, arch=arch, stem_relu=stem_relu)
    return MMN(backbone, num_classes, backbone_lr_factor=backbone_lr_factor)


class MMNCriterion(nn.Module):
    """MMN's objective (see the module doc). ``labels`` are those of ``[V, M_v, I, M_i]``."""

    def __init__(self, num_classes: int, margin: float = 0.3, dc_weight: float = 0.2, fix_dc_head: bool = False,
                 feature_dim: int = 2048) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.identity = nn.CrossEntropyLoss()
        self.triplet = BatchHardTriplet(margin=margin)
        self.consistency = ProjectedPairDistance(feature_dim)
        self.dc_weight = dc_weight
        self.fix_dc_head = fix_dc_head

    def param_groups(self, base_lr: float) -> list[dict]:
        """The DC projection head's parameters: none officially (the defect), ``fix_dc_head`` gives them base_lr."""
        return ([{"name": "DC projection head (fix_dc_head)", "params": list(self.consistency.parameters()),
                  "lr": base_lr}] if self.fix_dc_head else [])

    def forward(self, outputs: Outputs, labels: torch.Tensor) -> Outputs:
        b = len(labels) // 4
        visible_labels, infrared_labels = labels[:b], labels[2 * b:3 * b]
        pair_labels = torch.cat([visible_labels, infrared_labels])
        identity = sum(self.identity(outputs[f"logits_{k}"], labels) for k in range(STRIPES)) / STRIPES
        triplet, consistency, precision = 0.0, 0.0, 0.0
        for k in range(STRIPES):
            v, mv, i, mi = outputs[f"pooled_{k}"].chunk(4)
            for a, c in ((v, i), (v, mi), (mv, i), (mv, mi)):
                loss, correct = self.triplet.loss_and_precision(torch.cat([a, c]), pair_labels)
                triplet, precision = triplet + loss / 4, precision + correct / 4
            consistency = consistency + self.consistency(torch.cat([mv, mi]))
        triplet, consistency = triplet / STRIPES, consistency / STRIPES
        total = identity + triplet + self.dc_weight * consistency
        return {"loss": total, "id": identity.detach(), "triplet": triplet.detach(), "dc": consistency.detach(),
                "triplet_precision": precision / STRIPES}


def show_middle_modality(run, count: int = 4):
    """Visible and infrared training images beside the middle-modality images the generator makes of them."""
    from ..viz.samples import plot_image_pairs

    pictures, titles = run.training_batch(count)
    rows = []
    for name, images in pictures.items():
        middle = run.model.middle_images(images.to(run.train_config.device), name).cpu()
        rows += [(f"{name}", images), (f"{name} -> middle", middle)]
    return plot_image_pairs(rows, titles)


PAPER = Paper(
    method="mmn", title="MMN", datasets=("sysu", "regdb", "llcm"), recipe=MMNRecipe(),
    notebook="mmn.ipynb",
    # The smoke plan: on SYSU-MM01 long enough to learn (ResNet-18 from scratch needs Adam at one lr, 10 x 20 steps
    # of 4 ids x 2 images per modality), scored untrained too; on RegDB with the DC head trained, which the official
    # code never does.
    smoke={"sysu": {"optimizer": "adam", "lr": 1e-3, "backbone_lr_factor": 1.0, "epochs": 10, "batches_per_epoch": 20,
                    "num_per_modality": 2, "eval_trials": 3, "score_untrained": True},
           "regdb": {"fix_dc_head": True}},
    build=lambda classes, recipe, weights: build_mmn(classes, arch=recipe.arch, stem_relu=recipe.stem_relu,
                                                     backbone_lr_factor=recipe.backbone_lr_factor, **weights),
    criterion=lambda classes, recipe, dataset: MMNCriterion(classes, margin=recipe.margin, dc_weight=recipe.dc_weight,
                                                            fix_dc_head=recipe.fix_dc_head,
                                                            feature_dim=out_channels(recipe.arch)),
    # The model makes [V, M_v, I, M_i] of the sampled [V, I]: its outputs carry the labels v, v, i, i.
    batch=BatchLayout(labels=("visible", "visible", "infrared", "infrared")),
    variants={"original": Variant("embedding", description="original query x original gallery (the README's)"),
              "middle": Variant("embedding_middle", description="middle-modality query x middle-modality gallery"),
              "sum": Variant("embedding_sum", "dot", description="the sum of the four query x gallery similarities")},
    deviations=(
        Deviation("The DC loss's projection head is never given to the optimiser: it keeps its random weights.",
                  "fix_dc_head=True"),
        Deviation("test.py scores RegDB thermal -> visible by default (`--tvsearch` is always on); the README's RegDB "
                  "row is compared visible -> thermal, the direction train.py selects on. Both are scored.",
                  default="workbook"),
    ),
    fidelity=("The official network: two-stream ResNet-50 without non-local blocks or GeM, the middle-modality "
              "generator (convs initialised to 0.333) and four stripes with their own BNNecks. Training images are "
              "cached and test images resized with Lanczos (384 x 192), as the official preprocessing and `TestData`."),
    figures={"middle_modality": show_middle_modality},
)
