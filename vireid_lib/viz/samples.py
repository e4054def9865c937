"""The data as a reader sees it: sample images, clips of tracklets, tracklet lengths."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from ..data.io import read_image
from ..data.records import MODALITY_NAMES
from .common import count


def first_frame(record) -> object:
    """The image path of an image record, or the first frame of a tracklet record."""
    return record.frames[0] if hasattr(record, "frames") else record.path


def show_samples(records: Sequence, columns: int = 8, title: str = "") -> Figure:
    """A grid of images with their identity, camera and modality."""
    rows = max(1, -(-len(records) // columns))
    fig = Figure(figsize=(1.4 * columns, 2.6 * rows))
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, record in zip(axes.flat, records):
        ax.imshow(read_image(first_frame(record)))
        ax.set_title(f"id {record.pid} cam {record.camid}\n{MODALITY_NAMES[record.modality]}", fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


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
                         f"{count(len(record.frames), 'frame')}", fontsize=7, loc="left")
    fig.tight_layout()
    return fig


def plot_image_pairs(rows, titles=()) -> Figure:
    """Rows of normalised image tensors, one row per ``(label, [N, 3, H, W])``, e.g. visible images over
    the middle-modality images a generator makes of them; ``titles`` name the columns of the first rows."""
    from .common import denormalise

    columns = max(len(images) for _, images in rows)
    fig = Figure(figsize=(1.3 * columns + 1.5, 2.3 * len(rows)))
    axes = fig.subplots(len(rows), columns, squeeze=False)
    for r, (label, images) in enumerate(rows):
        pictures = denormalise(images)
        for c, ax in enumerate(axes[r]):
            ax.axis("off")
            if c < len(pictures):
                ax.imshow(pictures[c])
        axes[r][0].set_title(label, fontsize=8, loc="left")
    fig.tight_layout()
    return fig
