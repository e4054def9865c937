"""Skeletons beside the frames, and what STAR (arXiv 2411.11069) does with them.

STAR reads COCO-17 keypoints ``(x, y, score)`` for every frame of a clip and builds from them a
spatio-temporal graph (joints of a frame joined by limbs, a joint joined to itself in the next
frame), bone features, skeleton-guided GeM pooling over a few exponents ``p`` and a cross
attention between bone and visual frame features. The figures here show each of those:

* :func:`plot_skeleton_clip`: the frames of a clip with their skeletons, joints coloured by
  the detector's confidence;
* :func:`plot_graph_attention`: the graph's edges drawn as wide and as hot as their attention;
* :func:`plot_joint_importance`: which joints (and bones) the model attends to, frame by frame;
* :func:`plot_pooling_weights`: how the pooling spreads its weight over the exponents ``p``;
* :func:`plot_frame_attention`: bone-to-visual and visual-to-bone attention between frames.

Every input may be a torch tensor or a numpy array; a wrong shape raises a ``ValueError`` that
names the argument and the shape expected. Frames are labelled from 1, as in the other clip
figures; arguments that pick frames take Python indices (from 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib import patheffects
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize, TwoSlopeNorm, to_rgb
from matplotlib.cm import ScalarMappable
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..data.skeletons import COCO17_BONES, COCO17_NAMES
from .common import add_colorbar, count, denormalise, heat_scale

JOINTS = len(COCO17_NAMES)
CONFIDENCE_CMAP = "viridis"
WEIGHT_CMAP = "magma_r"  # light for weak edges, dark for strong ones, on the white graph background
IMPORTANCE_CMAP = "RdBu_r"  # centred on 1 (= average): above-average red, below-average blue
FRAME_ATTENTION_CMAP = "viridis"
MISSING = "#c8c8c8"
# Limbs are coloured by body side so a mirrored (left/right swapped) detection stands out.
SIDE_COLOURS = {"left": "#1f9bff", "right": "#ff7f0e", "centre": "#e6e6e6"}
OUTLINE = [patheffects.withStroke(linewidth=2.6, foreground="black")]
# Low scores are the dark end of the colour map: a white halo keeps a hollow joint visible on a dark body.
HALO = [patheffects.withStroke(linewidth=3.0, foreground="white")]


def _side(joint: int) -> str:
    """COCO-17 lists the nose first, then left/right pairs: odd indices are left, even right."""
    return "centre" if joint == 0 else ("left" if joint % 2 else "right")


def _bone_side(a: int, b: int) -> str:
    sides = {_side(a), _side(b)}
    return sides.pop() if len(sides) == 1 else "centre"


def short_joint_name(joint: int) -> str:
    """``left_knee`` -> ``l_knee``: short enough for a heat-map row label."""
    return COCO17_NAMES[joint].replace("left_", "l_").replace("right_", "r_")


BONE_NAMES = tuple(f"{short_joint_name(a)}-{short_joint_name(b)}" for a, b in COCO17_BONES)


def _as_array(value: torch.Tensor | np.ndarray | Sequence, name: str, shape: tuple[int | None, ...],
              expected: str) -> np.ndarray:
    """``value`` as a float64 array of ``shape`` (``None`` = any size), else a ValueError naming ``name``."""
    if isinstance(value, torch.Tensor):
        array = value.detach().cpu().double().numpy()
    else:
        array = np.asarray(value, dtype=np.float64)
    if array.ndim != len(shape) or any(want is not None and got != want for got, want in zip(array.shape, shape)):
        raise ValueError(f"{name} must be {expected}, got shape {tuple(array.shape)}.")
    if array.size == 0:
        raise ValueError(f"{name} must be {expected} with at least one element, got shape {tuple(array.shape)}.")
    return array


def _keypoints(keypoints: torch.Tensor | np.ndarray) -> np.ndarray:
    return _as_array(keypoints, "keypoints", (None, JOINTS, 3), f"[S, {JOINTS}, 3] (x, y, score per COCO-17 joint)")


def _frame_labels(indices: Sequence[int]) -> list[str]:
    return [str(int(i) + 1) for i in indices]


def plot_skeleton_clip(clip: torch.Tensor | np.ndarray, keypoints: torch.Tensor | np.ndarray, title: str = "",
                       min_score: float = 0.0, max_frames: int = 12) -> Figure:
    """The frames of ``clip`` [S, 3, H, W] (ImageNet-normalised) in a row, each with its skeleton.

    ``keypoints`` [S, 17, 3] holds (x, y) in pixels of the displayed frame and the detector's
    score. Joints are coloured by score on one 0..1 colour bar (scores outside are clipped);
    joints below ``min_score`` are still drawn, hollow, because STAR keeps low-score joints
    rather than dropping them. Limbs
    (the 19 COCO-17 bones) are coloured by body side and fade with the lower score of their two
    ends. At most ``max_frames`` frames are shown, spread evenly over the clip.
    """
    if isinstance(clip, np.ndarray):
        clip = torch.from_numpy(clip)
    if clip.dim() != 4 or clip.shape[1] != 3:
        raise ValueError(f"clip must be [S, 3, H, W] (ImageNet-normalised frames), got shape {tuple(clip.shape)}.")
    points = _keypoints(keypoints)
    if len(points) != len(clip):
        raise ValueError(f"keypoints must be [S, {JOINTS}, 3] with S = {len(clip)} frames as in clip, "
                         f"got shape {tuple(points.shape)}.")
    if max_frames < 1:
        raise ValueError(f"max_frames must be at least 1, got {max_frames}.")
    picks = np.unique(np.linspace(0, len(clip) - 1, min(max_frames, len(clip))).round().astype(int))
    pictures = denormalise(clip[torch.as_tensor(picks)])
    height, width = pictures.shape[1:3]
    cmap, norm = colormaps[CONFIDENCE_CMAP], Normalize(0.0, 1.0)
    limb_colours = np.array([[*to_rgb(SIDE_COLOURS[_bone_side(a, b)]), 1.0] for a, b in COCO17_BONES])
    bones = np.array(COCO17_BONES)

    fig = Figure(figsize=(1.3 * len(picks) + 1.2, 3.2), layout="constrained")
    axes = fig.subplots(1, len(picks), squeeze=False)[0]
    for ax, index, picture in zip(axes, picks, pictures):
        xy, score = points[index, :, :2], np.clip(points[index, :, 2], 0.0, 1.0)
        ax.imshow(picture)
        colours = limb_colours.copy()
        # A limb is only as trustworthy as its weaker end; never fully invisible, so it can be checked.
        colours[:, 3] = 0.15 + 0.85 * np.minimum(score[bones[:, 0]], score[bones[:, 1]])
        ax.add_collection(LineCollection(xy[bones], colors=colours, linewidths=1.6, capstyle="round",
                                         path_effects=OUTLINE, zorder=2))
        kept = points[index, :, 2] >= min_score
        ax.scatter(xy[kept, 0], xy[kept, 1], c=score[kept], cmap=cmap, norm=norm, s=16,
                   edgecolors="white", linewidths=0.5, zorder=3)
        ax.scatter(xy[~kept, 0], xy[~kept, 1], facecolors="none", edgecolors=cmap(norm(score[~kept])), s=24,
                   linewidths=1.5, path_effects=HALO, zorder=3)
        # Off-frame joints must not stretch the frame: the axes show the picture, nothing else.
        ax.set_xlim(-0.5, width - 0.5)
        ax.set_ylim(height - 0.5, -0.5)
        ax.axis("off")
        ax.set_title(f"frame {index + 1}", fontsize=7)
    add_colorbar(fig, ScalarMappable(norm=norm, cmap=cmap), list(axes), "joint score (confidence)")
    handles = [Line2D([], [], color=SIDE_COLOURS[s], linewidth=2, path_effects=OUTLINE, label=f"{s} limb")
               for s in ("left", "right", "centre")]
    if min_score > 0:
        handles.append(Line2D([], [], linestyle="none", marker="o", markerfacecolor="none",
                              markeredgecolor="grey", label=f"score < {min_score:g} (hollow)"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def _node_layout(points: np.ndarray, shown: np.ndarray) -> tuple[np.ndarray, float]:
    """Node positions [S, 17, 2]: each shown frame's skeleton moved right by a fixed step.

    The raw pixel coordinates are kept (only shifted), so a person walking across the frame still
    shows the walk; the step is the widest horizontal span of the shown skeletons and half as much again.
    """
    xy = points[:, :, :2].copy()
    x_min = xy[shown, :, 0].min()
    span = float(xy[shown, :, 0].max() - x_min)
    step = 1.5 * span if span > 0 else 1.0  # room for the temporal edges between skeletons
    layout = np.full_like(xy, np.nan)
    for slot, t in enumerate(shown):
        layout[t, :, 0] = xy[t, :, 0] - x_min + slot * step
        layout[t, :, 1] = xy[t, :, 1]
    return layout, step


def plot_graph_attention(keypoints: torch.Tensor | np.ndarray, edges: torch.Tensor | np.ndarray,
                         weights: torch.Tensor | np.ndarray, title: str = "",
                         frames: Sequence[int] | None = None) -> Figure:
    """The attention on STAR's spatio-temporal skeleton graph, one skeleton per frame side by side.

    Nodes are indexed ``t * 17 + j`` (frame ``t``, joint ``j``). ``edges`` [2, E] holds (source,
    target) node pairs and ``weights`` [E] each edge's attention (e.g. averaged over heads).
    Spatial edges (same frame) are solid, temporal edges (same joint, other frame) dashed and any
    other cross-frame edge dotted; width and colour grow with the weight, on one colour bar.
    Edges between the same two nodes (both directions, or repeated) are drawn once with the mean
    of their weights, so an edge present in one direction only keeps its own weight. Self loops
    are drawn as the node: its size and colour are the self-attention weight (grey: no self loop).
    ``frames`` picks the frames shown (Python indices, default all); an edge is drawn when both
    its ends are shown.
    """
    points = _keypoints(keypoints)
    s = len(points)
    edge_array = _as_array(edges, "edges", (2, None), "[2, E] (source and target node indices t * 17 + j)")
    weight = _as_array(weights, "weights", (edge_array.shape[1],),
                       f"[E] with E = {edge_array.shape[1]} (one weight per column of edges)")
    if not np.all(edge_array == np.round(edge_array)) or edge_array.min() < 0 or edge_array.max() >= s * JOINTS:
        raise ValueError(f"edges must hold integer node indices in 0..{s * JOINTS - 1} (t * 17 + j for S = {s} "
                         f"frames), got values from {edge_array.min():g} to {edge_array.max():g}.")
    edge_array = edge_array.astype(np.int64)
    shown = np.arange(s) if frames is None else np.asarray(list(frames), dtype=np.int64)
    if shown.size == 0 or shown.min() < -s or shown.max() >= s:
        raise ValueError(f"frames must be indices of the S = {s} frames (0..{s - 1}), got {list(shown)}.")
    shown = np.unique(shown % s)
    layout, step = _node_layout(points, shown)
    visible = np.zeros(s, dtype=bool)
    visible[shown] = True

    # Mean weight per unordered node pair: the attention exchanged along a connection, on the scale of one edge.
    low, high = np.minimum(edge_array[0], edge_array[1]), np.maximum(edge_array[0], edge_array[1])
    pairs, inverse = np.unique(np.stack([low, high], axis=1), axis=0, return_inverse=True)
    inverse = inverse.ravel()
    counts = np.bincount(inverse, minlength=len(pairs))
    pair_weight = np.bincount(inverse, weights=weight, minlength=len(pairs)) / counts
    t_a, j_a, t_b, j_b = pairs[:, 0] // JOINTS, pairs[:, 0] % JOINTS, pairs[:, 1] // JOINTS, pairs[:, 1] % JOINTS
    drawn = visible[t_a] & visible[t_b]
    self_loop = pairs[:, 0] == pairs[:, 1]
    kinds = {
        "spatial (same frame)": (t_a == t_b) & ~self_loop,
        "temporal (same joint)": (t_a != t_b) & (j_a == j_b),
        "other cross-frame": (t_a != t_b) & (j_a != j_b),
    }
    styles = {"spatial (same frame)": "solid", "temporal (same joint)": (0, (4, 2)), "other cross-frame": (0, (1, 2))}

    shown_weights = pair_weight[drawn]
    top = float(shown_weights.max()) if shown_weights.size and shown_weights.max() > 0 else 1.0
    norm, cmap = Normalize(0.0, top), colormaps[WEIGHT_CMAP]

    def widths(w: np.ndarray) -> np.ndarray:
        return 0.4 + 3.6 * np.clip(w / top, 0.0, 1.0)

    nodes = layout[shown].reshape(-1, 2)
    (x_min, y_min), (x_max, y_max) = np.nanmin(nodes, axis=0), np.nanmax(nodes, axis=0)
    pad = 0.08 * max(y_max - y_min, step)
    # The figure takes the graph's own proportions (3 inches high), squeezed sideways only past 15 inches.
    ratio = (x_max - x_min + 2 * pad) / max(y_max - y_min + 2 * pad, 1e-9)
    fig = Figure(figsize=(float(np.clip(3.0 * ratio, 3.0, 15.0)) + 1.6, 4.2), layout="constrained")
    ax = fig.subplots()
    handles = []
    for kind, mask in kinds.items():
        mask = mask & drawn
        if not mask.any():
            continue
        order = np.argsort(pair_weight[mask])  # strong edges on top of weak ones
        a, b, w = pairs[mask, 0][order], pairs[mask, 1][order], pair_weight[mask][order]
        segments = np.stack([layout[a // JOINTS, a % JOINTS], layout[b // JOINTS, b % JOINTS]], axis=1)
        ax.add_collection(LineCollection(segments, colors=cmap(norm(w)), linewidths=widths(w), linestyles=styles[kind],
                                         capstyle="butt", label=kind, zorder=2))
        handles.append(Line2D([], [], color="black", linestyle=styles[kind], linewidth=1.5, label=kind))

    node_ids = (shown[:, None] * JOINTS + np.arange(JOINTS)[None]).ravel()
    self_weight = np.full(s * JOINTS, np.nan)
    loops = self_loop & drawn
    self_weight[pairs[loops, 0]] = pair_weight[loops]
    has_loop = ~np.isnan(self_weight[node_ids])
    ax.scatter(nodes[~has_loop, 0], nodes[~has_loop, 1], s=10, color="#b0b0b0", edgecolors="none", zorder=3)
    ax.scatter(nodes[has_loop, 0], nodes[has_loop, 1], s=8 + 60 * np.clip(self_weight[node_ids][has_loop] / top, 0, 1),
               c=self_weight[node_ids][has_loop], cmap=cmap, norm=norm, edgecolors="black", linewidths=0.4, zorder=4)
    if has_loop.any():
        handles.append(Line2D([], [], linestyle="none", marker="o", markerfacecolor="grey", markeredgecolor="black",
                              markersize=7, label="self loop (node size)"))
    if (~has_loop).any():
        handles.append(Line2D([], [], linestyle="none", marker="o", markerfacecolor="#b0b0b0",
                              markeredgecolor="none", markersize=4, label="no self loop"))

    ax.set_xlim(x_min - pad, x_max + pad)
    ax.set_ylim(y_max + pad, y_min - pad)  # image coordinates: y grows downwards
    ax.set_xticks(np.nanmean(layout[shown, :, 0], axis=1), _frame_labels(shown), fontsize=7)
    ax.set_xlabel("frame", fontsize=8)
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    add_colorbar(fig, ScalarMappable(norm=norm, cmap=cmap), ax, "attention weight (mean of both directions)")
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=len(handles), fontsize=7,
              frameon=False)
    heading = "graph attention, edge weight = mean of both directions"
    ax.set_title(f"{title}\n{heading}" if title else heading, fontsize=9)
    return fig


def _importance_heatmap(fig: Figure, ax, values: np.ndarray, names: Sequence[str], what: str) -> None:
    """``values`` [S, K] as a K x S heat map relative to its clip mean, 1 (average) in the neutral colour.

    NaN cells (e.g. a bone the graph lacks in that frame: STAR's official graph has limbs in the
    first frame only) are left out of the mean and drawn grey.
    """
    known = np.isfinite(values)
    relative = (values / max(abs(float(values[known].mean())), 1e-12) if known.any() else values).T
    vmin, vmax = heat_scale(relative[known.T]) if known.any() else (0.0, 2.0)
    cmap = colormaps[IMPORTANCE_CMAP].with_extremes(bad=MISSING)
    # Two slopes: 1 sits at the white middle of the colour map even when the scale reaches past 2.
    shown = ax.imshow(relative, cmap=cmap, norm=TwoSlopeNorm(1.0, vmin, vmax), aspect="auto", interpolation="nearest")
    ax.set_xticks(range(values.shape[0]), _frame_labels(range(values.shape[0])), fontsize=7)
    ax.set_yticks(range(len(names)), list(names), fontsize=7)
    ax.set_xlabel("frame", fontsize=8)
    add_colorbar(fig, shown, ax, f"{what} ÷ clip mean (1 = average)")
    if not known.all():
        ax.text(0.0, 1.01, "grey: no value", transform=ax.transAxes, fontsize=6, color="dimgrey", va="bottom")


def plot_joint_importance(joints: torch.Tensor | np.ndarray, bones: torch.Tensor | np.ndarray | None = None,
                          title: str = "") -> Figure:
    """Which joints (and bones) matter in which frame: ``joints`` [S, 17], ``bones`` [S, 19].

    Typically the attention each joint (bone) receives, per frame. Each map is shown relative to
    its mean over the clip, so an even spread reads as 1 (white) and a joint the model relies on
    stands out red. Rows are named by COCO-17 joint and by bone (``l_ankle-l_knee``); columns are
    frames. NaN entries (``STARAttention.bone_importance`` gives NaN for bones the graph lacks)
    stay out of the mean and are drawn grey.
    """
    joint_values = _as_array(joints, "joints", (None, JOINTS), f"[S, {JOINTS}] (one value per frame and joint)")
    s = len(joint_values)
    bone_values = None
    if bones is not None:
        bone_values = _as_array(bones, "bones", (s, len(COCO17_BONES)),
                                f"[S, {len(COCO17_BONES)}] with S = {s} frames as in joints")
    panels = 1 if bone_values is None else 2
    fig = Figure(figsize=(0.32 * s * panels + 2.6 * panels + 0.4, 5.0), layout="constrained")
    axes = fig.subplots(1, panels, squeeze=False)[0]
    _importance_heatmap(fig, axes[0], joint_values, COCO17_NAMES, "joint value")
    axes[0].set_title("joints", fontsize=8)
    if bone_values is not None:
        _importance_heatmap(fig, axes[1], bone_values, BONE_NAMES, "bone value")
        axes[1].set_title("bones", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def plot_pooling_weights(weights: torch.Tensor | np.ndarray, p_values: Sequence[float] = (0.7, 1.0, 3.0, 5.0, 7.0),
                         title: str = "") -> Figure:
    """STAR's skeleton-guided pooling: per channel, a softmax over GeM exponents ``p_values``.

    ``weights`` is [P, C] or [B, P, C] (P = len(p_values)); with a batch, every (sample, channel)
    counts as one channel. Left: the distribution of each p's weight over channels, its mean
    marked. Right: the share of channels whose largest weight goes to each p. Dashed lines mark
    the uniform choice 1 / P on both.
    """
    p = len(p_values)
    if isinstance(weights, torch.Tensor):
        dims = weights.dim()
    else:
        dims = np.ndim(weights)
    if dims == 3:
        array = _as_array(weights, "weights", (None, p, None), f"[{p}, C] or [B, {p}, C] (one row per p in p_values)")
        per_channel = array.transpose(1, 0, 2).reshape(p, -1)
        unit = f"{count(array.shape[0], 'sample')} x {count(array.shape[2], 'channel')}"
    else:
        per_channel = _as_array(weights, "weights", (p, None), f"[{p}, C] or [B, {p}, C] (one row per p in p_values)")
        unit = count(per_channel.shape[1], "channel")
    labels = [f"{v:g}" for v in p_values]
    means = per_channel.mean(axis=1)
    favourite = np.bincount(per_channel.argmax(axis=0), minlength=p) / per_channel.shape[1]

    fig = Figure(figsize=(9, 3.4), layout="constrained")
    left, right = fig.subplots(1, 2)
    parts = left.violinplot(list(per_channel), positions=range(p), showextrema=False, widths=0.8)
    for body in parts["bodies"]:
        body.set(facecolor="#4c72b0", edgecolor="#2a4066", alpha=0.55)
    left.scatter(range(p), means, marker="D", s=22, color="#d62728", zorder=3, label="mean")
    left.axhline(1 / p, color="grey", linestyle="--", linewidth=1, label=f"uniform (1/{p})")
    left.set_xticks(range(p), labels)
    left.set(xlabel="GeM exponent p", ylabel="pooling weight", title=f"weight per p over {unit}")
    left.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    right.bar(labels, favourite, color="#4c72b0")
    right.axhline(1 / p, color="grey", linestyle="--", linewidth=1, label=f"uniform (1/{p})")
    right.set(xlabel="GeM exponent p", ylabel="share of channels", ylim=(0, max(1.0 / p, favourite.max()) * 1.15),
              title="p with the largest weight")
    right.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    for ax in (left, right):
        ax.title.set_size(8)
        ax.xaxis.label.set_size(8)
        ax.yaxis.label.set_size(8)
        ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def plot_frame_attention(bone_to_visual: torch.Tensor | np.ndarray, visual_to_bone: torch.Tensor | np.ndarray,
                         title: str = "") -> Figure:
    """STAR's cross attention between frames, both ways, on one colour scale.

    ``bone_to_visual`` [S, S]: row i is frame i's bone feature attending to the visual features of
    the frames (columns); ``visual_to_bone`` [S, S] the reverse. The shared scale runs from 0 to
    the larger maximum of the two, so the two directions compare cell by cell.
    """
    first = _as_array(bone_to_visual, "bone_to_visual", (None, None), "[S, S] (query frame x key frame)")
    s = len(first)
    if first.shape[1] != s:
        raise ValueError(f"bone_to_visual must be [S, S] (query frame x key frame), got shape {tuple(first.shape)}.")
    second = _as_array(visual_to_bone, "visual_to_bone", (s, s), f"[S, S] with S = {s} frames as in bone_to_visual")
    norm = Normalize(0.0, max(float(first.max()), float(second.max()), 1e-12))
    fig = Figure(figsize=(2 * (0.3 * s + 1.4) + 1.2, 0.3 * s + 1.8), layout="constrained")
    axes = fig.subplots(1, 2)
    labels = _frame_labels(range(s))
    bone, visual = "bone feature of frame", "visual feature of frame"
    panels = ((first, "bone features attend to visual frame features", bone, visual),
              (second, "visual frame features attend to bone features", visual, bone))
    shown = None
    for ax, (matrix, heading, query, key) in zip(axes, panels):
        shown = ax.imshow(matrix, cmap=FRAME_ATTENTION_CMAP, norm=norm)
        ax.set_xticks(range(s), labels, fontsize=6)
        ax.set_yticks(range(s), labels, fontsize=6)
        ax.set_xlabel(f"key: {key}", fontsize=7)
        ax.set_ylabel(f"query: {query}", fontsize=7)
        ax.set_title(heading, fontsize=8)
    add_colorbar(fig, shown, list(axes), "attention weight")
    if title:
        fig.suptitle(title, fontsize=9)
    return fig
