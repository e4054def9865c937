"""STAR's skeleton figures: limbs and joints per frame, graph edges as wide as their attention, shapes checked."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.figure import Figure

from vireid_lib.data.skeletons import COCO17_BONES, COCO17_NAMES
from vireid_lib.viz import (
    plot_frame_attention, plot_graph_attention, plot_joint_importance, plot_pooling_weights, plot_skeleton_clip,
)

HEIGHT, WIDTH = 128, 64
# A person standing face on in a 128 x 64 crop: their left side is on the right of the picture.
STANDING = np.array([
    (32, 18), (34, 15), (30, 15), (37, 17), (27, 17), (42, 32), (22, 32), (45, 50), (19, 50),
    (47, 66), (17, 66), (38, 68), (26, 68), (39, 90), (25, 90), (40, 112), (24, 112),
], dtype=np.float32)


def walking(frames: int, seed: int = 0) -> np.ndarray:
    """[S, 17, 3] keypoints: the standing skeleton swinging its wrists and ankles, scores in 0.3..1."""
    rng = np.random.default_rng(seed)
    points = np.zeros((frames, 17, 3), dtype=np.float32)
    for t in range(frames):
        swing = 5 * np.sin(2 * np.pi * t / max(frames, 2))
        points[t, :, :2] = STANDING + rng.normal(0, 0.6, (17, 2))
        points[t, [9, 15], 0] += swing
        points[t, [10, 16], 0] -= swing
        points[t, :, 2] = rng.uniform(0.3, 1.0, 17)
    return points


def star_graph(frames: int) -> np.ndarray:
    """STAR-like edges [2, E]: limbs both ways, each joint to itself in the next frame (both ways), self loops."""
    pairs = []
    for t in range(frames):
        base = t * 17
        for a, b in COCO17_BONES:
            pairs += [(base + a, base + b), (base + b, base + a)]
        pairs += [(base + j, base + j) for j in range(17)]
        if t + 1 < frames:
            pairs += [(base + j, base + 17 + j) for j in range(17)] + [(base + 17 + j, base + j) for j in range(17)]
    return np.array(pairs).T


def lines(ax) -> list[LineCollection]:
    return [c for c in ax.collections if isinstance(c, LineCollection)]


def points_drawn(ax) -> int:
    return sum(len(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection))


def colour_bar(fig: Figure, label: str):
    (bar,) = [ax for ax in fig.axes if label in ax.get_ylabel()]
    return bar


def test_skeleton_clip_draws_19_limbs_and_17_joints_per_frame_on_one_0_to_1_score_bar() -> None:
    frames = 4
    keypoints = walking(frames)
    keypoints[1, 15, 2] = 0.05  # left ankle of frame 2 barely seen
    fig = plot_skeleton_clip(torch.randn(frames, 3, HEIGHT, WIDTH), torch.from_numpy(keypoints), title="walk",
                             min_score=0.2)
    pictures = [ax for ax in fig.axes if ax.images]
    assert len(pictures) == frames and len(fig.axes) == frames + 1  # the frames plus one colour bar
    for ax in pictures:
        (limbs,) = lines(ax)
        assert len(limbs.get_segments()) == len(COCO17_BONES) == 19
        assert points_drawn(ax) == 17
        assert ax.get_xlim() == (-0.5, WIDTH - 0.5)  # the frame, not stretched by the skeleton
    assert colour_bar(fig, "joint score").get_ylim() == (0.0, 1.0)
    assert [ax.get_title() for ax in pictures] == ["frame 1", "frame 2", "frame 3", "frame 4"]

    frame2 = pictures[1]
    hollow = [c for c in frame2.collections if isinstance(c, PathCollection) and len(c.get_facecolors()) == 0]
    assert len(hollow) == 1 and len(hollow[0].get_offsets()) == 1  # the low-score ankle, drawn but hollow
    alpha = lines(frame2)[0].get_colors()[:, 3]
    ankle_limb = COCO17_BONES.index((15, 13))
    assert alpha[ankle_limb] < 0.25 < alpha.max()  # the limb to a barely-seen joint fades


def test_skeleton_clip_shows_at_most_max_frames_spread_over_the_clip() -> None:
    fig = plot_skeleton_clip(np.random.randn(16, 3, HEIGHT, WIDTH).astype(np.float32), walking(16), max_frames=6)
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    assert len(titles) == 6 and titles[0] == "frame 1" and titles[-1] == "frame 16"


def test_graph_attention_tells_spatial_from_temporal_edges_and_draws_heavier_edges_wider() -> None:
    frames = 3
    edges = star_graph(frames)
    weights = np.full(edges.shape[1], 0.1)
    src, dst = edges
    heavy = np.flatnonzero((src == 5) & (dst == 6))[0]  # frame 1's shoulder limb, one direction
    weights[heavy] = 0.9
    back = np.flatnonzero((src == 6) & (dst == 5))[0]
    weights[back] = 0.3  # drawn as the mean, 0.6
    fig = plot_graph_attention(walking(frames), torch.from_numpy(edges), torch.from_numpy(weights), title="STAR")
    ax = fig.axes[0]
    by_kind = {c.get_label(): c for c in lines(ax)}
    spatial, temporal = by_kind["spatial (same frame)"], by_kind["temporal (same joint)"]
    assert len(spatial.get_segments()) == 19 * frames  # both directions of a limb drawn once
    assert len(temporal.get_segments()) == 17 * (frames - 1)
    assert spatial.get_linestyles()[0] != temporal.get_linestyles()[0]  # solid vs dashed
    assert "other cross-frame" not in by_kind
    widths = np.asarray(spatial.get_linewidths())
    assert widths.max() > 3 * widths.min() and widths.argmax() == len(widths) - 1  # the heavy edge, on top
    bar = colour_bar(fig, "attention weight")
    assert bar.get_ylim() == pytest.approx((0.0, 0.6))  # the mean of 0.9 and 0.3 is the strongest
    assert "mean of both directions" in ax.get_title()
    legend = {t.get_text() for t in ax.get_legend().get_texts()}
    assert {"spatial (same frame)", "temporal (same joint)", "self loop (node size)"} <= legend
    assert sum(len(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection)) == 17 * frames
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "3"]


def test_graph_attention_shows_only_the_frames_asked_for() -> None:
    edges = star_graph(4)
    fig = plot_graph_attention(walking(4), edges, np.random.default_rng(0).uniform(0, 1, edges.shape[1]), frames=[0, 2])
    ax = fig.axes[0]
    (spatial,) = lines(ax)  # no temporal edge joins frames 1 and 3 directly
    assert len(spatial.get_segments()) == 19 * 2
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "3"]


def test_joint_importance_names_joints_and_bones_and_centres_an_even_spread() -> None:
    fig = plot_joint_importance(torch.full((12, 17), 0.5))
    assert len(fig.axes) == 2  # the map and its colour bar
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == list(COCO17_NAMES)
    heat = fig.axes[0].images[0]
    # An even spread is 1 = the average, the neutral middle of the colour map.
    assert np.allclose(heat.get_array(), 1.0) and heat.norm(1.0) == 0.5
    fig = plot_joint_importance(np.random.rand(12, 17), np.random.rand(12, 19))
    assert len(fig.axes) == 4
    bone_names = [t.get_text() for t in fig.axes[1].get_yticklabels()]
    assert len(bone_names) == 19 and bone_names[0] == "l_ankle-l_knee"
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()][0] == "1"


def test_bones_missing_from_the_graph_stay_out_of_the_mean_and_are_marked() -> None:
    bones = np.full((12, 19), np.nan)
    bones[0] = 2.0  # the official graph: limbs in the first frame only
    fig = plot_joint_importance(np.ones((12, 17)), bones)
    heat = fig.axes[1].images[0]
    shown = np.ma.masked_invalid(heat.get_array())
    assert np.allclose(shown[:, 0], 1.0) and shown[:, 1:].mask.all()
    assert "grey: no value" in [t.get_text() for t in fig.axes[1].texts]


@pytest.mark.parametrize("shape", [(5, 64), (3, 5, 64)])
def test_pooling_weights_takes_one_or_a_batch_of_softmaxes_and_counts_the_favourite_p(shape) -> None:
    logits = torch.randn(*shape)
    logits[..., 2, :] += 10.0  # p = 3 wins on every channel
    fig = plot_pooling_weights(logits.softmax(dim=-2))
    left, right = fig.axes
    assert len(left.collections) >= 5  # one violin per p (plus the means)
    heights = [bar.get_height() for bar in right.patches]
    assert heights == pytest.approx([0, 0, 1, 0, 0])
    assert [t.get_text() for t in right.get_xticklabels()] == ["0.7", "1", "3", "5", "7"]


def test_frame_attention_puts_both_directions_on_one_scale() -> None:
    a, b = torch.rand(12, 12).softmax(-1), torch.rand(12, 12).softmax(-1) * 2
    fig = plot_frame_attention(a, b)
    assert len(fig.axes) == 3
    first, second = (ax.images[0] for ax in fig.axes[:2])
    assert first.get_clim() == second.get_clim() == pytest.approx((0.0, float(b.max())))
    assert "bone features attend to visual" in fig.axes[0].get_title()
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()][-1] == "12"


NO_JOINTS = np.zeros((2, 17, 3))


@pytest.mark.parametrize("call, message", [
    (lambda: plot_skeleton_clip(torch.zeros(4, 3, 8, 8), np.zeros((4, 18, 3))), r"keypoints must be \[S, 17, 3\]"),
    (lambda: plot_skeleton_clip(torch.zeros(4, 3, 8, 8), np.zeros((5, 17, 3))), r"keypoints .*S = 4"),
    (lambda: plot_skeleton_clip(torch.zeros(4, 8, 8), np.zeros((4, 17, 3))), r"clip must be \[S, 3, H, W\]"),
    (lambda: plot_graph_attention(NO_JOINTS[..., :2], np.zeros((2, 1)), np.zeros(1)), r"keypoints must be \[S, 17"),
    (lambda: plot_graph_attention(NO_JOINTS, np.zeros((3, 4)), np.zeros(4)), r"edges must be \[2, E\]"),
    (lambda: plot_graph_attention(NO_JOINTS, np.zeros((2, 4)), np.zeros(3)), r"weights must be \[E\] with E = 4"),
    (lambda: plot_graph_attention(NO_JOINTS, np.full((2, 1), 34), np.zeros(1)), r"edges must hold .* 0\.\.33"),
    (lambda: plot_joint_importance(np.zeros((12, 16))), r"joints must be \[S, 17\]"),
    (lambda: plot_joint_importance(np.zeros((12, 17)), np.zeros((12, 17))), r"bones must be \[S, 19\]"),
    (lambda: plot_pooling_weights(np.zeros((4, 8))), r"weights must be \[5, C\] or \[B, 5, C\]"),
    (lambda: plot_frame_attention(np.zeros((4, 4)), np.zeros((4, 5))), r"visual_to_bone must be \[S, S\] with S = 4"),
    (lambda: plot_frame_attention(np.zeros((4, 3)), np.zeros((4, 4))), r"bone_to_visual must be \[S, S\]"),
])
def test_a_wrong_shape_names_the_argument_and_the_shape_expected(call, message) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_every_figure_renders(tmp_path) -> None:
    """Drawing resolves the layout; a label or a legend that cannot be placed fails here, not in a notebook."""
    keypoints = walking(6)
    edges = star_graph(6)
    figures = [
        plot_skeleton_clip(torch.randn(6, 3, HEIGHT, WIDTH), keypoints, min_score=0.4),
        plot_graph_attention(keypoints, edges, np.random.rand(edges.shape[1])),
        plot_joint_importance(np.random.rand(6, 17), np.random.rand(6, 19)),
        plot_pooling_weights(torch.randn(2, 5, 256).softmax(dim=1)),
        plot_frame_attention(torch.rand(6, 6).softmax(-1), torch.rand(6, 6).softmax(-1)),
    ]
    for i, fig in enumerate(figures):
        FigureCanvasAgg(fig).print_png(tmp_path / f"{i}.png")
        assert (tmp_path / f"{i}.png").stat().st_size > 0
