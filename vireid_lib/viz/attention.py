"""Attention maps of the video transformers: per-frame overlays of a clip, CST's message-token attention across frame
pairs and its per-frame SE gates."""

from __future__ import annotations

import pandas as pd
import seaborn as sns
import torch
from matplotlib.figure import Figure

from .common import add_colorbar, denormalise, heat_scale, overlay, relative_to_mean

LABEL = "attention ÷ clip mean (1 = uniform)"


def plot_clip_attention(clip: torch.Tensor, maps: torch.Tensor, title: str = "") -> Figure:
    """Every frame of ``clip`` [S, 3, H, W] with its attention map ``maps`` [S, h, w] overlaid (upsampled).

    The maps are shown relative to their mean over the whole clip, on one scale for all frames:
    frames compare with each other, and an attention that is spread evenly reads as 1 (a middle
    colour), not as a clip painted hot.
    """
    pictures = denormalise(clip)
    s, height, width = len(pictures), pictures.shape[1], pictures.shape[2]
    upsampled = torch.nn.functional.interpolate(maps.detach().cpu().float()[None], size=(height, width),
                                                mode="nearest")[0]  # tubes and cells keep their edges
    relative = relative_to_mean(upsampled)
    vmin, vmax = heat_scale(relative)
    fig = Figure(figsize=(1.3 * s + 1.2, 3.0), layout="constrained")
    axes = fig.subplots(1, s, squeeze=False)[0]
    shown = None
    for i, ax in enumerate(axes):
        shown = overlay(ax, pictures[i], relative[i], vmin, vmax)
        ax.set_title(f"frame {i + 1}", fontsize=7)
    add_colorbar(fig, shown, list(axes), LABEL)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def plot_message_attention(matrix: torch.Tensor, reliance: torch.Tensor, title: str = "",
                           unit: str = "frame pair") -> Figure:
    """CST's message tokens across the clip: the ``P x P`` attention matrix (heads averaged; row i: the message of
    ``unit`` i reading from ``unit`` j) and how much the messages rely on each ``unit`` (its column mean)."""
    matrix = matrix.detach().cpu().float().numpy()
    fig = Figure(figsize=(9, 3.2), layout="constrained")
    left, right = fig.subplots(1, 2)
    names = [str(i + 1) for i in range(matrix.shape[0])]
    sns.heatmap(pd.DataFrame(matrix, index=names, columns=names), ax=left, vmin=0, vmax=1, cmap="viridis",
                annot=True, fmt=".2f", annot_kws={"fontsize": 7}, cbar_kws={"label": "attention weight (rows sum to 1)"})
    left.set(xlabel=f"attended {unit}", ylabel=f"message of {unit}", title="message-token attention")
    right.bar(names, reliance.detach().cpu().float().numpy().ravel()[: len(names)], color="#4c72b0", label="share")
    right.axhline(1 / len(names), color="grey", linestyle="--", linewidth=1, label="uniform")
    right.set(xlabel=unit, ylabel="share of attention", title=f"{unit}s the messages rely on")
    right.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def plot_frame_gates(strength: torch.Tensor, title: str = "") -> Figure:
    """The SE gate of every frame (its mean over channels, 0..1): how strongly the clip feature lets each frame's
    own feature through on top of itself (``x * gate + x``); equal bars weigh the frames alike."""
    values = strength.detach().cpu().float().numpy().ravel()
    fig = Figure(figsize=(max(4.0, 0.45 * len(values) + 1.5), 2.8), layout="constrained")
    ax = fig.subplots()
    ax.bar([str(i + 1) for i in range(len(values))], values, color="#55a868")
    ax.axhline(float(values.mean()), color="grey", linestyle="--", linewidth=1, label="mean over the clip")
    ax.set(xlabel="frame", ylabel="mean SE gate", ylim=(0, 1), title="how much each frame is let through")
    ax.legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title, fontsize=9)
    return fig
