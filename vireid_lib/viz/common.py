"""What every figure family shares: colours, de-normalising inputs, heat overlays with a colour bar."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..text import count  # noqa: F401 - re-exported for the figures

MATCH, MISMATCH = "#2ca02c", "#d62728"
HEAT_CMAP = "jet"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def denormalise(images: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN,
                std: Sequence[float] = IMAGENET_STD) -> np.ndarray:
    """``[N, 3, H, W]`` normalised tensors -> ``[N, H, W, 3]`` pictures in 0..1."""
    pictures = images.detach().cpu().float() * torch.tensor(std)[:, None, None] + torch.tensor(mean)[:, None, None]
    return pictures.permute(0, 2, 3, 1).clamp(0, 1).numpy()


def relative_to_mean(maps: np.ndarray | torch.Tensor, axis: tuple[int, ...] | None = None) -> np.ndarray:
    """``maps`` divided by their mean (over ``axis``, default all): 1 means "no more than average".

    A uniform map becomes 1 everywhere, which the heat scale below shows as a middle colour,
    never as a hot one: a map that singles nothing out must not look like strong attention.
    """
    array = maps.detach().cpu().float().numpy() if isinstance(maps, torch.Tensor) else np.asarray(maps, dtype=np.float64)
    mean = array.mean(axis=axis, keepdims=axis is not None)
    return array / np.maximum(np.abs(mean), 1e-12)


def heat_scale(relative: np.ndarray) -> tuple[float, float]:
    """(vmin, vmax) for maps expressed relative to their mean: 0 to at least 2, so 1 sits mid-scale."""
    return 0.0, max(2.0, float(np.percentile(relative, 99.5)))


def overlay(ax: Axes, picture: np.ndarray, heat: np.ndarray, vmin: float, vmax: float, alpha: float = 0.45):
    """``picture`` with ``heat`` on top on the fixed scale ``vmin..vmax``; returns the heat image (for a colour bar)."""
    ax.imshow(picture)
    shown = ax.imshow(heat, cmap=HEAT_CMAP, alpha=alpha, vmin=vmin, vmax=vmax)
    ax.axis("off")
    return shown


def add_colorbar(fig: Figure, mappable, axes, label: str) -> None:
    """One colour bar for a row of overlays, labelled with what the colours measure."""
    bar = fig.colorbar(mappable, ax=axes, fraction=0.025, pad=0.02)
    bar.set_label(label, fontsize=7)
    bar.ax.tick_params(labelsize=6)


def legend_outside(ax: Axes, **kwargs) -> None:
    """The axes' legend to the right of the plot, where it cannot cover a curve."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=7, **kwargs)
