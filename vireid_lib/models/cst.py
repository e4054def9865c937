"""CST: cross-modality spatial-temporal transformer (Feng et al., IEEE TMM 2024).

CST's code is not public (its README links a checkpoint only); this module is written from
the paper. On top of the video baseline's per-frame two-stream ResNet-50
(:class:`~vireid_lib.models.video.ClipFeatureReID`) it adds

* **CTTM**, the cross-frame tube transformer: the clip's layer4 maps, projected to ``dim``
  channels, are cut into 3-D tubes of ``tube = (frames, rows, cols)``; each tube's content
  becomes one token (a linear tube embedding, as in ViViT), a class token and learned
  positions are added, and a transformer encoder relates all tubes. Its class token is the
  clip's global spatial-temporal feature.
* **MTFM**, the multi-frame transformer fusion: every frame gets a message token, **made from
  that frame's content**: the mean of its spatial tokens, linearly projected, plus a learned
  time embedding. Each layer first lets the S message tokens attend to each other (across
  frames), then runs each frame's own attention over ``[message token; that frame's spatial
  tokens]``, so what the messages gathered from the other frames flows into every frame from
  the first layer on. The mean of the message tokens is the clip's temporal feature.
  Which reading of the paper this is: the paper says each frame has a message token that
  exchanges information across frames to model long-range temporal dependencies, without
  saying how the token starts; a token that starts as a learned constant (as this module
  first did) carries nothing of its frame into the first exchange (two unrelated clips gave
  the same first-layer exchange output, and with one layer frame 0 never saw frame 5), so the
  token is initialised from its frame, as message tokens built from frame summaries are in
  video transformers with per-frame messengers.
* the **DC loss** (:class:`~vireid_lib.losses.consistency.DiversityConsistencyLoss`) on the
  transformer features, with cross-entropy and triplet on each branch.

Each of the three features (CNN frame mean, CTTM, MTFM) has its own BNNeck and classifier;
the test feature is the concatenation of the three post-BN features, each L2-normalised first.

Which values are the paper's: the module structure (tubes, message tokens exchanged across
frames and fed back into frame attention, variance / invariance / covariance terms), S = 6,
288 x 144 inputs, the two-stream ResNet-50, cross-entropy + triplet, lr 3.5e-4 (the
README's ``--lr``). Which are this workbook's (the paper's code is not available to check
them): ``dim`` 512, ``tube`` (2, 3, 3), depth 2 for both modules, 8 heads, MLP ratio 4, the
branch layout and concatenated test feature, the DC weights, Adam and the schedule (MITML's,
which CST's README says it builds on). All are parameters of :func:`build_cst` and of the
notebook.

Attention maps come back without hooks: :meth:`CST.attention` returns a
:class:`CSTAttention` with every layer's weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..losses.consistency import DiversityConsistencyLoss
from ..losses.identity import CrossEntropyLabelSmooth
from ..losses.metric import BatchHardTriplet
from ..papers import Deviation, Paper, Selection
from .attention import TransformerBlock, attention_rollout
from .backbone import TwoStreamResNet50, feature_map_size
from .contract import Outputs
from .layers import BNNeck
from .video import VCM_KEEPS, ClipFeatureReID, VideoRecipe

BRANCHES = ("global", "tube", "message")


@dataclass(frozen=True)
class CSTRecipe(VideoRecipe):
    """CST's training recipe: lr from the README with Adam; schedule, sampler, input size and
    margin are MITML's (inherited), which CST says it builds on; then the module sizes."""

    optimizer: str = "adam"
    lr: float = 3.5e-4
    backbone_lr_factor: float = 1.0
    dim: int = 512
    tube: tuple[int, int, int] = (2, 3, 3)
    cttm_depth: int = 2
    mtfm_depth: int = 2
    heads: int = 8
    dc_weight: float = 1.0
    selection_rule: Selection = Selection(
        eval_every=10, eval_first=1, keeps=(VCM_KEEPS[0], VCM_KEEPS[2]),
        reported=(("ir2rgb", "t2v_rank1"), ("rgb2ir", "v2t_rank1")),
        source="no training script is released; test.py loads VCMCST_CTTM_MTFM_DC_2_t2v_rank1_best.t (the best "
               "IR -> VIS rank-1) and tests only the direction its file name gives, so each direction comes from its "
               "own rank-1 checkpoint; the test schedule is MITML's train.py's, which CST builds on (inferred)")


@dataclass
class CSTAttention:
    """Every attention map of one forward pass (``B`` clips of ``S`` frames, ``h`` x ``w`` maps).

    ``tube``: per CTTM layer ``[B, heads, 1 + T, 1 + T]`` over the class token and the
    ``T = prod(grid)`` tube tokens; ``grid`` = (time, rows, cols) tube counts.
    ``message``: per MTFM layer ``[B, heads, S, S]``: message token of frame i (row) attending
    to the message token of frame j (column).
    ``frame``: per MTFM layer ``[B, S, heads, 1 + h*w, 1 + h*w]``: within each frame, the
    message token (index 0) and the spatial tokens.
    """

    tube: list[torch.Tensor]
    message: list[torch.Tensor]
    frame: list[torch.Tensor]
    grid: tuple[int, int, int]
    tube_size: tuple[int, int, int]
    map_size: tuple[int, int]

    def tube_rollout(self) -> torch.Tensor:
        """``[B, S, h, w]``: the class token's rollout over tubes, spread back onto every frame's map."""
        rollout = attention_rollout(self.tube)[:, 0, 1:]  # class token's row, without itself
        b = rollout.shape[0]
        gt, gh, gw = self.grid
        t, ph, pw = self.tube_size
        cells = rollout.reshape(b, gt, 1, gh, 1, gw, 1).expand(b, gt, t, gh, ph, gw, pw)
        return cells.reshape(b, gt * t, gh * ph, gw * pw)

    def frame_reliance(self) -> torch.Tensor:
        """``[B, S]``: how much the message tokens, averaged over layers and heads, draw on each frame."""
        stacked = torch.stack([a.float().mean(dim=1) for a in self.message])  # [L, B, S, S]
        return stacked.mean(dim=0).mean(dim=1)

    def frame_maps(self) -> torch.Tensor:
        """``[B, S, h, w]``: each frame's message-token attention over its spatial tokens (last layer, heads averaged)."""
        last = self.frame[-1].float().mean(dim=2)[:, :, 0, 1:]
        b, s = last.shape[:2]
        return last.reshape(b, s, *self.map_size)


def tube_tokens(maps: torch.Tensor, tube: tuple[int, int, int]) -> torch.Tensor:
    """Cut ``[B, S, D, h, w]`` maps into tubes: ``[B, T, t*ph*pw*D]``, tube-major (time, rows, cols).

    Every (frame, row, col) cell lands in exactly one tube; ``S``, ``h`` and ``w`` must be
    multiples of the tube's ``(t, ph, pw)``.
    """
    b, s, d, h, w = maps.shape
    t, ph, pw = tube
    for name, size, step in (("frames (seq_len)", s, t), ("map rows", h, ph), ("map cols", w, pw)):
        if size % step:
            raise ValueError(f"the clip's {name} = {size} is not a multiple of the tube's {step}; choose a tube "
                             f"size dividing it (tube=(frames, rows, cols); maps are {h}x{w} for this input size).")
    x = maps.reshape(b, s // t, t, d, h // ph, ph, w // pw, pw)
    x = x.permute(0, 1, 4, 6, 2, 5, 7, 3)  # B, gt, gh, gw | t, ph, pw, D
    return x.reshape(b, (s // t) * (h // ph) * (w // pw), t * ph * pw * d)


class CTTM(nn.Module):
    """Cross-frame tube transformer: tube tokens + class token through ``depth`` encoder blocks."""

    def __init__(self, dim: int, tube: tuple[int, int, int], grid: tuple[int, int, int], depth: int, heads: int,
                 mlp_ratio: float = 4.0, dropout: float = 0.0) -> None:
        super().__init__()
        self.tube = tube
        self.grid = grid
        self.embed = nn.Linear(dim * tube[0] * tube[1] * tube[2], dim)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.position = nn.Parameter(torch.zeros(1, 1 + grid[0] * grid[1] * grid[2], dim))
        nn.init.trunc_normal_(self.cls, std=0.02)
        nn.init.trunc_normal_(self.position, std=0.02)
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, mlp_ratio, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, maps: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        tokens = self.embed(tube_tokens(maps, self.tube))
        if tokens.shape[1] + 1 != self.position.shape[1]:
            raise ValueError(f"CTTM was built for {self.position.shape[1] - 1} tubes but the clip gives "
                             f"{tokens.shape[1]}: build the model with this seq_len and input size.")
        x = torch.cat([self.cls.expand(len(tokens), -1, -1), tokens], dim=1) + self.position
        weights = []
        for block in self.blocks:
            x, a = block(x)
            weights.append(a)
        return self.norm(x[:, 0]), weights


class MTFMLayer(nn.Module):
    """Message tokens attend across frames, then each frame attends over [its message; its tokens]."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0) -> None:
        super().__init__()
        self.exchange = TransformerBlock(dim, heads, mlp_ratio, dropout)
        self.frame = TransformerBlock(dim, heads, mlp_ratio, dropout)

    def forward(self, messages: torch.Tensor, tokens: torch.Tensor, exchange_mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        b, s, n, d = tokens.shape
        messages, message_weights = self.exchange(messages, exchange_mask)  # [B, S, D]
        x = torch.cat([messages.reshape(b * s, 1, d), tokens.reshape(b * s, n, d)], dim=1)
        x, frame_weights = self.frame(x)
        x = x.reshape(b, s, 1 + n, d)
        return x[:, :, 0], x[:, :, 1:], message_weights, frame_weights.reshape(b, s, *frame_weights.shape[1:])


class MTFM(nn.Module):
    """Multi-frame transformer fusion over ``[B, S, D, h, w]`` maps; returns the mean message token."""

    def __init__(self, dim: int, seq_len: int, map_size: tuple[int, int], depth: int, heads: int,
                 mlp_ratio: float = 4.0, dropout: float = 0.0) -> None:
        super().__init__()
        self.seq_len = seq_len
        self.message = nn.Linear(dim, dim)  # a frame's pooled content -> its message token
        self.time = nn.Parameter(torch.zeros(1, seq_len, dim))
        self.space = nn.Parameter(torch.zeros(1, 1, map_size[0] * map_size[1], dim))
        for p in (self.time, self.space):
            nn.init.trunc_normal_(p, std=0.02)
        self.layers = nn.ModuleList(MTFMLayer(dim, heads, mlp_ratio, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def encode(self, maps: torch.Tensor, exchange: bool = True) -> tuple[torch.Tensor, torch.Tensor, list, list]:
        """``(messages [B, S, D], frame tokens [B, S, h*w, D], message weights, frame weights)`` after the last layer."""
        b, s, d, h, w = maps.shape
        if s != self.seq_len or h * w != self.space.shape[2]:
            raise ValueError(f"MTFM was built for {self.seq_len} frames of {self.space.shape[2]} cells but got {s} "
                             f"frames of {h}x{w}: build the model with this seq_len and input size.")
        content = maps.flatten(3).transpose(2, 3)  # [B, S, h*w, D]
        messages = self.message(content.mean(dim=2)) + self.time
        tokens = content + self.space
        # exchange=False keeps every message token to its own frame (an ablation, and the test
        # that information crosses frames only through the message tokens).
        mask = None if exchange else torch.eye(s, dtype=torch.bool, device=maps.device)
        message_weights, frame_weights = [], []
        for layer in self.layers:
            messages, tokens, a_message, a_frame = layer(messages, tokens, mask)
            message_weights.append(a_message)
            frame_weights.append(a_frame)
        return messages, tokens, message_weights, frame_weights

    def forward(self, maps: torch.Tensor, exchange: bool = True) -> tuple[torch.Tensor, list, list]:
        messages, _, message_weights, frame_weights = self.encode(maps, exchange)
        return self.norm(messages).mean(dim=1), message_weights, frame_weights


class CST(ClipFeatureReID):
    """The CST model; see the module documentation.

    Training outputs over ``[visible; infrared]`` clips (``N`` of them):
    ``pooled_<branch>`` [N, D_branch] pre-BN feature, ``bn_<branch>``, ``logits_<branch>`` [N, C]
    for branch in ``global``, ``tube``, ``message``; ``pooled`` = concatenation of the three
    pre-BN features; ``modality`` [N] (0 visible, 1 infrared). Evaluation: ``embedding`` =
    concatenated post-BN features (each L2-normalised), ``pooled``.
    """

    def __init__(self, backbone: TwoStreamResNet50, neck: BNNeck, seq_len: int, map_size: tuple[int, int],
                 num_classes: int, dim: int = 512, tube: tuple[int, int, int] = (2, 3, 3), cttm_depth: int = 2,
                 mtfm_depth: int = 2, heads: int = 8, mlp_ratio: float = 4.0, dropout: float = 0.0,
                 backbone_lr_factor: float = 1.0) -> None:
        super().__init__(backbone, neck, lstm=False, backbone_lr_factor=backbone_lr_factor)
        t, ph, pw = tube
        h, w = map_size
        if seq_len % t or h % ph or w % pw:
            raise ValueError(f"tube={tuple(tube)} must divide (seq_len, map rows, map cols) = ({seq_len}, {h}, {w}); "
                             f"the maps are {h}x{w} for this input size (1/16 of it).")
        self.seq_len = seq_len
        self.map_size = map_size
        self.tube = tuple(tube)
        self.grid = (seq_len // t, h // ph, w // pw)
        self.reduce = nn.Sequential(nn.Conv2d(backbone.out_channels, dim, 1, bias=False), nn.BatchNorm2d(dim),
                                    nn.ReLU(inplace=True))
        self.cttm = CTTM(dim, self.tube, self.grid, cttm_depth, heads, mlp_ratio, dropout)
        self.mtfm = MTFM(dim, seq_len, map_size, mtfm_depth, heads, mlp_ratio, dropout)
        self.tube_neck = BNNeck(dim, num_classes, bias_trainable=False, classifier_bias=False, classifier_init="normal")
        self.message_neck = BNNeck(dim, num_classes, bias_trainable=False, classifier_bias=False,
                                   classifier_init="normal")

    def _encode(self, visible: torch.Tensor | None, infrared: torch.Tensor | None, exchange: bool = True):
        maps = self.frame_maps(visible, infrared)  # [N, S, C, h, w]
        n, s = maps.shape[:2]
        if s != self.seq_len or tuple(maps.shape[-2:]) != self.map_size:
            raise ValueError(f"this CST was built for {self.seq_len} frames with {self.map_size[0]}x{self.map_size[1]} "
                             f"maps but got {s} frames with {maps.shape[-2]}x{maps.shape[-1]} maps; build it with the "
                             "seq_len, height and width of the clips it is given.")
        reduced = self.reduce(maps.flatten(0, 1))
        reduced = reduced.reshape(n, s, *reduced.shape[1:])
        tube, tube_weights = self.cttm(reduced)
        message, message_weights, frame_weights = self.mtfm(reduced, exchange)
        features = {"global": maps.mean(dim=(-2, -1)).mean(dim=1), "tube": tube, "message": message}
        attention = CSTAttention(tube_weights, message_weights, frame_weights, self.grid, self.tube, self.map_size)
        return features, attention

    def forward(self, visible: torch.Tensor | None = None, infrared: torch.Tensor | None = None,
                exchange: bool = True) -> Outputs:
        features, _ = self._encode(visible, infrared, exchange)
        necks = {"global": self.neck, "tube": self.tube_neck, "message": self.message_neck}
        pooled = torch.cat([features[b] for b in BRANCHES], dim=1)
        if not self.training:
            # Each branch's post-BN feature is L2-normalised before the concatenation, so every branch has an
            # equal say: unnormalised, the 2048-d CNN branch carried ~4x the norm of each 512-d transformer branch
            # and drowned them (measured on synthetic HITSZ-VCM: the concatenation scored below every branch alone).
            parts = [nn.functional.normalize(necks[b].bn(features[b]), dim=1) for b in BRANCHES]
            return {"embedding": torch.cat(parts, dim=1), "pooled": pooled}
        outputs: Outputs = {"pooled": pooled}
        for branch in BRANCHES:
            bn, logits = necks[branch](features[branch])
            outputs.update({f"pooled_{branch}": features[branch], f"bn_{branch}": bn, f"logits_{branch}": logits})
        outputs["logits"] = outputs["logits_global"]
        num_visible = visible.shape[0] if visible is not None else 0
        modality = torch.ones(len(pooled), dtype=torch.long, device=pooled.device)
        modality[:num_visible] = 0
        outputs["modality"] = modality
        return outputs

    @torch.no_grad()
    def attention(self, clips: torch.Tensor, modality: str = "visible", exchange: bool = True) -> CSTAttention:
        """All attention maps for ``clips`` [B, S, 3, H, W] of one ``modality`` (evaluation mode, no gradients)."""
        if modality not in ("visible", "infrared"):
            raise ValueError(f"modality must be 'visible' or 'infrared', got {modality!r}.")
        was_training = self.training
        self.eval()
        try:
            args = (clips, None) if modality == "visible" else (None, clips)
            return self._encode(*args, exchange=exchange)[1]
        finally:
            self.train(was_training)


def build_cst(num_classes: int, seq_len: int = 6, height: int = 288, width: int = 144, pretrained: bool = True,
              weights_file: str | Path | None = None, last_stride: int = 1, dim: int = 512,
              tube: tuple[int, int, int] = (2, 3, 3), cttm_depth: int = 2, mtfm_depth: int = 2, heads: int = 8,
              mlp_ratio: float = 4.0, dropout: float = 0.0, arch: str = "resnet50",
              backbone_lr_factor: float = 1.0) -> CST:
    """CST for clips of ``seq_len`` frames of ``height`` x ``width`` (see the module doc for the defaults' origin)."""
    backbone = TwoStreamResNet50(pretrained=pretrained, weights_file=weights_file, last_stride=last_stride,
                                 non_local=False, shared_stem=False, arch=arch)
    neck = BNNeck(backbone.out_channels, num_classes, bias_trainable=False, classifier_bias=False,
                  bn_weight_std=0.01, classifier_init="normal")
    return CST(backbone, neck, seq_len, feature_map_size(height, width, last_stride), num_classes, dim=dim,
               tube=tuple(tube), cttm_depth=cttm_depth, mtfm_depth=mtfm_depth, heads=heads, mlp_ratio=mlp_ratio,
               dropout=dropout, backbone_lr_factor=backbone_lr_factor)


class CSTCriterion(nn.Module):
    """Per branch: cross-entropy on ``logits_<branch>`` + batch-hard triplet on ``pooled_<branch>``;
    plus ``dc_weight`` x the DC loss on the concatenated transformer features (tube, message)."""

    def __init__(self, num_classes: int, margin: float = 0.3, dc_weight: float = 1.0, variance_weight: float = 1.0,
                 invariance_weight: float = 1.0, covariance_weight: float = 0.04, label_smoothing: float = 0.0,
                 branches: tuple[str, ...] = BRANCHES) -> None:
        super().__init__()
        if dc_weight < 0:
            raise ValueError(f"dc_weight={dc_weight} must be non-negative (0 turns the DC loss off).")
        self.branches = tuple(branches)
        self.dc_weight = dc_weight
        self.identity = CrossEntropyLabelSmooth(num_classes, epsilon=label_smoothing)
        self.triplet = BatchHardTriplet(margin=margin)
        self.dc = DiversityConsistencyLoss(variance_weight, invariance_weight, covariance_weight)

    def forward(self, outputs: Outputs, labels: torch.Tensor) -> Outputs:
        losses: Outputs = {}
        total = 0.0
        for branch in self.branches:
            identity = self.identity(outputs[f"logits_{branch}"], labels)
            triplet, precision = self.triplet.loss_and_precision(outputs[f"pooled_{branch}"], labels)
            losses.update({f"id_{branch}": identity, f"triplet_{branch}": triplet,
                           f"triplet_precision_{branch}": precision})
            total = total + identity + triplet
        transformer = torch.cat([outputs["pooled_tube"], outputs["pooled_message"]], dim=1)
        dc = self.dc(transformer, labels, outputs["modality"])
        losses.update(dc)
        losses["loss"] = total + self.dc_weight * dc["dc"]
        return losses


PAPER = Paper(
    method="cst", title="CST", datasets=("vcm",), recipe=CSTRecipe(),
    notebook="cst_vcm.ipynb", trains_also=("mitml",),
    # 64 x 32 inputs give 4 x 2 maps: a tube that divides them; MITML's confusion term switched on at once
    smoke={"tube": "(2, 2, 1)", "dim": 32, "heads": 4, "mitml_lr": 0.01, "mitml_confusion_epoch": 1},
    build=lambda classes, recipe, weights: build_cst(
        classes, seq_len=recipe.seq_len, height=recipe.height, width=recipe.width, dim=recipe.dim, tube=recipe.tube,
        cttm_depth=recipe.cttm_depth, mtfm_depth=recipe.mtfm_depth, heads=recipe.heads, arch=recipe.arch,
        backbone_lr_factor=recipe.backbone_lr_factor, **weights),
    criterion=lambda classes, recipe, dataset: CSTCriterion(classes, margin=recipe.margin, dc_weight=recipe.dc_weight),
    # CST's README table: CAJL, MITML and IBAN as CST reports them, then CST itself.
    compared=("cajl", "mitml", "iban", "cst"),
    fidelity=("Implemented from the paper (its code is not public): the module structure, S = 6, 288 x 144, the "
              "two-stream ResNet-50, CE + triplet and lr 3.5e-4 are the paper's; dim, tube, depths, heads, the "
              "branch layout, the DC weights, Adam and MITML's schedule are this workbook's."),
    deviations=(
        Deviation("The network is built from the paper, not from the authors' released model code (FYJ112233/CST): "
                  "its numbers are not CST's.", default="workbook"),
        Deviation("No training script is released: the test schedule (MITML's, every 10 epochs) is inferred; the "
                  "kept checkpoints (best rank-1 of each direction) follow test.py's file name.", default="workbook"),
    ),
)
