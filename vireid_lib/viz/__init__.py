"""Figures the notebooks show: CMC curves, training curves, samples, ranked lists, activation maps.

Every function returns a matplotlib Figure built without pyplot: nothing is shown, saved or
kept in pyplot's global state, so a notebook displays exactly what a cell returns (once) and a
test can inspect it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import seaborn as sns
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..data.io import read_image
from ..data.records import INFRARED, MODALITY_NAMES

MATCH, MISMATCH = "#2ca02c", "#d62728"


def plot_cmc(curves: Mapping[tuple[str, str], np.ndarray], title: str = "CMC", max_rank: int = 20) -> Figure:
    """Mean CMC curves (fractions) per (protocol, direction), ranks 1..max_rank, in percent."""
    rows = [{"rank": k + 1, "matching rate (%)": 100 * float(v), "setting": f"{protocol}, {direction}"}
            for (protocol, direction), curve in curves.items() for k, v in enumerate(curve[:max_rank])]
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    sns.lineplot(data=pd.DataFrame(rows), x="rank", y="matching rate (%)", hue="setting", marker="o", ax=ax)
    ax.set(title=title, xlim=(1, max_rank), ylim=(0, 100.5))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_training(history: Sequence[Mapping]) -> Figure:
    """Loss terms and the base learning rate per epoch, from the trainer's history (or log.csv)."""
    frame = pd.DataFrame(list(history))
    skip = {"epoch", "lr", "seconds", "images_per_s"}
    losses = [c for c in frame.columns if c not in skip and not c.startswith("test_") and "precision" not in c]
    fig = Figure(figsize=(10, 3.5))
    left, right = fig.subplots(1, 2)
    for column in losses:
        left.plot(frame["epoch"], frame[column], marker=".", label=column)
    left.set(xlabel="epoch", ylabel="loss", title="training losses")
    left.legend(fontsize=8)
    right.plot(frame["epoch"], frame["lr"], color="black")
    right.set(xlabel="epoch", ylabel="base lr", title="learning rate", yscale="log")
    fig.tight_layout()
    return fig


def show_samples(records: Sequence, columns: int = 8, title: str = "") -> Figure:
    """A grid of images with their identity, camera and modality."""
    rows = max(1, -(-len(records) // columns))
    fig = Figure(figsize=(1.4 * columns, 2.6 * rows))
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, record in zip(axes.flat, records):
        path = record.frames[0] if hasattr(record, "frames") else record.path
        ax.imshow(read_image(path))
        ax.set_title(f"id {record.pid} cam {record.camid}\n{MODALITY_NAMES[record.modality]}", fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _frame(ax, colour: str, width: float = 4) -> None:
    ax.add_patch(Rectangle((0, 0), 1, 1, transform=ax.transAxes, fill=False, edgecolor=colour, linewidth=width))


def plot_ranked_list(query, gallery: Sequence, distances: np.ndarray, top: int = 10, removed: np.ndarray | None = None) -> Figure:
    """A query beside its ``top`` nearest gallery items; true matches framed green, others red.

    ``removed`` marks gallery items the protocol drops for this query (e.g. SYSU-MM01's camera
    2 for camera-3 queries); they are skipped, as the scoring skips them.
    """
    distances = np.asarray(distances, dtype=np.float64)
    keep = np.ones(len(gallery), dtype=bool) if removed is None else ~np.asarray(removed)
    order = [i for i in np.argsort(distances, kind="stable") if keep[i]][:top]
    fig = Figure(figsize=(1.3 * (len(order) + 1), 2.8))
    axes = np.atleast_1d(fig.subplots(1, len(order) + 1))
    for ax in axes:
        ax.axis("off")
    query_path = query.frames[0] if hasattr(query, "frames") else query.path
    axes[0].imshow(read_image(query_path))
    axes[0].set_title(f"query\nid {query.pid}", fontsize=8)
    for rank, (ax, index) in enumerate(zip(axes[1:], order), start=1):
        item = gallery[index]
        ax.imshow(read_image(item.frames[0] if hasattr(item, "frames") else item.path))
        _frame(ax, MATCH if item.pid == query.pid else MISMATCH)
        ax.set_title(f"{rank}: id {item.pid}\n{distances[index]:.3f}", fontsize=7)
    fig.tight_layout()
    return fig


def ranked_list_browser(queries: Sequence, gallery: Sequence, distmat: np.ndarray, top: int = 10,
                        removed: np.ndarray | None = None):
    """An ipywidgets slider that steps through queries and redraws each one's ranked list."""
    import ipywidgets as widgets
    from IPython.display import display

    output = widgets.Output()
    slider = widgets.IntSlider(value=0, min=0, max=len(queries) - 1, description="query")

    def figure(q: int) -> Figure:
        return plot_ranked_list(queries[q], gallery, distmat[q], top, None if removed is None else removed[q])

    def redraw(change: dict) -> None:
        with output:
            output.clear_output(wait=True)
            display(figure(change["new"]))

    slider.observe(redraw, names="value")
    # The first figure is appended directly: rendering inside the Output context before any
    # front end is attached can stall a headless (papermill) kernel.
    output.append_display_data(figure(0))
    return widgets.VBox([slider, output])


@torch.no_grad()
def activation_maps(model: torch.nn.Module, images: torch.Tensor, modality: int, layer: torch.nn.Module | None = None) -> np.ndarray:
    """Channel-mean activation of ``layer`` (default ``model.backbone``), upsampled to the image.

    Returns ``[N, H, W]`` maps scaled to 0..1 per image: where the last convolutional maps
    respond most strongly, which is what the test feature pools.
    """
    layer = layer if layer is not None else model.backbone
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda module, inputs, output: captured.append(output))
    was_training = model.training
    model.eval()
    try:
        model(None, images) if modality == INFRARED else model(images, None)
    finally:
        handle.remove()
        model.train(was_training)
    maps = captured[-1].float().mean(1, keepdim=True)
    maps = torch.nn.functional.interpolate(maps, size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    low = maps.flatten(1).min(1).values[:, None, None]
    high = maps.flatten(1).max(1).values[:, None, None]
    return ((maps - low) / (high - low).clamp(min=1e-12)).cpu().numpy()


def plot_activation_maps(images: torch.Tensor, maps: np.ndarray, titles: Sequence[str] = (),
                         mean: Sequence[float] = (0.485, 0.456, 0.406), std: Sequence[float] = (0.229, 0.224, 0.225)) -> Figure:
    """Normalised input images with their activation maps overlaid."""
    pictures = images.detach().cpu().float() * torch.tensor(std)[:, None, None] + torch.tensor(mean)[:, None, None]
    fig = Figure(figsize=(1.5 * len(pictures), 3))
    axes = fig.subplots(1, len(pictures), squeeze=False)
    for i, ax in enumerate(axes[0]):
        ax.imshow(pictures[i].permute(1, 2, 0).clamp(0, 1).numpy())
        ax.imshow(maps[i], cmap="jet", alpha=0.45)
        ax.axis("off")
        if i < len(titles):
            ax.set_title(titles[i], fontsize=7)
    fig.tight_layout()
    return fig
