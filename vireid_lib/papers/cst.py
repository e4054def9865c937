"""CST: cross-modality spatial-temporal transformer (Feng et al., IEEE TMM 2024), as ``FYJ112233/CST`` builds it.

The network is the authors' ``model_main.embed_net`` with ``CST.CST_module``, built from what its
forward pass runs (``test.py``'s call: ResNet-50, 288 x 144, S = 14 frames, tubes of 3 x 1 cells
x 2 frames, width 2048). Per frame of a ``[B, S, 3, H, W]`` clip:

* AGW's two-stream ResNet-50 (visible and thermal stems, shared layer1-layer4, last stride 1)
  with its non-local blocks after layer2 blocks 2-3 and layer3 blocks 3-5, and GeM (p = 3,
  fixed) to one vector per frame;
* **CTTM** over the clip's layer4 maps ``[B, C, S, h, w]``: tubes of 3 rows x 1 column x 2 frames
  (``Rearrange('b c (f pf) (h p1) (w p2) -> b f (h w) (p1 p2 pf c)')``: 54 tubes per frame pair
  at 18 x 9, 7 pairs), each ``LayerNorm(6C) -> Linear(6C, C) -> LayerNorm(C)``; a learned position
  per (pair, tube); a spatial class token prepended per pair (after the positions, so it has
  none); dropout 0.1; a spatial transformer (depth 1, 128 heads of 48 channels, feed-forward
  ``C -> 2048 -> C`` with GELU, dropout 0.1, pre-norm, no final norm) over each pair's tokens;
* **MTFM**, the message-token block of ``CST_module.forward``: a message token per pair made by a
  Linear from the pair's class token; the messages attend to each other across the 7 pairs
  (``nn.MultiheadAttention(C, C)``: C heads one channel wide) with a pre-norm residual; each
  pair's message is appended after its 55 tokens, the 56 attend (``MultiheadAttention(C, 128)``,
  pre-norm residual), the message is dropped, and a QuickGELU MLP (``C -> 4C -> C``, pre-norm
  residual) follows; no dropout in this block;
* a temporal transformer (as the spatial one) over ``[temporal class token; the 7 pairs' class
  tokens]``, whose class token is the clip feature;
* ``SENet_learning`` (:class:`~vireid_lib.models.layers.TemporalFeatureLearning`, one Linear and
  one SE gate per frame: S = 14 is built in): every frame's GeM vector gated by the clip feature,
  averaged; a BNNeck (frozen zero bias, weight N(1, 0.01)) and a bias-free classifier
  (N(0, 0.001)). Training returns the pre-BN feature and the logits; the test feature is the
  post-BN feature (the code L2-normalises it; so does the evaluator).

Built only as used (the released ``embed_net`` holds about 710M values, its forward uses 305M):
the position table is built for the tubes there are (the code sizes it from the *image*, 7 x
13,824 x 2048 values, and reads the first 54 rows of each pair); ``CrossTransformer`` (built and
moved to CUDA, never called), ``mlp_head`` (its logits are discarded), the SE layers' ``l``
convolutions and the stems' and trunk's unused ResNet parts are left out. The authors'
checkpoint loads strictly: :data:`OFFICIAL_LAYOUTS` maps every used tensor and names every
other one with the reason.

Quirks of the released code, each the default here (one line each, the flag that fixes it):

* the non-local blocks' inner width is 1 channel, not C/2 (``official_one_channel=False``);
* the message attention has C heads of width 1 (``message_heads``: 0 is the code's one per
  channel);
* the DC loss's covariance term is divided by the script's batch size minus one (3) and by
  8192^3, so it is practically zero (``dc_covariance_fix=True``: by N - 1 and by the width, as
  VICReg);
* the second visible view is ``transform_color1`` applied to the first view's *normalised* output
  (its bytes wrap around), and the first visible view always replicates one channel
  (``fresh_second_view=True`` makes the second from the image, as CAJ does).

The released repository has no training script: the losses (label-smoothed cross-entropy +
batch-hard triplet 0.3 + the DC loss between the visible and infrared features, weights 25 / 25 /
1 inside it, ``test.py``'s arguments), the optimiser (Adam, 3.5e-4, the README's "0.00035 for
adam"), the batch (4 identities x 2 tracklets per modality: ``--batch-size 4 --num_pos 2``) and
the schedule and test (MITML's, which CST builds on) are inferred; every one is a recipe field
and the declaration's fidelity text names them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from ..losses.consistency import PairedDiversityConsistency
from ..losses.identity import CrossEntropyLabelSmooth
from ..losses.metric import BatchHardTriplet, HeteroCenterTriplet
from ..interface import BatchLayout, Deviation, Paper, Selection, integer, param
from ..models.attention import QuickGELU, TransformerBlock
from ..models.backbone import TwoStreamResNet50, feature_map_size
from ..models.contract import Outputs

from ..models.layers import BNNeck, GeM, TemporalFeatureLearning
from ..models.official import LayoutMapping, OfficialLayout, map_embed_net, rename_prefixes
from ..models.video import frames_of, split_clips
from .mitml import VCM_KEEPS, VideoRecipe

SEQ_LEN = 14  # test.py's seq_lenth: SENet_learning has one Linear and one SE gate per frame


@dataclass(frozen=True)
class CSTRecipe(VideoRecipe):
    """CST's settings: the network as ``test.py`` builds it; the training choices ``test.py``'s arguments hint at
    (the repository has no training script; MITML's schedule, which CST builds on)."""

    optimizer: str = "adam"
    lr: float = 3.5e-4  # the README: --lr 3.5e-4 ("0.00035 for adam")
    backbone_lr_factor: float = 1.0
    seq_len: int = SEQ_LEN
    num_ids: int = 4  # --batch-size 4
    num_per_modality: int = 2  # --num_pos 2
    tube: tuple[int, int, int] = (2, 3, 1)  # frames, map rows, map cols: frame_size 2, patch_size_h 3, patch_size_w 1
    depth: int = param(1, integer(1))
    heads: int = param(128, integer(1))
    dim_head: int = param(48, integer(1))
    mlp_dim: int = param(2048, integer(1))
    frame_heads: int = param(128, integer(1))  # MultiheadAttention(2048, 128) over a pair's 55 tokens and its message
    message_heads: int = 0  # 0: the code's MultiheadAttention(C, C), one head per channel
    dropout: float = 0.1
    official_one_channel: bool = True
    fresh_second_view: bool = False
    label_smoothing: float = 0.1  # --label_smooth on (CrossEntropyLabelSmooth's epsilon)
    dc_weight: float = 1.0
    dc_invariance: float = 25.0  # --inv-coeff
    dc_variance: float = 25.0  # --var-coeff
    dc_covariance: float = 1.0  # --cov-coeff
    dc_covariance_fix: bool = False
    center_weight: float = 0.0  # loss.py's CenterTripletLoss (--w_center 2 is an argument; 'id+tri' names no centre)
    selection_rule: Selection = Selection(
        eval_every=10, eval_first=1, keeps=(VCM_KEEPS[0], VCM_KEEPS[2]),
        reported=(("ir2rgb", "t2v_rank1"), ("rgb2ir", "v2t_rank1")),
        source="no training script is released; test.py loads VCMCST_CTTM_MTFM_DC_2_t2v_rank1_best.t (the best "
               "IR -> VIS rank-1) and tests only the direction its file name gives, so each direction comes from its "
               "own rank-1 checkpoint; the test schedule is MITML's train.py's, which CST builds on (inferred)")


def tube_tokens(maps: torch.Tensor, tube: tuple[int, int, int]) -> torch.Tensor:
    """``[B, S, C, h, w]`` frame maps -> ``[B, S/t, (h/ph)(w/pw), ph*pw*t*C]``: the code's ``Rearrange('b c (f pf)
    (h p1) (w p2) -> b f (h w) (p1 p2 pf c)')``, tubes row-major within a frame pair, channels fastest."""
    b, s, c, h, w = maps.shape
    t, ph, pw = tube
    for name, size, step in (("frames (seq_len)", s, t), ("map rows", h, ph), ("map cols", w, pw)):
        if size % step:
            raise ValueError(f"the clip's {name} = {size} is not a multiple of the tube's {step}; choose a tube "
                             f"dividing it (tube=(frames, rows, cols); the maps are {h}x{w} for this input size).")
    x = maps.reshape(b, s // t, t, c, h // ph, ph, w // pw, pw)
    x = x.permute(0, 1, 4, 6, 5, 7, 2, 3)  # b, f, h', w' | p1, p2, pf, c
    return x.reshape(b, s // t, (h // ph) * (w // pw), ph * pw * t * c)


@dataclass
class CSTAttention:
    """What CST's attention weighed in one forward pass of ``B`` clips (evaluation mode).

    ``spatial``: per spatial layer ``[B, pairs, heads, 1 + T, 1 + T]`` over each pair's class token and ``T`` tubes;
    ``message``: ``[B, heads, pairs, pairs]``, the message tokens across pairs (row: the reading pair);
    ``frame``: ``[B, pairs, heads, 2 + T, 2 + T]`` over a pair's tokens and its message (the last token);
    ``temporal``: per temporal layer ``[B, heads, 1 + pairs, 1 + pairs]``; ``gates``: ``[B, S, C]`` SE gates per
    frame; ``grid``: tubes per pair (rows, cols); ``tube``: (frames, rows, cols) of one tube.
    """

    spatial: list[torch.Tensor]
    message: torch.Tensor
    frame: torch.Tensor
    temporal: list[torch.Tensor]
    gates: torch.Tensor
    grid: tuple[int, int]
    tube: tuple[int, int, int]

    def tube_maps(self) -> torch.Tensor:
        """``[B, S, h, w]``: the pairs' class tokens' attention over their tubes (last spatial layer, heads averaged),
        each tube's weight spread over its frames and cells."""
        cls = self.spatial[-1].float().mean(dim=2)[:, :, 0, 1:]  # [B, pairs, T]
        b, pairs = cls.shape[:2]
        t, ph, pw = self.tube
        gh, gw = self.grid
        cells = cls.reshape(b, pairs, 1, gh, 1, gw, 1).expand(b, pairs, t, gh, ph, gw, pw)
        return cells.reshape(b, pairs * t, gh * ph, gw * pw)

    def message_matrix(self) -> torch.Tensor:
        """``[B, pairs, pairs]``: the message tokens' attention across frame pairs, heads averaged."""
        return self.message.float().mean(dim=1)

    def pair_reliance(self) -> torch.Tensor:
        """``[B, pairs]``: how much the messages draw on each frame pair (the message matrix's column means)."""
        return self.message_matrix().mean(dim=1)

    def gate_strength(self) -> torch.Tensor:
        """``[B, S]``: each frame's mean SE gate (0..1): how much of it the clip feature lets through, twice."""
        return self.gates.float().mean(dim=-1)


class CSTModule(nn.Module):
    """``CST_module``: tube embedding, the spatial transformer, the message-token block and the temporal transformer
    over ``[B, S, C, h, w]`` maps; returns the clip feature ``[B, C]`` (and, when asked, the attention)."""

    def __init__(self, channels: int, seq_len: int, map_size: tuple[int, int], tube: tuple[int, int, int],
                 depth: int = 1, heads: int = 128, dim_head: int = 48, mlp_dim: int = 2048, frame_heads: int = 128,
                 message_heads: int = 0, dropout: float = 0.1) -> None:
        super().__init__()
        t, ph, pw = tube
        h, w = map_size
        if seq_len % t or h % ph or w % pw:
            raise ValueError(f"tube={tuple(tube)} must divide (seq_len, map rows, map cols) = ({seq_len}, {h}, {w}); "
                             "the maps are 1/16 of the input size.")
        dim = channels
        self.tube, self.pairs, self.grid = tuple(tube), seq_len // t, (h // ph, w // pw)
        tubes = self.grid[0] * self.grid[1]
        patch = channels * t * ph * pw
        self.tube_norm = nn.LayerNorm(patch)
        self.tube_embed = nn.Linear(patch, dim)
        self.token_norm = nn.LayerNorm(dim)
        # The code draws positions and class tokens from N(0, 1) (torch.randn) and keeps the other layers' defaults.
        self.positions = nn.Parameter(torch.randn(1, self.pairs, tubes, dim))
        self.spatial_token = nn.Parameter(torch.randn(1, 1, dim))
        self.temporal_token = nn.Parameter(torch.randn(1, 1, dim))
        self.drop = nn.Dropout(dropout)
        self.spatial = nn.ModuleList(TransformerBlock(dim, heads, dim_head, mlp_dim, dropout) for _ in range(depth))
        self.message_fc = nn.Linear(dim, dim)
        self.message_norm = nn.LayerNorm(dim)
        self.message_attention = nn.MultiheadAttention(dim, message_heads or dim, batch_first=True)
        self.frame_norm = nn.LayerNorm(dim)
        self.frame_attention = nn.MultiheadAttention(dim, frame_heads, batch_first=True)
        self.mlp_norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), QuickGELU(), nn.Linear(4 * dim, dim))
        self.temporal = nn.ModuleList(TransformerBlock(dim, heads, dim_head, mlp_dim, dropout) for _ in range(depth))

    def forward(self, maps: torch.Tensor, weights: bool = False):
        b = maps.shape[0]
        tokens = self.token_norm(self.tube_embed(self.tube_norm(tube_tokens(maps, self.tube))))  # [B, f, T, C]
        if tokens.shape[1:3] != self.positions.shape[1:3]:
            raise ValueError(f"this CST was built for {self.pairs} frame pairs of {self.positions.shape[2]} tubes, the "
                             f"clip gives {tokens.shape[1]} of {tokens.shape[2]}: build it with this seq_len and size.")
        tokens = tokens + self.positions
        f, dim = self.pairs, tokens.shape[-1]
        x = torch.cat([self.spatial_token.expand(b, f, 1, dim), tokens], dim=2).reshape(b * f, -1, dim)
        x = self.drop(x)
        spatial = []
        for block in self.spatial:
            x, a = block(x)
            spatial.append(a)
        # Message tokens: one per pair from its class token, exchanged across the pairs of each clip.
        message = self.message_fc(x[:, 0]).reshape(b, f, dim)
        normed = self.message_norm(message)
        exchanged, message_weights = self.message_attention(normed, normed, normed, need_weights=weights,
                                                            average_attn_weights=False)
        message = message + exchanged
        x = torch.cat([x, message.reshape(b * f, 1, dim)], dim=1)  # each pair's message after its tokens
        normed = self.frame_norm(x)
        attended, frame_weights = self.frame_attention(normed, normed, normed, need_weights=weights,
                                                       average_attn_weights=False)
        x = (x + attended)[:, :-1]  # the message is dropped
        x = x + self.mlp(self.mlp_norm(x))
        clip = torch.cat([self.temporal_token.expand(b, 1, dim), x[:, 0].reshape(b, f, dim)], dim=1)
        temporal = []
        for block in self.temporal:
            clip, a = block(clip)
            temporal.append(a)
        if not weights:
            return clip[:, 0]
        n = spatial[0].shape[-1]
        return clip[:, 0], {"spatial": [a.reshape(b, f, -1, n, n) for a in spatial], "message": message_weights,
                            "frame": frame_weights.reshape(b, f, *frame_weights.shape[1:]), "temporal": temporal}


class CST(nn.Module):
    """CST's network (see the module doc).

    ``forward(visible, infrared, visible_second=None)`` with clips ``[B, S, 3, H, W]``: the visible stem takes
    ``[visible; visible_second]`` in one batch, as the code's ``x1`` (its two visible views), then the infrared.
    Training outputs over ``[visible; visible_second; infrared]`` clips: ``pooled`` (pre-BN), ``bn``, ``logits``,
    ``modality`` (0 visible, 1 infrared). Evaluation: ``embedding`` (post-BN), ``pooled``.
    """

    def __init__(self, backbone: TwoStreamResNet50, num_classes: int, seq_len: int, map_size: tuple[int, int],
                 tube: tuple[int, int, int], depth: int = 1, heads: int = 128, dim_head: int = 48, mlp_dim: int = 2048,
                 frame_heads: int = 128, message_heads: int = 0, dropout: float = 0.1,
                 backbone_lr_factor: float = 1.0) -> None:
        super().__init__()
        channels = backbone.out_channels
        self.seq_len, self.backbone_lr_factor = seq_len, backbone_lr_factor
        self.backbone = backbone
        self.pool = GeM(3.0)
        self.cst = CSTModule(channels, seq_len, map_size, tube, depth, heads, dim_head, mlp_dim, frame_heads,
                             message_heads, dropout)
        self.gates = TemporalFeatureLearning(channels, seq_len)
        self.neck = BNNeck(channels, num_classes, bias_trainable=False, classifier_bias=False, bn_weight_std=0.01,
                           classifier_init="normal")

    def _features(self, visible, infrared, visible_second=None, weights: bool = False):
        if visible_second is not None:  # one BatchNorm batch for both visible views, as the code's x1
            visible = visible_second if visible is None else torch.cat([visible, visible_second])
        clips, length = split_clips(visible, infrared)
        if length != self.seq_len:
            raise ValueError(f"this CST was built for clips of {self.seq_len} frames, got {length}.")
        maps = self.backbone(frames_of(visible), frames_of(infrared))  # [N*S, C, h, w], the visible frames first
        frames = self.pool(maps).reshape(clips, length, -1)
        summary = self.cst(maps.reshape(clips, length, *maps.shape[1:]), weights=weights)
        if not weights:
            return self.gates(summary, frames, frames), None
        summary, attention = summary
        return self.gates(summary, frames, frames), {**attention, "gates": self.gates.gate_values(summary, frames)}

    def forward(self, visible: torch.Tensor | None = None, infrared: torch.Tensor | None = None,
                visible_second: torch.Tensor | None = None) -> Outputs:
        pooled, _ = self._features(visible, infrared, visible_second)
        if not self.training:
            return {"embedding": self.neck.bn(pooled), "pooled": pooled}
        bn, logits = self.neck(pooled)
        modality = torch.zeros(len(pooled), dtype=torch.long, device=pooled.device)
        modality[len(pooled) - (0 if infrared is None else len(infrared)):] = 1
        return {"pooled": pooled, "bn": bn, "logits": logits, "modality": modality}

    @torch.no_grad()
    def attention(self, clips: torch.Tensor, modality: str = "visible") -> CSTAttention:
        """Every attention map and the SE gates for ``clips`` [B, S, 3, H, W] of one ``modality`` (evaluation mode)."""
        if modality not in ("visible", "infrared"):
            raise ValueError(f"modality must be 'visible' or 'infrared', got {modality!r}.")
        was_training = self.training
        self.eval()
        try:
            _, parts = self._features(*((clips, None) if modality == "visible" else (None, clips)), weights=True)
        finally:
            self.train(was_training)
        return CSTAttention(parts["spatial"], parts["message"], parts["frame"], parts["temporal"], parts["gates"],
                            self.cst.grid, self.cst.tube)

    def param_groups(self, base_lr: float) -> list[dict]:
        """The backbone at ``backbone_lr_factor * base_lr`` (1: one rate, as an Adam run of the code would use), the
        rest at ``base_lr``."""
        backbone = [p for p in self.backbone.parameters() if p.requires_grad]
        ids = {id(p) for p in backbone}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        return [{"name": "backbone (stems, layers, non-local blocks)", "params": backbone,
                 "lr": base_lr * self.backbone_lr_factor},
                {"name": "CST module, SE gates, BNNeck and classifier", "params": rest, "lr": base_lr}]


def build_cst(num_classes: int, seq_len: int = SEQ_LEN, height: int = 288, width: int = 144, pretrained: bool = True,
              weights_file: str | Path | None = None, tube: tuple[int, int, int] = (2, 3, 1), depth: int = 1,
              heads: int = 128, dim_head: int = 48, mlp_dim: int = 2048, frame_heads: int = 128,
              message_heads: int = 0, dropout: float = 0.1, official_one_channel: bool = True, arch: str = "resnet50",
              backbone_lr_factor: float = 1.0) -> CST:
    """CST for clips of ``seq_len`` frames of ``height`` x ``width`` (the defaults: ``test.py``'s network)."""
    backbone = TwoStreamResNet50(pretrained=pretrained, weights_file=weights_file, last_stride=1, non_local=True,
                                 official_one_channel=official_one_channel, shared_stem=False, arch=arch)
    return CST(backbone, num_classes, seq_len, feature_map_size(height, width), tuple(tube), depth, heads, dim_head,
               mlp_dim, frame_heads, message_heads, dropout, backbone_lr_factor)


def official_size(num_classes: int = 500) -> int:
    """Parameters of CST at the paper's size (ResNet-50, 288 x 144, S = 14), counted on the meta device: the
    305,451,407 the released forward uses (its frozen BNNeck bias included)."""
    with torch.device("meta"):
        model = build_cst(num_classes, pretrained=False)
    return sum(p.numel() for p in model.parameters())


class CSTCriterion(nn.Module):
    """Label-smoothed cross-entropy on the logits + batch-hard triplet on the pre-BN feature (every view), the DC loss
    between the visible (first view) and infrared features paired by position, and ``center_weight`` x the
    hetero-centre triplet (off by default). Which terms and weights: inferred from ``test.py``'s arguments."""

    def __init__(self, num_classes: int, margin: float = 0.3, label_smoothing: float = 0.1, dc_weight: float = 1.0,
                 dc_invariance: float = 25.0, dc_variance: float = 25.0, dc_covariance: float = 1.0,
                 dc_covariance_fix: bool = False, center_weight: float = 0.0) -> None:
        super().__init__()
        for name, value in (("dc_weight", dc_weight), ("center_weight", center_weight)):
            if value < 0:
                raise ValueError(f"{name}={value} must be >= 0 (0 turns the term off).")
        self.identity = CrossEntropyLabelSmooth(num_classes, epsilon=label_smoothing)
        self.triplet = BatchHardTriplet(margin=margin)
        self.dc = PairedDiversityConsistency(dc_invariance, dc_variance, dc_covariance, official=not dc_covariance_fix)
        self.center = HeteroCenterTriplet(margin=margin)
        self.dc_weight, self.center_weight = dc_weight, center_weight

    def forward(self, outputs: Outputs, labels: torch.Tensor) -> Outputs:
        identity = self.identity(outputs["logits"], labels)
        triplet, precision = self.triplet.loss_and_precision(outputs["pooled"], labels)
        modality = outputs["modality"]
        infrared = outputs["pooled"][modality == 1]
        visible = outputs["pooled"][modality == 0][: len(infrared)]  # the first visible view, paired by position
        dc = self.dc(visible, infrared)
        losses = {"id": identity, "triplet": triplet, "triplet_precision": precision, **dc}
        total = identity + triplet + self.dc_weight * dc["dc"]
        if self.center_weight:
            losses["center"] = self.center(outputs["pooled"], labels, modality)
            total = total + self.center_weight * losses["center"]
        losses["loss"] = total
        return losses


def _criterion(classes: int, recipe: CSTRecipe, dataset: str) -> CSTCriterion:
    return CSTCriterion(classes, margin=recipe.margin, label_smoothing=recipe.label_smoothing,
                        dc_weight=recipe.dc_weight, dc_invariance=recipe.dc_invariance, dc_variance=recipe.dc_variance,
                        dc_covariance=recipe.dc_covariance, dc_covariance_fix=recipe.dc_covariance_fix,
                        center_weight=recipe.center_weight)


def _build(classes: int, recipe: CSTRecipe, weights: dict) -> CST:
    return build_cst(classes, seq_len=recipe.seq_len, height=recipe.height, width=recipe.width, tube=recipe.tube,
                     depth=recipe.depth, heads=recipe.heads, dim_head=recipe.dim_head, mlp_dim=recipe.mlp_dim,
                     frame_heads=recipe.frame_heads, message_heads=recipe.message_heads, dropout=recipe.dropout,
                     official_one_channel=recipe.official_one_channel, arch=recipe.arch,
                     backbone_lr_factor=recipe.backbone_lr_factor, **weights)


# ---------------------------------------------------------------------------------------------
# The authors' checkpoint (test.py loads ``torch.load(...)['net']`` of ``model_main.embed_net`` strictly): every used
# tensor mapped onto :class:`CST`, every other named with the reason.
# ---------------------------------------------------------------------------------------------

_LETTERS = "abcdefghijklmnopqrstuvwxyz"  # SENet_learning's per-frame Linears are named a, b, c, ... (14 of them)
_CST_PREFIXES = (
    ("cst_module.to_patch_embedding.1.", "cst.tube_norm."),
    ("cst_module.to_patch_embedding.2.", "cst.tube_embed."),
    ("cst_module.to_patch_embedding.3.", "cst.token_norm."),
    ("cst_module.spatial_cls_token", "cst.spatial_token"),
    ("cst_module.temporal_cls_token", "cst.temporal_token"),
    ("cst_module.message_fc.", "cst.message_fc."),
    ("cst_module.message_ln.", "cst.message_norm."),
    ("cst_module.message_attn.", "cst.message_attention."),
    ("cst_module.attn.", "cst.frame_attention."),
    ("cst_module.ln_1.", "cst.frame_norm."),
    ("cst_module.mlp.c_fc.", "cst.mlp.0."),
    ("cst_module.mlp.c_proj.", "cst.mlp.2."),
    ("cst_module.ln_2.", "cst.mlp_norm."),
)
# Inside a released Transformer layer i: PreNorm(Attention) is ``i.0``, PreNorm(FeedForward) ``i.1``.
_TRANSFORMER_PARTS = (("0.norm.", "norm1."), ("0.fn.to_qkv.", "attn.to_qkv."), ("0.fn.to_out.0.", "attn.to_out.0."),
                      ("1.norm.", "norm2."), ("1.fn.net.0.", "mlp.0."), ("1.fn.net.3.", "mlp.3."))
_UNUSED = {
    "cst_module.Crosstransformer.": "CST_module builds a CrossTransformer (and moves it to CUDA) but never calls it",
    "cst_module.mlp_head.": "CST_module computes mlp_head's logits and embed_net discards them",
}


def _identify_official(keys) -> bool:
    return "cst_module.pos_embedding" in keys and "cst_module.to_patch_embedding.2.weight" in keys


def _convert_official(state, model: CST) -> LayoutMapping:
    mapping = LayoutMapping()
    map_embed_net(state, model, mapping)
    rename_prefixes({k: v for k, v in state.items() if k not in mapping.used}, _CST_PREFIXES, mapping)
    for which in ("spatial", "temporal"):
        for key in (k for k in state if k.startswith(f"cst_module.{which}_transformer.layers.")):
            layer, _, rest = key[len(f"cst_module.{which}_transformer.layers."):].partition(".")
            for official, workbook in _TRANSFORMER_PARTS:
                if rest.startswith(official):
                    mapping.take(key, f"cst.{which}.{layer}.{workbook}{rest[len(official):]}", state[key])
    for k, letter in enumerate(_LETTERS[:model.seq_len]):
        for key in (key for key in state if key.startswith(f"SENet_learning.{letter}.")):
            mapping.take(key, f"gates.linears.{k}.{key.split('.')[-1]}", state[key])
        for official, workbook in ((f"SENet_learning.se_{k + 1}.fc.0.", f"gates.gates.{k}.0."),
                                   (f"SENet_learning.se_{k + 1}.fc.2.", f"gates.gates.{k}.2.")):
            for key in (key for key in state if key.startswith(official)):
                mapping.take(key, workbook + key[len(official):], state[key])
    positions = state.get("cst_module.pos_embedding")
    if positions is not None:
        tubes = model.cst.positions.shape[2]
        mapping.take("cst_module.pos_embedding", "cst.positions", positions[:, :, :tubes])
        mapping.notes.append(f"cst_module.pos_embedding {tuple(positions.shape)}: the code sizes it from the image and "
                             f"reads the first {tubes} rows of each frame pair; those were taken, the rest is never read")
    for key in state:
        if key in mapping.used:
            continue
        reason = next((why for prefix, why in _UNUSED.items() if key.startswith(prefix)), None)
        if reason is None and key.startswith("SENet_learning.se_") and ".l." in key:
            reason = "each SELayer builds a 1x1 convolution l that its forward never runs"
        if reason is not None:
            mapping.unused[key] = reason
    return mapping


OFFICIAL_LAYOUTS = (OfficialLayout("CST, FYJ112233/CST (model_main.embed_net)", _identify_official,
                                   _convert_official),)


# [V, I, V_second] from the loader; the model's features come out [V, V_second, I] (the visible stem takes both
# visible views in one batch), hence the labels' order.
_ORDER = (("visible", 0), ("infrared", 0), ("visible", 1))
_LABELS = ("visible", "visible", "infrared")

PAPER = Paper(
    method="cst", title="CST", datasets=("vcm", "bupt"), recipe=CSTRecipe(), build=_build, criterion=_criterion,
    # BUPTCampus: its own test.py's frames (int(i n / S)), at CST's fourteen
    dataset_recipes={"bupt": replace(CSTRecipe(), test_frames="uniform")},
    notebook="cst_vcm.ipynb", trains_also=("mitml",),
    batch=BatchLayout(views={"visible": ("exchange_erasing", "caj_of_previous"), "infrared": ("caj",)},
                      order=_ORDER, labels=_LABELS),
    batch_variants={"fresh_second_view": BatchLayout(views={"visible": ("exchange_erasing", "caj"),
                                                            "infrared": ("caj",)}, order=_ORDER, labels=_LABELS)},
    # 64 x 32 inputs give 4 x 2 maps: a tube dividing them, 4 frames (2 pairs), narrow heads; MITML's confusion term
    # switched on at once
    smoke={"tube": "(2, 2, 1)", "seq_len": 4, "heads": 2, "dim_head": 16, "mlp_dim": 64, "frame_heads": 4,
           "mitml_lr": 0.01, "mitml_confusion_epoch": 1},
    # CST's README table: CAJL, MITML and IBAN as CST reports them, then CST itself.
    compared=("cajl", "mitml", "iban", "cst"),
    layouts=OFFICIAL_LAYOUTS,
    fidelity=("The authors' network (FYJ112233/CST model_main.py, CST.py), built from what its forward uses: AGW's "
              "two-stream ResNet-50 with its 1-channel non-local blocks and GeM p = 3 per frame, tubes of 3 x 1 cells x "
              "2 frames, a one-layer spatial transformer (128 heads of 48), the message-token block (one-channel "
              "message heads, 128-head frame attention, QuickGELU MLP), a one-layer temporal transformer, an SE gate "
              "per frame for S = 14, a BNNeck. Inferred, since no training script is released: the losses (CE with "
              "label smoothing 0.1 + triplet 0.3 + DC 25/25/1 between visible and infrared), Adam at 3.5e-4, 4 "
              "identities x 2 tracklets, MITML's schedule and test schedule."),
    deviations=(
        Deviation("The non-local blocks' inner width is 1 channel (AGW's defect).", "official_one_channel=False"),
        Deviation("The message attention has one head per channel (MultiheadAttention(2048, 2048)).", "message_heads=16"),
        Deviation("The DC loss's covariance term is divided by 3 (the script's batch size - 1) and by 8192^3: "
                  "practically zero.", "dc_covariance_fix=True"),
        Deviation("The second visible view is made from the first view's normalised output, whose bytes wrap around.",
                  "fresh_second_view=True"),
        Deviation("No training script is released: the losses, their weights, Adam at 3.5e-4, the batch and the "
                  "schedule are inferred from test.py's arguments and MITML's train.py.", default="workbook"),
    ),
)
