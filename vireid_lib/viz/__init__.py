"""Figures the notebooks show: CMC curves, training curves, samples and clips, ranked lists,
activation maps, and CST's attention maps.

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
    pictures = _denormalise(images, mean, std)
    fig = Figure(figsize=(1.5 * len(pictures), 3))
    axes = fig.subplots(1, len(pictures), squeeze=False)
    for i, ax in enumerate(axes[0]):
        ax.imshow(pictures[i])
        ax.imshow(maps[i], cmap="jet", alpha=0.45)
        ax.axis("off")
        if i < len(titles):
            ax.set_title(titles[i], fontsize=7)
    fig.tight_layout()
    return fig


def _denormalise(images: torch.Tensor, mean: Sequence[float] = (0.485, 0.456, 0.406),
                 std: Sequence[float] = (0.229, 0.224, 0.225)) -> np.ndarray:
    """``[N, 3, H, W]`` normalised tensors -> ``[N, H, W, 3]`` pictures in 0..1."""
    pictures = images.detach().cpu().float() * torch.tensor(std)[:, None, None] + torch.tensor(mean)[:, None, None]
    return pictures.permute(0, 2, 3, 1).clamp(0, 1).numpy()


def plot_tracklet_lengths(tracklets: pd.DataFrame) -> Figure:
    """Histogram of tracklet lengths (frames) per split and modality (``VideoRun.tracklets()``)."""
    fig = Figure(figsize=(9, 3))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, split in zip(axes, ("train", "test")):
        sns.histplot(data=tracklets[tracklets["split"] == split], x="frames", hue="modality", multiple="dodge",
                     discrete=True, shrink=0.8, ax=ax)
        ax.set(title=f"{split} tracklets", xlabel="frames per tracklet")
    fig.tight_layout()
    return fig


def show_clips(records: Sequence, frames: int = 6) -> Figure:
    """One row per tracklet: ``frames`` frames spread over its length."""
    fig = Figure(figsize=(1.2 * frames, 2.4 * len(records)))
    axes = fig.subplots(len(records), frames, squeeze=False)
    for row, record in zip(axes, records):
        picks = np.linspace(0, len(record.frames) - 1, frames).round().astype(int)
        for ax, index in zip(row, picks):
            ax.imshow(read_image(record.frames[index]))
            ax.axis("off")
        row[0].set_title(f"id {record.pid} cam {record.camid} {MODALITY_NAMES[record.modality]}, "
                         f"{len(record.frames)} frames", fontsize=7, loc="left")
    fig.tight_layout()
    return fig


def plot_clip_attention(clip: torch.Tensor, maps: torch.Tensor, title: str = "") -> Figure:
    """Every frame of ``clip`` [S, 3, H, W] with its attention map ``maps`` [S, h, w] overlaid (upsampled)."""
    pictures = _denormalise(clip)
    s, height, width = len(pictures), pictures.shape[1], pictures.shape[2]
    upsampled = torch.nn.functional.interpolate(maps.detach().cpu().float()[None], size=(height, width),
                                                mode="bilinear", align_corners=False)[0].numpy()
    fig = Figure(figsize=(1.3 * s, 2.8))
    axes = fig.subplots(1, s, squeeze=False)[0]
    top = float(upsampled.max()) or 1.0
    for i, ax in enumerate(axes):
        ax.imshow(pictures[i])
        ax.imshow(upsampled[i], cmap="jet", alpha=0.45, vmin=0, vmax=top)  # one scale for the clip: frames compare
        ax.set_title(f"frame {i + 1}", fontsize=7)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_message_attention(message: Sequence[torch.Tensor], reliance: torch.Tensor, title: str = "") -> Figure:
    """MTFM's message-token attention across frames: the layer-and-head mean ``S x S`` matrix
    (row i: frame i's message reading from frame j) and how much the messages rely on each frame."""
    matrix = torch.stack([a.float().mean(dim=1) for a in message]).mean(dim=0)[0].cpu().numpy()
    fig = Figure(figsize=(8, 3))
    left, right = fig.subplots(1, 2)
    frames = [str(i + 1) for i in range(matrix.shape[0])]
    sns.heatmap(pd.DataFrame(matrix, index=frames, columns=frames), ax=left, vmin=0, cmap="viridis", annot=True,
                fmt=".2f", annot_kws={"fontsize": 7})
    left.set(xlabel="attended frame", ylabel="message of frame", title="message-token attention")
    right.bar(frames, reliance.detach().cpu().float().numpy().ravel()[: len(frames)], color="#4c72b0")
    right.axhline(1 / len(frames), color="grey", linestyle="--", linewidth=1, label="uniform")
    right.set(xlabel="frame", ylabel="share of attention", title="frames the model relies on")
    right.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
