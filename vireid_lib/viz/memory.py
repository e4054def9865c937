"""Identity memories (MCE): the per-view memory centres in 2-D, and the visible-infrared similarity matrix.

A 2-D principal-component projection (plain SVD, deterministic) of every view's centres and of a
sample of per-image features, coloured by view, with thin lines joining one identity's centres;
beside it the cosine similarity of every visible memory row to every infrared one. Drawn for
several snapshots (e.g. the first and the last epoch), a reader sees the modalities pulled
together: the lines shorten, the similarity matrix's diagonal stands out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

VIEW_COLOURS = {"visible": "tab:orange", "infrared": "tab:purple", "ca": "tab:green"}
VIEW_LABELS = {"visible": "visible", "infrared": "infrared", "ca": "channel-augmented (CA)"}


def principal_components(points: np.ndarray, count: int = 2) -> np.ndarray:
    """``points`` [N, D] projected on their first ``count`` principal axes (centred SVD), signs fixed so
    that each axis's largest loading is positive (the same data always gives the same picture)."""
    centred = points - points.mean(0, keepdims=True)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    axes = axes[:count]
    axes *= np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(1)])[:, None]
    return centred @ axes.T


def cosine_matrix(rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Cosine similarity of every row of ``rows`` to every row of ``columns``."""
    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    return unit(rows) @ unit(columns).T


def diagonal_contrast(similarity: np.ndarray) -> tuple[float, float]:
    """(mean of the diagonal, mean off the diagonal) of a square similarity matrix."""
    diagonal = float(np.diag(similarity).mean())
    n = len(similarity)
    off = float((similarity.sum() - np.trace(similarity)) / max(1, n * n - n))
    return diagonal, off


def _embedding(ax, snapshot: Mapping, names: Sequence[str], joined: int) -> None:
    memories, features = snapshot["memories"], snapshot["features"]
    classes = memories.shape[1]
    points = principal_components(np.concatenate([memories.reshape(-1, memories.shape[-1]), features]))
    centres, sample = points[: len(names) * classes].reshape(len(names), classes, 2), points[len(names) * classes:]
    for pid in range(min(joined, classes)):  # one identity's centres, joined
        ax.plot(centres[:, pid, 0], centres[:, pid, 1], color="0.6", linewidth=0.7, zorder=1)
    for v, name in enumerate(names):
        colour = VIEW_COLOURS.get(name, f"C{v}")
        ax.scatter(centres[v, :, 0], centres[v, :, 1], s=22, color=colour, edgecolor="black", linewidth=0.3,
                   label=f"{VIEW_LABELS.get(name, name)} centres", zorder=3)
        mine = snapshot["views"] == v
        ax.scatter(sample[mine, 0], sample[mine, 1], s=14, marker="x", color=colour, alpha=0.6, zorder=2,
                   label=f"{VIEW_LABELS.get(name, name)} features")
    ax.set(xlabel="principal component 1", ylabel="principal component 2",
           title=f"epoch {snapshot['epoch']}: memory centres (lines join identities 0-{min(joined, classes) - 1})")
    ax.legend(fontsize=7, loc="best")


def _similarity(fig: Figure, ax, snapshot: Mapping, names: Sequence[str]) -> None:
    visible, infrared = snapshot["memories"][names.index("visible")], snapshot["memories"][names.index("infrared")]
    similarity = cosine_matrix(visible, infrared)
    diagonal, off = diagonal_contrast(similarity)
    # the colour scale spans this matrix's own range: early memories are all alike, and a -1..1 scale would hide
    # the diagonal that training makes stand out
    image = ax.imshow(similarity, cmap="viridis", interpolation="nearest")
    fig.colorbar(image, ax=ax, label="cosine similarity (this matrix's range)")
    ax.set(xlabel="infrared memory (identity)", ylabel="visible memory (identity)",
           title=f"epoch {snapshot['epoch']}: same identity {diagonal:.2f}, others {off:.2f}")


def plot_memory_evolution(snapshots: Sequence[Mapping], names: Sequence[str] = ("visible", "infrared", "ca"),
                          joined: int = 12) -> Figure:
    """One row per snapshot (``epoch``, ``memories`` [views, C, D], sample ``features``, ``labels``,
    ``views``): the 2-D picture of the centres and the sample, and the visible x infrared similarity."""
    if not snapshots:
        fig = Figure(figsize=(6, 1.2))
        fig.text(0.5, 0.5, "no memory snapshot: this run was not trained here", ha="center", va="center")
        return fig
    fig = Figure(figsize=(13, 5 * len(snapshots)))
    axes = fig.subplots(len(snapshots), 2, squeeze=False, gridspec_kw={"width_ratios": [3, 2]})
    for row, snapshot in zip(axes, snapshots):
        _embedding(row[0], snapshot, list(names), joined)
        _similarity(fig, row[1], snapshot, list(names))
    fig.tight_layout()
    return fig
