"""Attention maps of the video transformers: per-frame overlays of a clip, and CST's message-token attention."""

from __future__ import annotations

from collections.abc import Sequence

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


def plot_message_attention(message: Sequence[torch.Tensor], reliance: torch.Tensor, title: str = "") -> Figure:
    """MTFM's message-token attention across frames: the layer-and-head mean ``S x S`` matrix
    (row i: frame i's message reading from frame j) and how much the messages rely on each frame."""
    matrix = torch.stack([a.float().mean(dim=1) for a in message]).mean(dim=0)[0].cpu().numpy()
    fig = Figure(figsize=(9, 3.2), layout="constrained")
    left, right = fig.subplots(1, 2)
    frames = [str(i + 1) for i in range(matrix.shape[0])]
    sns.heatmap(pd.DataFrame(matrix, index=frames, columns=frames), ax=left, vmin=0, vmax=1, cmap="viridis",
                annot=True, fmt=".2f", annot_kws={"fontsize": 7}, cbar_kws={"label": "attention weight (rows sum to 1)"})
    left.set(xlabel="attended frame", ylabel="message of frame", title="message-token attention")
    right.bar(frames, reliance.detach().cpu().float().numpy().ravel()[: len(frames)], color="#4c72b0", label="share")
    right.axhline(1 / len(frames), color="grey", linestyle="--", linewidth=1, label="uniform")
    right.set(xlabel="frame", ylabel="share of attention", title="frames the model relies on")
    right.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if title:
        fig.suptitle(title, fontsize=9)
    return fig
