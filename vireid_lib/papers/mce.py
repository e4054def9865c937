"""MCE: "Cross-Modality Person Re-Identification with Memory-based Contrastive Embedding"
(Cheng et al., AAAI 2023), official code IDLNL/MCE (``model.py``, ``memory.py``,
``GlobalCenterLoss.py``, ``train.py``, ``data_loader.py``, ``resnet.py``).

Model (``model.py``, ``resnet.py``): ONE ResNet-50 shared by both modalities, stem included
(``Model.forward`` takes a ``modal`` argument that its ResNet ignores), last stride 1, AGW's
non-local blocks after layer2 blocks 2-3 and layer3 blocks 3-5 with the official 1-channel width
(``official_one_channel=False`` gives the intended width), GeM pooling with a *learnable* p
starting at 3, and a BatchNorm1d neck with a frozen zero bias. There is no classifier: the
post-BN feature is scored against identity memories. Test feature: the L2-normalised post-BN
feature (the evaluator normalises).

Memories (``memory.py``, ``train.py``): four ``[C x D]`` identity memories, global, visible,
infrared and channel-augmented (CA). At the start of every epoch all are rebuilt from the whole
training set (:func:`rebuild_memories`): eval-mode features, L2-normalised, averaged per class,
the mean L2-normalised again; the visible and infrared memories from the plain images, the CA
memory from the visible images with a random channel copied into all three (``ChannelExchange``,
one draw per image); the global memory is the mean of those three and, as in the official code,
is *not* renormalised until a class is first updated. A frozen copy of each is kept as the
historical centres. Memories are updated inside the backward pass (:class:`MemoryUpdate`, the
official ``CM_Hard`` / ``CM_Mean``): the global memory takes ``0.1 x old + 0.9 x`` the batch
sample of that class least similar to it, each modality memory ``0.25 x old + 0.75 x`` the batch
mean of that class; then renormalised.

Criterion (``Model.train_forward``), on the L2-normalised post-BN features of the batch ``[V, I, CA]``:

* centre triplet (``GlobalCenterTriplet``, margin 0.3): for sample i the positive distance is to
  its own class's global historical centre, the negative the nearest other class's centre among
  the batch's labels (features normalised, centres not);
* memory cross-entropy at temperature 0.05 against the global memory over all three views, plus
  (weight 1) the visible memory on V and the infrared memory on I, plus 0.4 x the CA memory on CA;
* cross-modal KL (weight 1.2, temperature 0.05; ``KLDivLoss(batchmean)``): the predictions of V
  on the visible historical centres, of I on the infrared ones and of CA on the CA ones are pulled
  toward, respectively, I's prediction on the visible centres, V's on the infrared centres and
  CA's on the infrared centres, all three targets detached. (V and I rows share identities by
  position: the sampler pairs them.)

Recipe (``train.py``): Adam, lr 3.5e-4, weight decay 5e-4 on every parameter; warm-up
``lr (e + 1) / 10`` for epochs 0-9. **Where PAPERS.md and the code differ, the code wins:**
``adjust_learning_rate`` tests ``epoch > 20`` but ``epoch >= 40`` (RegDB ``> 30`` / ``>= 60``), so
the lr drops x0.1 from epoch 21 and x0.01 from epoch **40** (RegDB 31 and 60), not 41 (61):
milestones ``(21, 40)`` and ``(31, 60)``. 160 epochs. Sampler 8 identities x 4 visible + 4
infrared (RegDB x 5), with replacement. Input: SYSU-MM01 384 x 128 (``pre_process_sysu.py``
caches 128 x 384 Lanczos-resized arrays), RegDB 288 x 144. Views (``data_loader.py``):

* SYSU-MM01: V = pad 10, crop, flip, ChannelRandomErasing; I = the same + ChannelAdapGray;
  CA = V's pipeline + ChannelExchange, drawn independently of V;
* RegDB: V and I = flip, Pad(10, fill=127), crop, ChannelRandomErasing (no adaptive gray); CA =
  pad 10 (zero fill), crop, flip, ChannelRandomErasing, ChannelExchange. (The workbook flips after
  the crop; with a uniform crop offset and an independent flip the two orders draw the same images.)

Model selection: the official script tests after 0-based epochs 12, 14, ... (``epoch > 10 and
epoch % 2 == 0``) on all-search single-shot averaged over 10 galleries (RegDB: visible to
thermal) and keeps the best mAP by ``>`` (the earlier of two equal epochs); the recipe's
``selection_rule`` (``eval_every=2, eval_first=13``, 1-based) does the same, the run reports that
checkpoint by default and the notebook shows it beside the last epoch (``selection="last"``
reports the last epoch only).

Not reproduced: the official ``--gx`` (KL on the updated memories instead of the historical
centres, off by default) and its optional classifier (``--nce``, off). Under DistributedDataParallel
each process updates its memories from its own share of the batch between rebuilds (the official
code runs on one GPU).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.datasets import ImageDataset
from ..data.records import INFRARED, VISIBLE
from ..data.transforms import ChannelExchange, build_test_transform
from ..engine.extract import extract_features
from ..interface import BatchLayout, Deviation, Hooks, Keep, Paper, Recipe, Selection, param, positive
from ..models.backbone import TwoStreamResNet50, out_channels
from ..models.base import GlobalFeatureReID
from ..models.contract import Outputs
from ..models.layers import BNNeck, GeM

VIEWS = ("visible", "infrared", "ca")  # the three per-view memories, in the batch's order [V, I, CA]
# The memory figure's sample: this many identities x images per identity and view (fixed, so that the
# snapshot buffers have one shape and travel in checkpoints).
SAMPLE_IDS, SAMPLE_PER_ID = 8, 4


@dataclass(frozen=True)
class MCERecipe(Recipe):
    """MCE's recipe (official ``train.py`` defaults, SYSU-MM01); :data:`REGDB` holds RegDB's."""

    optimizer: str = "adam"
    lr: float = 3.5e-4
    nesterov: bool = False
    weight_decay: float = 5e-4
    milestones: tuple[int, ...] = (21, 40)  # epoch > 20 -> x0.1, epoch >= 40 -> x0.01 (the code, not PAPERS.md)
    epochs: int = 160
    height: int = 384
    width: int = 128
    num_ids: int = 8
    num_per_modality: int = 4
    selection_rule: Selection = Selection(
        eval_every=2, eval_first=13, keeps=(Keep("map", "mAP"),), selection_trials=10,
        source="train.py: tests after 0-based epochs with `epoch > 10 and epoch % 2 == 0` and keeps the best mAP "
               "(`>`) as *_best.t; SYSU-MM01: the mean over the 10 all-search single-shot galleries (seeds 0-9), "
               "RegDB: the trial's visible -> thermal")
    official_one_channel: bool = True  # the non-local blocks' 1-channel width (AGW's open PR #28)
    gem_p: float = 3.0  # GeneralizedMeanPoolingP(norm=3), learnable
    margin: float = param(0.3, positive())  # GlobalCenterTriplet(0.3)
    centre_weight: float = 1.0  # --gc
    temperature: float = param(0.05, positive())  # ClusterMemory(temp=0.05)
    memory_weight: float = 1.0  # the global memory loss (train_forward adds it unweighted)
    modality_weight: float = 1.0  # --sid: the visible and infrared memory losses
    ca_weight: float = 0.4  # --caid: the CA memory loss, times modality_weight
    kl_weight: float = 1.2  # --kl
    kl_temperature: float = 0.05  # model.py: temp = 0.05
    global_momentum: float = 0.1  # ClusterMemory(momentum=0.1, use_hard=True) for the global memory
    modality_momentum: float = 0.25  # --mem_up
    hard_global: bool = True  # --nhard (store_false): the global memory takes the least similar sample
    rebuild_batch_size: int = 64  # --test-batch, the memory rebuild's loader


# RegDB (train.py): 288 x 144, 5 images per identity and modality, drops after epochs 30 / 60.
REGDB = MCERecipe(height=288, width=144, num_per_modality=5, milestones=(31, 60))


class MCE(GlobalFeatureReID):
    """MCE's network following :mod:`vireid_lib.models.contract`.

    ``forward(visible, infrared, augmented)``: every given batch goes through the one shared
    network, concatenated in that order (one BatchNorm batch, as the official ``[V, I, CA]``).
    Training: ``{"pooled": [N, D] GeM feature, "bn": [N, D] post-BN feature}``. Evaluation:
    ``{"embedding": post-BN feature, "pooled"}``.
    """

    def forward(self, visible: torch.Tensor | None = None, infrared: torch.Tensor | None = None,
                augmented: torch.Tensor | None = None) -> Outputs:
        images = [x for x in (visible, infrared, augmented) if x is not None]
        if not images:
            raise ValueError("MCE.forward needs at least one batch of images (all were None).")
        pooled = self.pooled_feature(torch.cat(images), None)  # the shared stem takes them as one batch
        if self.training:
            return {"pooled": pooled, "bn": self.neck(pooled)[0]}
        return self.test_outputs(pooled)


def build_mce(pretrained: bool = True, weights_file: str | Path | None = None, arch: str = "resnet50",
              official_one_channel: bool = True, gem_p: float = 3.0) -> MCE:
    """MCE with the official defaults. The neck keeps PyTorch's BatchNorm init (weight 1): the official
    model applies no custom init to it, only a zero, frozen bias."""
    backbone = TwoStreamResNet50(pretrained=pretrained, weights_file=weights_file, last_stride=1, non_local=True,
                                 official_one_channel=official_one_channel, shared_stem=True, arch=arch)
    neck = BNNeck(backbone.out_channels, None, bias_trainable=False)
    return MCE(backbone, GeM(p=gem_p, learnable=True), neck)


# ---------------------------------------------------------------------------------------------
# Identity memories
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def update_memory(memory: torch.Tensor, features: torch.Tensor, labels: torch.Tensor, momentum: float,
                  hard: bool) -> None:
    """The official backward-pass update of ``memory`` [C, D], in place, for every class in ``labels``.

    ``hard``: the class's row becomes ``momentum x row + (1 - momentum) x`` its batch sample least
    similar to the row (dot product; the first on ties, as ``np.argmin``); otherwise the same with
    the class's batch mean. Each updated row is then divided by its L2 norm.
    """
    features = features.to(memory.dtype)
    classes, inverse = torch.unique(labels, return_inverse=True)
    if hard:
        similarity = (features * memory[labels]).sum(1)
        picks = []
        for k in range(len(classes)):
            members = torch.nonzero(inverse == k).squeeze(1)
            picks.append(members[similarity[members].argmin()])
        target = features[torch.stack(picks)]
    else:
        counts = torch.bincount(inverse, minlength=len(classes)).to(features.dtype)
        target = torch.zeros(len(classes), features.shape[1], dtype=features.dtype, device=features.device)
        target = target.index_add_(0, inverse, features) / counts[:, None]
    rows = memory[classes] * momentum + (1 - momentum) * target
    memory[classes] = rows / rows.norm(dim=1, keepdim=True)


class MemoryUpdate(torch.autograd.Function):
    """``inputs @ memory.T`` forward; backward returns ``grad @ memory`` (the memory before this batch's
    update, as the official ``CM_Hard`` / ``CM_Mean``), then updates ``memory`` in place (:func:`update_memory`)."""

    @staticmethod
    def forward(ctx, inputs: torch.Tensor, labels: torch.Tensor, memory: torch.Tensor, momentum: float,
                hard: bool) -> torch.Tensor:
        ctx.save_for_backward(inputs, labels)
        ctx.memory, ctx.momentum, ctx.hard = memory, momentum, hard
        return inputs.mm(memory.t())

    @staticmethod
    def backward(ctx, grad_outputs: torch.Tensor):
        inputs, labels = ctx.saved_tensors
        grad_inputs = grad_outputs.mm(ctx.memory) if ctx.needs_input_grad[0] else None
        update_memory(ctx.memory, inputs, labels, ctx.momentum, ctx.hard)
        return grad_inputs, None, None, None, None


class IdentityMemory(nn.Module):
    """One ``[C x D]`` identity memory (``features``, updated in the backward pass) and its frozen copy
    (``centers``, the historical centres of the epoch). Both are buffers, so checkpoints carry them."""

    def __init__(self, num_classes: int, dim: int, momentum: float, hard: bool = False, temperature: float = 0.05) -> None:
        super().__init__()
        self.momentum, self.hard, self.temperature = momentum, hard, temperature
        self.register_buffer("features", torch.zeros(num_classes, dim))
        self.register_buffer("centers", torch.zeros(num_classes, dim))

    def reset(self, rows: torch.Tensor) -> None:
        """Start an epoch from ``rows``: both the live memory and the historical centres."""
        self.features.copy_(rows)
        self.centers.copy_(rows)

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the inputs' similarities to every class at the temperature (and, in backward,
        the memory update). The official ``ClusterMemory`` normalises its inputs once more; so does this."""
        logits = MemoryUpdate.apply(F.normalize(inputs.float(), dim=1), labels, self.features, self.momentum, self.hard)
        return F.cross_entropy(logits / self.temperature, labels)


def class_means(features: torch.Tensor, labels: torch.Tensor, num_classes: int, view: str = "") -> torch.Tensor:
    """L2-normalised mean of the L2-normalised ``features`` of every class 0..C-1 (the memory rebuild).

    A class without any sample in this view is an error (the official code would divide by zero)."""
    counts = torch.bincount(labels, minlength=num_classes)
    if (counts == 0).any():
        missing = torch.nonzero(counts == 0).squeeze(1).tolist()
        raise ValueError(f"the {view or 'training'} images hold no sample of identities {missing[:10]}"
                         f"{' ...' if len(missing) > 10 else ''}; every training identity needs images of both "
                         "modalities to build MCE's memories. Check the dataset's training split.")
    unit = F.normalize(features.float(), dim=1)
    sums = torch.zeros(num_classes, features.shape[1], dtype=torch.float32).index_add_(0, labels, unit)
    return F.normalize(sums / counts[:, None], dim=1)


class MCECriterion(nn.Module):
    """MCE's objective and its four memories (see the module doc). ``labels`` are those of ``[V, I, CA]``.

    Besides the memories it keeps two snapshots for the notebook's figure (index 0: as rebuilt for the
    first epoch, 1: for the latest epoch): the per-view memories, a fixed sample of per-image features
    with their labels and views, and the (1-based) epoch.
    """

    def __init__(self, num_classes: int, dim: int = 2048, margin: float = 0.3, centre_weight: float = 1.0,
                 temperature: float = 0.05, memory_weight: float = 1.0, modality_weight: float = 1.0,
                 ca_weight: float = 0.4, kl_weight: float = 1.2, kl_temperature: float = 0.05, global_momentum: float = 0.1,
                 modality_momentum: float = 0.25, hard_global: bool = True) -> None:
        super().__init__()
        self.num_classes, self.dim = num_classes, dim
        self.margin, self.centre_weight, self.memory_weight = margin, centre_weight, memory_weight
        self.modality_weight = modality_weight
        self.ca_weight, self.kl_weight, self.kl_temperature = ca_weight, kl_weight, kl_temperature
        self.memory = IdentityMemory(num_classes, dim, global_momentum, hard_global, temperature)
        self.memory_visible = IdentityMemory(num_classes, dim, modality_momentum, False, temperature)
        self.memory_infrared = IdentityMemory(num_classes, dim, modality_momentum, False, temperature)
        self.memory_ca = IdentityMemory(num_classes, dim, modality_momentum, False, temperature)
        self.register_buffer("built", torch.tensor(False))
        sample = len(VIEWS) * SAMPLE_IDS * SAMPLE_PER_ID
        self.register_buffer("snapshot_epoch", torch.zeros(2, dtype=torch.long))
        self.register_buffer("snapshot_memories", torch.zeros(2, len(VIEWS), num_classes, dim))
        self.register_buffer("snapshot_features", torch.zeros(2, sample, dim))
        self.register_buffer("snapshot_labels", torch.full((2, sample), -1, dtype=torch.long))

    def view_memories(self) -> tuple[IdentityMemory, IdentityMemory, IdentityMemory]:
        return self.memory_visible, self.memory_infrared, self.memory_ca

    @torch.no_grad()
    def rebuild(self, views: list[tuple[torch.Tensor, torch.Tensor]], epoch: int = 0) -> None:
        """Rebuild every memory from ``[(features, labels)]`` of the V, I and CA passes over the training set."""
        if len(views) != len(VIEWS):
            raise ValueError(f"MCE's memories are rebuilt from {len(VIEWS)} views {VIEWS}, got {len(views)}.")
        rows = [class_means(f, y, self.num_classes, name) for (f, y), name in zip(views, VIEWS)]
        for memory, row in zip(self.view_memories(), rows):
            memory.reset(row.to(memory.features.device))
        # train.py sums the three normalised memories and divides by 3, without renormalising.
        self.memory.reset((sum(rows) / len(rows)).to(self.memory.features.device))
        self.built.fill_(True)
        self._snapshot(1, views, rows, epoch)
        if epoch == 0 or int(self.snapshot_epoch[0]) == 0:
            self._snapshot(0, views, rows, epoch)

    def _snapshot(self, slot: int, views, rows, epoch: int) -> None:
        """Keep the rebuilt per-view memories and a fixed sample of features: view v, identity p (< SAMPLE_IDS)
        holds up to SAMPLE_PER_ID features at ``(v * SAMPLE_IDS + p) * SAMPLE_PER_ID``; unused places have label -1."""
        self.snapshot_epoch[slot] = epoch + 1
        self.snapshot_memories[slot] = torch.stack(rows).to(self.snapshot_memories.device)
        self.snapshot_features[slot].zero_()
        self.snapshot_labels[slot].fill_(-1)
        for v, (features, labels) in enumerate(views):
            for pid in range(min(SAMPLE_IDS, self.num_classes)):
                picks = torch.nonzero(labels == pid).squeeze(1)[:SAMPLE_PER_ID]
                start = (v * SAMPLE_IDS + pid) * SAMPLE_PER_ID
                where = slice(start, start + len(picks))
                sample = F.normalize(features[picks].float(), dim=1)
                self.snapshot_features[slot, where] = sample.to(self.snapshot_features.device)
                self.snapshot_labels[slot, where] = pid

    def snapshot(self, slot: int) -> dict | None:
        """A snapshot as NumPy arrays (``epoch``, ``memories`` [3, C, D], ``features``, ``labels``, ``views``
        of the sample), or ``None`` if none was taken (a run that was not trained here)."""
        epoch = int(self.snapshot_epoch[slot])
        if epoch == 0:
            return None
        labels = self.snapshot_labels[slot].cpu().numpy()
        views = np.repeat(np.arange(len(VIEWS)), SAMPLE_IDS * SAMPLE_PER_ID)
        keep = labels >= 0
        return {"epoch": epoch, "memories": self.snapshot_memories[slot].cpu().numpy(),
                "features": self.snapshot_features[slot].cpu().numpy()[keep], "labels": labels[keep],
                "views": views[keep]}

    def centre_triplet(self, features: torch.Tensor, labels: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
        """``GlobalCenterTriplet``: hinge on (own centre distance - nearest other-class centre distance + margin),
        the other centres being those of the batch's other labels; mean over the batch."""
        own = centres[labels].to(features.dtype)
        squared = features.pow(2).sum(1, keepdim=True) + own.pow(2).sum(1)[None, :] - 2 * features @ own.t()
        distances = squared.clamp(min=1e-12).sqrt()  # as the official: clamp the squared distance, then the root
        positive = distances.diagonal()
        other = labels[:, None] != labels[None, :]
        negative = distances.masked_fill(~other, float("inf")).min(dim=1).values
        return F.relu(positive - negative + self.margin).mean()

    def forward(self, outputs: Outputs, labels: torch.Tensor) -> Outputs:
        if not bool(self.built):
            raise RuntimeError("MCE's memories were never built: they are rebuilt from the whole training set at the "
                               "start of every epoch by the paper's on_epoch_start hook (rebuild_memories(run, epoch)); "
                               "train through run.train(), or call the hook before stepping by hand.")
        # In float32 whatever autocast says: the memories are float32 and are updated in the backward pass, whose
        # gradient would otherwise come back in the autocast dtype.
        with torch.autocast(outputs["bn"].device.type, enabled=False):
            return self._losses(outputs["bn"].float(), labels)

    def _losses(self, bn: torch.Tensor, labels: torch.Tensor) -> Outputs:
        n = len(labels) // len(VIEWS)
        feats = F.normalize(bn, dim=1)
        v, i, ca = feats[:n], feats[n:2 * n], feats[2 * n:]
        lv, li, lca = labels[:n], labels[n:2 * n], labels[2 * n:]
        centre = self.centre_triplet(feats, labels, self.memory.centers)
        memory = self.memory(feats, labels)
        visible, infrared, augmented = self.memory_visible(v, lv), self.memory_infrared(i, li), self.memory_ca(ca, lca)
        t = self.kl_temperature
        c_v, c_i, c_ca = self.memory_visible.centers, self.memory_infrared.centers, self.memory_ca.centers
        predictions = torch.cat([v @ c_v.t(), i @ c_i.t(), ca @ c_ca.t()]) / t
        with torch.no_grad():  # the targets: the other modality's view of the same centres
            targets = torch.cat([i @ c_v.t(), v @ c_i.t(), ca @ c_i.t()]) / t
        kl = F.kl_div(F.log_softmax(predictions, 1), F.softmax(targets, 1), reduction="batchmean")
        total = (self.centre_weight * centre + self.memory_weight * memory + self.modality_weight * (visible + infrared)
                 + self.modality_weight * self.ca_weight * augmented + self.kl_weight * kl)
        return {"loss": total, "centre": centre.detach(), "memory": memory.detach(), "visible": visible.detach(),
                "infrared": infrared.detach(), "ca": augmented.detach(), "kl": kl.detach()}


# ---------------------------------------------------------------------------------------------
# The per-epoch hook, the figures and the declaration
# ---------------------------------------------------------------------------------------------


def rebuild_memories(run, epoch: int) -> dict:
    """``on_epoch_start``: rebuild every memory from eval-mode features of the whole training set.

    Three passes through the run's cached training images, with the test transform (no flip, as
    the official ``Dataloader_MEM``): visible, infrared, and visible with ``ChannelExchange`` (one
    random channel per image, drawn from torch's generator, which the trainer seeds from (run seed,
    epoch), so a resumed run draws the same). Under no_grad, in evaluation mode, under the run's AMP
    and channels-last settings, through the extraction loader every feature pass uses, with a
    progress bar. Returns ``{"images": the number of images passed through the network}``.
    """
    pairs, config = run.loader.dataset, run.train_config
    plain = build_test_transform(run.test_transform)
    exchanged = build_test_transform(run.test_transform)
    exchanged.steps.append(ChannelExchange(inplace=True))
    passes = ((VISIBLE, ImageDataset(pairs.visible.records, plain, pairs.visible.images)),
              (INFRARED, ImageDataset(pairs.infrared.records, plain, pairs.infrared.images)),
              (VISIBLE, ImageDataset(pairs.visible.records, exchanged, pairs.visible.images)))
    views = []
    for name, (modality, dataset) in zip(VIEWS, passes):
        desc = f"epoch {epoch + 1} memories: {name}" if config.progress else None
        views.append(extract_features(run.model, dataset, modality, config.device, run.recipe.rebuild_batch_size,
                                      run.params["workers"], output="embedding", amp=config.amp,
                                      channels_last=config.channels_last, desc=desc))
    run.criterion.rebuild(views, epoch)
    return {"images": sum(len(labels) for _, labels in views)}


def show_memories(run, **options):
    """The visible, infrared and CA memory centres and a sample of features in 2-D (PCA), and the cosine
    similarity of every visible to every infrared memory row, at the first and at the latest epoch."""
    from ..viz.memory import plot_memory_evolution

    snapshots = [run.criterion.snapshot(slot) for slot in (0, 1)]
    return plot_memory_evolution([s for s in snapshots if s is not None], names=VIEWS, **options)


def _criterion(classes: int, recipe: MCERecipe, dataset: str) -> MCECriterion:
    return MCECriterion(classes, out_channels(recipe.arch), margin=recipe.margin, centre_weight=recipe.centre_weight,
                        temperature=recipe.temperature, memory_weight=recipe.memory_weight,
                        modality_weight=recipe.modality_weight,
                        ca_weight=recipe.ca_weight, kl_weight=recipe.kl_weight, kl_temperature=recipe.kl_temperature,
                        global_momentum=recipe.global_momentum, modality_momentum=recipe.modality_momentum,
                        hard_global=recipe.hard_global)


# The batch [V, I, CA]: two views of each sampled visible image, one of the infrared image.
_ORDER = (("visible", 0), ("infrared", 0), ("visible", 1))
_LABELS = ("visible", "infrared", "visible")

PAPER = Paper(
    method="mce", title="MCE", datasets=("sysu", "regdb", "llcm"), recipe=MCERecipe(),
    notebook="mce.ipynb",
    # The smoke plan tests after every epoch, so a checkpoint is selected; on SYSU-MM01 it trains long enough
    # to learn: from scratch MCE learns more slowly than AGW (its memories start from an untrained network's nearly
    # identical features), hence Adam at 1e-3, 6 x 45 steps and 8 identities a batch, the last epoch at 1e-4 (at a
    # constant rate the last epoch's rank-1 swung by half between runs on one or two CPU threads).
    smoke={"eval_every": 1, "eval_first": 1,
           "sysu": {"lr": 1e-3, "schedule": "warmup_step", "warmup_epochs": 0, "milestones": "(5, 6)", "gamma": 0.1,
                    "epochs": 6, "batches_per_epoch": 45, "num_ids": 8,
                    "num_per_modality": 2, "eval_trials": 3, "eval_first": 2, "selection_trials": 1,
                    "score_untrained": True},
           "regdb": {"synthetic_ids": 16}},
    dataset_recipes={"sysu": MCERecipe(), "regdb": REGDB},
    build=lambda classes, recipe, weights: build_mce(arch=recipe.arch, official_one_channel=recipe.official_one_channel,
                                                     gem_p=recipe.gem_p, **weights),
    criterion=_criterion,
    batch=BatchLayout(views={"visible": ("erasing", "caj"), "infrared": ("caj",)}, order=_ORDER, labels=_LABELS),
    dataset_batches={"regdb": BatchLayout(views={"visible": ("erasing_grey_pad", "caj"), "infrared": ("erasing_grey_pad",)},
                                          order=_ORDER, labels=_LABELS)},
    hooks=Hooks(on_epoch_start=rebuild_memories),
    fidelity=("The official network: one ResNet-50 shared by both modalities (the official `modal` argument is "
              "ignored by its ResNet), last stride 1, AGW's 1-channel non-local blocks (`official_one_channel=False` "
              "fixes them), learnable GeM (p from 3), a BatchNorm neck with a frozen zero bias and no classifier. "
              "Four identity memories rebuilt from the whole training set at every epoch and updated in the backward "
              "pass. The lr falls x0.1 from epoch 21 and x0.01 from epoch 40 (0-based, as train.py counts; RegDB 31 "
              "and 60): the code's `epoch > 20` / `epoch >= 40`, where PAPERS.md reads 21 and 41. Training images cached with Lanczos (SYSU-MM01 384 x 128, "
              "RegDB 288 x 144), test images resized with Lanczos."),
    figures={"memories": show_memories},
)
