"""STAR: skeleton-guided spatial-temporal feature learning for video VI-ReID (arXiv 2411.11069).

The authors' MindSpore release (``mindspore-lab/models``, ``research/arxiv_papers/STAR-ReID``)
trains only the baseline: its skeleton modules are commented out. A PyTorch version of the model
with them is public (its ``FrameLevelAttention`` and ``GuidedGeMPooling``); this module follows
that model for the skeleton parts and the MindSpore ``train.py`` for the losses and schedule, so
the workbook is the first place STAR can be run with its skeleton modules.

**Baseline** (SAADG's, ``skeletons=False``, the ``star_baseline`` row): every frame of a
``[B, S, 3, H, W]`` clip through the two-stream ResNet-50 (last stride 1); in training, style
augmentation of the inputs (each infrared frame x U[0.5, 1.5]; each visible frame's channels x
U[0.5, 1.5] each, then permuted) and an AdaIN style disturbance branch (after layer2 each frame
takes the statistics of a random frame of its own modality, after layer3 of one of the other
modality) whose frame features the **defense loss** pulls to the clean ones (mean L2 distance);
average pooling per frame; frame-level BNNeck + classifier on the clean and on the disturbed
frames; temporal GeM (p = 3) to the sequence feature with its own BNNeck + classifier. The test
feature is the sequence feature after its BatchNorm.

**Skeleton modules** (``skeletons=True``), reading COCO-17 keypoints ``[B, S, 17, 3]``:

* **bone stream**: the 19 bones' lengths and angles (``atan2(dy, dx)`` of joint b - joint a for
  bone (a, b)), 38 values a frame, ``Linear(38, 64)`` and a BiLSTM (hidden D/2 each way) ->
  ``[B, S, D]``;
* **frame-level refinement**: bone features attend to the visual frame features and visual
  features to the bone features (two 4-head attentions); the two results, concatenated, go
  through ``Linear(2D, D) -> ReLU -> Linear(D, D) -> ReLU``, plus the visual feature and 1e-3
  (which keeps every value positive for the fractional GeM powers below); applied to the clean
  frames only, as in the code;
* **joint graph**: S x 17 nodes with features (x, y, score), edges = the 19 bones and joint j of
  frame t to joint j of frame t + 1, both directions, plus self loops. The code numbers the bones'
  joints 0-16, so they exist in the **first frame only** (412 directed edges at S = 12), which
  looks like a bug; by the workbook's rule the default follows the code (``official_graph=True``)
  and ``official_graph=False`` puts the bones in every frame (830 edges). Two graph-attention
  layers (3 -> 16 x 2 heads concatenated, ELU, dropout 0.3; 32 -> 12, ELU; attention dropout
  0.6), flattened and average-pooled to D. ``GATConv``'s attention vectors are glorot-initialised
  on ``[1, heads, width]`` (bound ``sqrt(6 / (heads + width))``: 0.577 and 0.679);
* **skeleton-guided pooling**: the skeleton feature ``[bone stream's last step; graph feature]``
  (2D, BatchNorm with a trainable bias) has its own identity classifier, and weights, per channel,
  a softmax over five temporal GeMs (p in 0.7, 1, 3, 5, 7) of the refined frames through one
  ``Linear(2D, D)`` per p; the weighted sum is the sequence feature.

The graph attention is written here as masked dense attention with the semantics of
``torch_geometric``'s ``GATConv`` (LeakyReLU 0.2 scores, softmax over each node's incoming edges
and its self loop, attention dropout, heads concatenated or averaged, a bias), rather than
depending on ``torch_geometric``: 204 nodes make the dense form cheap, and its weights come back
without hooks.

Losses (MindSpore ``train.py``, all weight 1): cross-entropy and batch-hard triplet (0.3) on the
sequence feature, cross-entropy on the clean and on the disturbed frame features, the defense
loss. The PyTorch model also returns skeleton identity logits, and has a skeleton consistency
term (KL between the joint graph's and the bone stream's softmax) commented out; their weights
are not known: ``skeleton_id_weight`` (default 1, the logits are returned, so presumably trained)
and ``consistency_weight`` (default 0, as the comment leaves it) are recipe fields.

Schedule (MindSpore ``train.py``): SGD lr 0.1, momentum 0.9, Nesterov, weight decay 5e-4, over
**one parameter group** (``nn.SGD(net.trainable_params(), ...)``); its ``adjust_learning_rate``
sets the first group to 0.1 x lr, so every parameter (backbone, skeleton modules, both BNNecks
and classifiers) trains at 0.01 at its peak: ``backbone_lr_factor`` (0.1) is that one group's
factor here. 10 warm-up epochs, x0.1 from 60 and x0.01 from 120, 201 epochs, 8 identities x 2
tracklets per modality, S = 12, 288 x 144. Related PyTorch scripts with the same
``adjust_learning_rate`` train the heads at 0.1 in a second group; the MindSpore release, the
code behind the README's numbers, has none.

Model selection (``train.py``): tested after 0-based epochs 0, 10, ..., 200 (both directions), four
checkpoints kept by ``>``: rank-1 and mAP of each direction. Its test loader draws **one random
frame from each chunk** (NumPy's unseeded generator), the training sampler's rule, where MITML's
and CST's take each chunk's first frame: ``test_frames="random"`` reproduces it, seeded by the
run's seed and the tracklet so that every evaluation of a run sees the same clips.

Keypoints are read as stored (pixels of the original frame), untouched by the frames' crop and
flip, as STAR reads them from its HDF5 file. The MindSpore ``train.py`` cannot run as released (its
optimiser calls are PyTorch's); the workbook follows what it says.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ..data.skeletons import COCO17_BONES
from ..losses.identity import CrossEntropyLabelSmooth
from ..losses.metric import BatchHardTriplet
from ..interface import BatchLayout, Deviation, Paper, Selection
from ..models.backbone import TwoStreamResNet50
from ..models.contract import Outputs
from ..models.layers import BNNeck
from ..models.video import frames_of, split_clips
from .mitml import VCM_KEEPS, VideoRecipe

JOINTS = 17
P_VALUES = (0.7, 1.0, 3.0, 5.0, 7.0)


@dataclass(frozen=True)
class STARRecipe(VideoRecipe):
    """STAR's MindSpore ``train.py`` values, and the weights its code leaves open."""

    milestones: tuple[int, ...] = (60, 120)
    epochs: int = 201
    seq_len: int = 12
    backbone_lr_factor: float = 0.1  # the one parameter group's factor (adjust_learning_rate: group 0 at 0.1 x lr)
    skeletons: bool = True
    test_frames: str = "random"  # the MindSpore test loader's random frame per chunk (seeded here)
    selection_rule: Selection = Selection(
        eval_every=10, eval_first=1, keeps=VCM_KEEPS, reported=(("ir2rgb", "t2v_map"), ("rgb2ir", "v2t_map")),
        source="MindSpore train.py: tests after 0-based epochs with `epoch % 10 == 0` (0..200, both directions) and "
               "keeps t2v_rank1_best, t2v_map_best, v2t_rank1_best and v2t_map_best, each by `>`")
    official_graph: bool = True  # the code's graph: bones in the first frame only; False: bones in every frame
    skeleton_id_weight: float = 1.0
    consistency_weight: float = 0.0
    defense_weight: float = 1.0


# -- the baseline's style augmentation and disturbance ---------------------------------------------


def style_augment(visible: torch.Tensor | None, infrared: torch.Tensor | None
                  ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Frames ``[N, 3, H, W]``: infrared x U[0.5, 1.5] per frame; visible channels x U[0.5, 1.5] each, then permuted."""
    if infrared is not None:
        infrared = infrared * (torch.rand(len(infrared), 1, 1, 1, device=infrared.device) + 0.5)
    if visible is not None:
        visible = visible * (torch.rand(len(visible), 3, 1, 1, device=visible.device) + 0.5)
        order = torch.rand(len(visible), 3, device=visible.device).argsort(dim=1)  # a random permutation per frame
        visible = visible.gather(1, order[:, :, None, None].expand_as(visible))
    return visible, infrared


def adain(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """Each map of ``content`` with the per-channel mean and (unbiased) std of ``style``'s; both ``[N, C, h, w]``."""
    def stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = x.flatten(2)
        return flat.mean(dim=2)[..., None, None], flat.std(dim=2)[..., None, None] + 1e-6

    c_mean, c_std = stats(content)
    s_mean, s_std = stats(style)
    return s_std * (content - c_mean) / c_std + s_mean


def disturb(x: torch.Tensor, num_visible: int, cross: bool) -> torch.Tensor:
    """AdaIN style disturbance of ``[visible frames; infrared frames]``: every frame takes the statistics of a
    random frame of its own modality (``cross=False``, after layer2) or of the other (``cross=True``, after layer3)."""
    visible, infrared = x[:num_visible], x[num_visible:]
    if not len(visible) or not len(infrared):
        raise ValueError("the style disturbance needs visible and infrared frames in the same batch.")
    v_style = visible[torch.randperm(len(visible), device=x.device)]
    i_style = infrared[torch.randperm(len(infrared), device=x.device)]
    if cross:
        if len(visible) != len(infrared):
            raise ValueError(f"the cross-modality disturbance pairs frames: {len(visible)} visible vs {len(infrared)}.")
        v_style, i_style = i_style, v_style
    return torch.cat([adain(visible, v_style), adain(infrared, i_style)])


def gem(frames: torch.Tensor, p: float, eps: float = 1e-12) -> torch.Tensor:
    """Temporal GeM over ``[B, S, D]`` non-negative features: ``(mean_t x^p + eps)^(1/p)``."""
    return (frames.pow(p).mean(dim=1) + eps).pow(1.0 / p)


# -- skeleton modules --------------------------------------------------------------------------------


def bone_features(keypoints: torch.Tensor) -> torch.Tensor:
    """``[B, S, 17, 3]`` keypoints -> ``[B, S, 38]``: per bone (a, b), the length and the angle ``atan2(dy, dx)``
    of joint b - joint a, interleaved bone by bone (length 0, angle 0, length 1, ...), as the code lays them out."""
    if keypoints.dim() != 4 or keypoints.shape[-2:] != (JOINTS, 3):
        raise ValueError(f"keypoints must be [B, S, 17, 3], got {tuple(keypoints.shape)}.")
    a = torch.tensor([bone[0] for bone in COCO17_BONES], device=keypoints.device)
    b = torch.tensor([bone[1] for bone in COCO17_BONES], device=keypoints.device)
    vectors = keypoints[..., b, :2] - keypoints[..., a, :2]
    lengths = vectors.norm(dim=-1)
    angles = torch.atan2(vectors[..., 1], vectors[..., 0])
    return torch.stack([lengths, angles], dim=-1).flatten(-2)


def skeleton_graph(seq_len: int, official: bool = False) -> torch.Tensor:
    """``[2, E]`` (source, target) node pairs over ``seq_len x 17`` nodes (node t * 17 + j), both directions, no
    self loops: the bones within every frame (``official=True``: the first frame only, as STAR's code builds
    them) and joint j of frame t to joint j of frame t + 1."""
    frames = range(1 if official else seq_len)
    pairs = [(a + JOINTS * t, b + JOINTS * t) for t in frames for a, b in COCO17_BONES]
    pairs += [(i, i + JOINTS) for i in range(JOINTS * (seq_len - 1))]
    pairs += [(b, a) for a, b in pairs]
    return torch.tensor(pairs, dtype=torch.long).t().contiguous()


class GraphAttention(nn.Module):
    """One graph-attention layer (GATConv semantics) as masked dense attention over ``[B, N, F]`` node features.

    ``forward(x, adjacency)``: ``adjacency[i, j]`` is True when node j sends to node i (self loops included);
    returns ``([B, N, heads * out]`` or ``[B, N, out]`` averaged, ``[B, heads, N, N]`` attention weights).
    """

    def __init__(self, in_features: int, out_features: int, heads: int = 1, concat: bool = True,
                 dropout: float = 0.0, negative_slope: float = 0.2) -> None:
        super().__init__()
        self.heads, self.out_features, self.concat, self.dropout = heads, out_features, concat, dropout
        self.negative_slope = negative_slope
        self.linear = nn.Linear(in_features, heads * out_features, bias=False)
        self.att_source = nn.Parameter(torch.empty(1, heads, 1, out_features))
        self.att_target = nn.Parameter(torch.empty(1, heads, 1, out_features))
        self.bias = nn.Parameter(torch.zeros(heads * out_features if concat else out_features))
        nn.init.xavier_uniform_(self.linear.weight)
        # GATConv's glorot on its [1, heads, width] vectors: the bound counts heads + width (not torch's fans of this
        # [1, heads, 1, width] layout, which would give sqrt(6 / (heads * width + width)))
        bound = (6.0 / (heads + out_features)) ** 0.5
        for vector in (self.att_source, self.att_target):
            nn.init.uniform_(vector, -bound, bound)

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, n, _ = x.shape
        h = self.linear(x).reshape(b, n, self.heads, self.out_features).transpose(1, 2)  # [B, H, N, F]
        source = (h * self.att_source).sum(-1)  # [B, H, N]
        target = (h * self.att_target).sum(-1)
        scores = F.leaky_relu(target[..., :, None] + source[..., None, :], self.negative_slope)  # [B, H, i, j]
        weights = scores.masked_fill(~adjacency, float("-inf")).softmax(dim=-1)
        out = F.dropout(weights, self.dropout, self.training) @ h  # [B, H, N, F]
        out = out.transpose(1, 2).reshape(b, n, -1) if self.concat else out.mean(dim=1)
        return out + self.bias, weights


class JointGraph(nn.Module):
    """The sequence-level joint graph: two graph-attention layers over S x 17 nodes, flattened and pooled to ``dim``."""

    def __init__(self, seq_len: int, dim: int, official: bool = False, hidden: int = 16, heads: int = 2,
                 out_features: int = 12, dropout: float = 0.6, feature_dropout: float = 0.3) -> None:
        super().__init__()
        self.seq_len, self.dim, self.feature_dropout = seq_len, dim, feature_dropout
        self.first = GraphAttention(3, hidden, heads, concat=True, dropout=dropout)
        self.second = GraphAttention(hidden * heads, out_features, 1, concat=False, dropout=dropout)
        edges = skeleton_graph(seq_len, official)
        nodes = seq_len * JOINTS
        adjacency = torch.eye(nodes, dtype=torch.bool)
        adjacency[edges[1], edges[0]] = True
        self.register_buffer("adjacency", adjacency, persistent=False)
        self.register_buffer("edges", edges, persistent=False)

    def forward(self, keypoints: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b, s = keypoints.shape[:2]
        if s != self.seq_len:
            raise ValueError(f"the joint graph was built for {self.seq_len} frames, got {s}: build with this seq_len.")
        x, first = self.first(keypoints.reshape(b, s * JOINTS, 3), self.adjacency)
        x = F.dropout(F.elu(x), self.feature_dropout, self.training)
        x, second = self.second(x, self.adjacency)
        pooled = F.adaptive_avg_pool1d(F.elu(x).reshape(b, 1, -1), self.dim).squeeze(1)
        return pooled, [first, second]


class FrameRefinement(nn.Module):
    """Bone features attend to the visual frame features and visual features to the bone features; both results
    through a feed-forward network, plus the visual features (and 1e-3) as a residual. ``[B, S, D]`` each."""

    def __init__(self, dim: int, heads: int = 4) -> None:
        super().__init__()
        self.bone_to_visual = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.visual_to_bone = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(2 * dim, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU())

    def forward(self, bones: torch.Tensor, visual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(refined ``[B, S, D]``, bone->visual weights ``[B, S, S]``, visual->bone weights ``[B, S, S]``)."""
        from_visual, w_bone = self.bone_to_visual(bones, visual, visual)
        from_bones, w_visual = self.visual_to_bone(visual, bones, bones)
        return self.ffn(torch.cat([from_visual, from_bones], dim=-1)) + visual + 1e-3, w_bone, w_visual


class GuidedGeMPooling(nn.Module):
    """Five temporal GeMs of ``[B, S, D]`` frames weighted per channel by a softmax (over the p values) of one
    ``Linear(guide, D)`` per p of the guide; returns (pooled ``[B, D]``, weights ``[B, len(p), D]``)."""

    def __init__(self, dim: int, guide_dim: int, p_values: tuple[float, ...] = P_VALUES) -> None:
        super().__init__()
        self.p_values = tuple(p_values)
        self.scores = nn.ModuleList(nn.Linear(guide_dim, dim) for _ in self.p_values)

    def forward(self, frames: torch.Tensor, guide: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = torch.stack([gem(frames, p) for p in self.p_values], dim=1)
        weights = torch.stack([score(guide) for score in self.scores], dim=1).softmax(dim=1)
        return (pooled * weights).sum(dim=1), weights


@dataclass
class STARAttention:
    """What the skeleton modules weighed in one forward pass (``B`` clips of ``S`` frames).

    ``bone_to_visual`` / ``visual_to_bone``: ``[B, S, S]`` frame-level cross-attention (query frame rows);
    ``graph``: per graph layer ``[B, heads, N, N]`` (row i: node i's weights over its senders j), N = S x 17;
    ``edges``: ``[2, E]`` (source, target) including the self loops; ``pooling``: ``[B, 5, D]`` weights of
    the guided pooling per p and channel; ``p_values``; ``keypoints`` the input ``[B, S, 17, 3]``.
    """

    bone_to_visual: torch.Tensor
    visual_to_bone: torch.Tensor
    graph: list[torch.Tensor]
    edges: torch.Tensor
    pooling: torch.Tensor
    p_values: tuple[float, ...]
    keypoints: torch.Tensor

    def edge_weights(self, layer: int = -1) -> torch.Tensor:
        """``[B, E]``: each edge's attention (heads averaged) in ``layer``."""
        weights = self.graph[layer].float().mean(dim=1)
        return weights[:, self.edges[1], self.edges[0]]

    def joint_importance(self, layer: int = -1) -> torch.Tensor:
        """``[B, S, 17]``: the attention every node receives from the nodes it sends to (heads averaged)."""
        received = self.graph[layer].float().mean(dim=1).sum(dim=1)  # column sums: over receivers i
        return received.reshape(received.shape[0], -1, JOINTS)

    def bone_importance(self, layer: int = -1) -> torch.Tensor:
        """``[B, S, 19]``: the mean attention of each bone's two directed edges per frame (NaN where the graph
        has no such bone, e.g. after the first frame with the official graph)."""
        weights = self.graph[layer].float().mean(dim=1)
        b, n = weights.shape[0], weights.shape[-1]
        frames = n // JOINTS
        out = torch.full((b, frames, len(COCO17_BONES)), float("nan"))
        present = torch.zeros(n, n, dtype=torch.bool)
        present[self.edges[1].cpu(), self.edges[0].cpu()] = True
        for t in range(frames):
            for k, (a, c) in enumerate(COCO17_BONES):
                i, j = a + JOINTS * t, c + JOINTS * t
                if present[i, j]:
                    out[:, t, k] = ((weights[:, i, j] + weights[:, j, i]) / 2).cpu()
        return out


class STAR(nn.Module):
    """STAR's network (see the module doc); ``skeletons=False`` is its baseline.

    ``forward(visible, infrared, visible_keypoints=None, infrared_keypoints=None)`` with clips
    ``[B, S, 3, H, W]`` and keypoints ``[B, S, 17, 3]``. Training outputs over ``[visible; infrared]``:
    ``pooled`` (sequence feature, pre-BN), ``bn``, ``logits``, ``frame_logits`` and ``disturbed_logits``
    ``[N*S, C]``, ``defense`` (scalar), and with skeletons ``skeleton_logits``, ``joint_feature``,
    ``bone_feature``. Evaluation: ``embedding`` (the sequence feature after its BatchNorm), ``pooled``.
    """

    def __init__(self, backbone: TwoStreamResNet50, num_classes: int, seq_len: int = 12, skeletons: bool = True,
                 official_graph: bool = True, backbone_lr_factor: float = 0.1) -> None:
        super().__init__()
        if backbone.non_local_blocks:
            raise ValueError("STAR's backbone has no non-local blocks.")
        dim = backbone.out_channels
        self.backbone, self.seq_len, self.skeletons = backbone, seq_len, skeletons
        self.backbone_lr_factor = backbone_lr_factor
        self.pool = nn.AdaptiveAvgPool2d(1)
        neck = dict(bias_trainable=False, classifier_bias=False, bn_weight_std=0.01, classifier_init="normal")
        self.frame_neck = BNNeck(dim, num_classes, **neck)
        self.neck = BNNeck(dim, num_classes, **neck)
        if skeletons:
            self.bone_embed = nn.Linear(2 * len(COCO17_BONES), 64)
            self.bone_lstm = nn.LSTM(64, dim // 2, batch_first=True, bidirectional=True)
            self.graph = JointGraph(seq_len, dim, official_graph)
            self.refine = FrameRefinement(dim)
            self.skeleton_bn = nn.BatchNorm1d(2 * dim)
            self.skeleton_classifier = nn.Linear(2 * dim, num_classes)
            self.guided_pool = GuidedGeMPooling(dim, 2 * dim)

    def _frames(self, visible, infrared):
        """(clean ``[N*S, D]``, disturbed ``[N*S, D]`` or None) frame features, clip-major, visible first."""
        v, i = frames_of(visible), frames_of(infrared)
        if self.training:
            v, i = style_augment(v, i)
        x2 = self.backbone(v, i, until="layer2")
        clean = self.pool(self.backbone.layer4(self.backbone.layer3(x2))).flatten(1)
        if not self.training:
            return clean, None
        num_visible = 0 if v is None else len(v)
        disturbed = disturb(self.backbone.layer3(disturb(x2, num_visible, cross=False)), num_visible, cross=True)
        return clean, self.pool(self.backbone.layer4(disturbed)).flatten(1)

    def _skeleton(self, keypoints: torch.Tensor):
        bones, _ = self.bone_lstm(self.bone_embed(bone_features(keypoints)))  # [N, S, D]
        joints, graph_weights = self.graph(keypoints)
        return bones, joints, graph_weights

    def encode(self, visible, infrared, visible_keypoints=None, infrared_keypoints=None):
        clips, length = split_clips(visible, infrared)
        if length != self.seq_len:
            raise ValueError(f"this STAR was built for clips of {self.seq_len} frames, got {length}.")
        clean, disturbed = self._frames(visible, infrared)
        frames = clean.reshape(clips, length, -1)
        out = {"clean": clean, "disturbed": disturbed}
        if not self.skeletons:
            out["pooled"] = gem(frames, 3.0)
            return out
        given = [k for k in (visible_keypoints, infrared_keypoints) if k is not None]
        if len(given) != sum(c is not None for c in (visible, infrared)):
            raise ValueError("STAR with skeletons needs the keypoints [B, S, 17, 3] of every clip it is given "
                             "(build it with skeletons=False for the baseline).")
        bones, joints, graph_weights = self._skeleton(torch.cat(given))
        refined, w_bone, w_visual = self.refine(bones, frames)
        guide = self.skeleton_bn(torch.cat([bones[:, -1], joints], dim=1))
        pooled, pool_weights = self.guided_pool(refined, guide)
        out.update(pooled=pooled, guide=guide, bones=bones, joints=joints,
                   attention=STARAttention(w_bone, w_visual, graph_weights, self._edges_with_loops(), pool_weights,
                                           self.guided_pool.p_values, torch.cat(given)))
        return out

    def _edges_with_loops(self) -> torch.Tensor:
        nodes = torch.arange(self.seq_len * JOINTS, device=self.graph.edges.device)
        return torch.cat([self.graph.edges, torch.stack([nodes, nodes])], dim=1)

    def forward(self, visible: torch.Tensor | None = None, infrared: torch.Tensor | None = None,
                visible_keypoints: torch.Tensor | None = None, infrared_keypoints: torch.Tensor | None = None) -> Outputs:
        out = self.encode(visible, infrared, visible_keypoints, infrared_keypoints)
        pooled = out["pooled"]
        if not self.training:
            return {"embedding": self.neck.bn(pooled), "pooled": pooled}
        bn, logits = self.neck(pooled)
        _, frame_logits = self.frame_neck(out["clean"])
        _, disturbed_logits = self.frame_neck(out["disturbed"])  # the same neck: its BN sees both, as in the code
        defense = (out["clean"] - out["disturbed"]).pow(2).sum(dim=1).sqrt().mean()
        outputs = {"pooled": pooled, "bn": bn, "logits": logits, "frame_logits": frame_logits,
                   "disturbed_logits": disturbed_logits, "defense": defense}
        if self.skeletons:
            outputs.update(skeleton_logits=self.skeleton_classifier(out["guide"]), joint_feature=out["joints"],
                           bone_feature=out["bones"][:, -1])
        return outputs

    @torch.no_grad()
    def attention(self, clips: torch.Tensor, keypoints: torch.Tensor, modality: str = "visible") -> STARAttention:
        """The skeleton modules' weights for ``clips`` [B, S, 3, H, W] with ``keypoints`` [B, S, 17, 3] (evaluation)."""
        if not self.skeletons:
            raise ValueError("the STAR baseline has no skeleton modules, hence no skeleton attention.")
        if modality not in ("visible", "infrared"):
            raise ValueError(f"modality must be 'visible' or 'infrared', got {modality!r}.")
        was_training = self.training
        self.eval()
        try:
            args = (clips, None, keypoints, None) if modality == "visible" else (None, clips, None, keypoints)
            return self.encode(*args)["attention"]
        finally:
            self.train(was_training)

    def param_groups(self, base_lr: float) -> list[dict]:
        """One group, every trainable parameter at ``backbone_lr_factor * base_lr`` (0.01 at the peak): the
        MindSpore optimiser's single group, which ``adjust_learning_rate`` sets to 0.1 x lr."""
        return [{"name": "every parameter (one group, as the MindSpore SGD)",
                 "params": [p for p in self.parameters() if p.requires_grad], "lr": base_lr * self.backbone_lr_factor}]


def build_star(num_classes: int, seq_len: int = 12, skeletons: bool = True, official_graph: bool = True,
               pretrained: bool = True, weights_file: str | Path | None = None, arch: str = "resnet50",
               backbone_lr_factor: float = 0.1) -> STAR:
    """STAR (``skeletons=False``: its baseline); ``arch`` other than "resnet50" is for quick experiments."""
    backbone = TwoStreamResNet50(pretrained=pretrained, weights_file=weights_file, last_stride=1, non_local=False,
                                 shared_stem=False, arch=arch)
    return STAR(backbone, num_classes, seq_len, skeletons, official_graph, backbone_lr_factor)


class STARCriterion(nn.Module):
    """CE + triplet on the sequence feature, CE on clean and disturbed frames, the defense loss; with skeletons
    the skeleton identity CE and the (off by default) joint / bone consistency KL, each with its weight."""

    def __init__(self, num_classes: int, margin: float = 0.3, defense_weight: float = 1.0,
                 skeleton_id_weight: float = 1.0, consistency_weight: float = 0.0) -> None:
        super().__init__()
        for name, value in (("defense_weight", defense_weight), ("skeleton_id_weight", skeleton_id_weight),
                            ("consistency_weight", consistency_weight)):
            if value < 0:
                raise ValueError(f"{name}={value} must be >= 0 (0 turns the term off).")
        self.identity = CrossEntropyLabelSmooth(num_classes, epsilon=0.0)
        self.triplet = BatchHardTriplet(margin=margin)
        self.defense_weight, self.skeleton_id_weight = defense_weight, skeleton_id_weight
        self.consistency_weight = consistency_weight

    def forward(self, outputs: Outputs, labels: torch.Tensor) -> Outputs:
        frames = labels.repeat_interleave(len(outputs["frame_logits"]) // len(labels))  # clip-major frames
        identity = self.identity(outputs["logits"], labels)
        triplet, precision = self.triplet.loss_and_precision(outputs["pooled"], labels)
        frame = self.identity(outputs["frame_logits"], frames)
        disturbed = self.identity(outputs["disturbed_logits"], frames)
        losses = {"id": identity, "triplet": triplet, "triplet_precision": precision, "frame_id": frame,
                  "disturbed_id": disturbed, "defense": outputs["defense"]}
        loss = identity + triplet + frame + disturbed + self.defense_weight * outputs["defense"]
        if "skeleton_logits" in outputs:
            skeleton = self.identity(outputs["skeleton_logits"], labels)
            # the commented-out term of the PyTorch model: KL(softmax(bone) || softmax(joint)), averaged over
            # every element (its kl_div reduction="mean")
            consistency = F.kl_div(F.log_softmax(outputs["joint_feature"], dim=1),
                                   F.softmax(outputs["bone_feature"], dim=1), reduction="none").mean()
            losses.update(skeleton_id=skeleton, consistency=consistency)
            loss = loss + self.skeleton_id_weight * skeleton + self.consistency_weight * consistency
        losses["loss"] = loss
        return losses


def _build(skeletons: bool):
    def build(classes: int, recipe: STARRecipe, weights: dict) -> STAR:
        if recipe.skeletons != skeletons:
            raise ValueError("skeletons is what tells STAR from its baseline: use method='star' (skeletons=True) or "
                             "method='star_baseline' (skeletons=False), so records never mislabel the two.")
        return build_star(classes, seq_len=recipe.seq_len, skeletons=recipe.skeletons,
                          official_graph=recipe.official_graph, arch=recipe.arch,
                          backbone_lr_factor=recipe.backbone_lr_factor, **weights)
    return build


def _criterion(classes: int, recipe: STARRecipe, dataset: str) -> STARCriterion:
    return STARCriterion(classes, margin=recipe.margin, defense_weight=recipe.defense_weight,
                         skeleton_id_weight=recipe.skeleton_id_weight, consistency_weight=recipe.consistency_weight)


FIDELITY = ("Skeleton modules from STAR's public PyTorch model (the MindSpore release trains the baseline only), "
            "losses, the one-group optimiser (every parameter at 0.01 at the peak), the schedule, the four kept "
            "checkpoints and the random test frames from its MindSpore train.py; the graph has the code's "
            "first-frame-only bones (official_graph=False puts them in every frame); the skeleton identity and "
            "consistency weights are not known (1 and 0 here); graph attention written as masked dense GATConv.")
DEVIATIONS = (
    Deviation("The code builds the joint graph's bones in the first frame only (412 edges at S = 12).",
              "official_graph=False"),
    Deviation("The test loader draws one random frame from each chunk with NumPy's unseeded generator; the workbook "
              "draws them too, seeded by the run's seed and the tracklet, so a run's evaluations repeat "
              "(MITML and CST take each chunk's first frame).", 'test_frames="first"', default="workbook"),
    Deviation("The README's mAP-only numbers are assumed to come from each direction's mAP checkpoint "
              "(t2v_map_best / v2t_map_best); the README does not say.", default="workbook"),
    Deviation("The skeleton identity and consistency weights are not in any released training script (1 and 0 here).",
              "skeleton_id_weight, consistency_weight", default="workbook"),
)

# BUPTCampus: no STAR code reads it; STAR's recipe, with BUPTCampus's own test.py frames (int(i n / S)) as CST's
_BUPT = {"bupt": replace(STARRecipe(), test_frames="uniform")}
_BUPT_DEVIATION = Deviation("STAR's code has no BUPTCampus: there it trains with its HITSZ-VCM recipe and tests on "
                            "BUPTCampus test.py's uniform frames (int(i n / S)), as the workbook's CST does; the "
                            "skeletons are a store extracted over BUPTCampus's frames.", 'test_frames="random"',
                            default="workbook", datasets=("bupt",))

PAPER = Paper(
    method="star", title="STAR", datasets=("vcm", "bupt"), recipe=STARRecipe(), dataset_recipes=_BUPT,
    build=_build(True), criterion=_criterion,
    notebook="star_vcm.ipynb", trains_also=("star_baseline",),
    smoke={"official_graph": False},  # the smoke plan runs the graph with bones in every frame, the non-default branch
    # clips first, then each modality's keypoints (the dataset yields (clip, keypoints) per tracklet)
    batch=BatchLayout(order=(("visible", 0), ("infrared", 0), ("visible", 1), ("infrared", 1)),
                      labels=("visible", "infrared")),
    compared=("star_baseline", "star"), fidelity=FIDELITY, deviations=(*DEVIATIONS, _BUPT_DEVIATION),
)
BASELINE = Paper(
    method="star_baseline", title="STAR baseline", datasets=("vcm", "bupt"), recipe=replace(STARRecipe(), skeletons=False),
    dataset_recipes={"bupt": replace(STARRecipe(), skeletons=False, test_frames="uniform")},
    build=_build(False), criterion=_criterion, compared=("star_baseline", "star"),
    fidelity=("STAR's baseline (SAADG's): style augmentation, AdaIN disturbance with the defense loss, temporal GeM "
              "p=3; STAR's optimiser, schedule, selection and random test frames."),
    deviations=(*DEVIATIONS[1:3], _BUPT_DEVIATION),
)
PAPERS = (BASELINE, PAPER)
