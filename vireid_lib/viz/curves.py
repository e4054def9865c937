"""Curves: mean CMC curves per setting, and the training history (loss terms, learning rate)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .common import legend_outside


def plot_cmc(curves: Mapping[tuple[str, str], np.ndarray], title: str = "CMC", max_rank: int = 20) -> Figure:
    """Mean CMC curves (fractions) per (protocol, direction), ranks 1..max_rank, in percent."""
    rows = [{"rank": k + 1, "matching rate (%)": 100 * float(v), "setting": f"{protocol}, {direction}"}
            for (protocol, direction), curve in curves.items() for k, v in enumerate(curve[:max_rank])]
    fig = Figure(figsize=(7.5, 4))
    ax = fig.subplots()
    sns.lineplot(data=pd.DataFrame(rows), x="rank", y="matching rate (%)", hue="setting", marker="o", ax=ax)
    ax.set(title=title, xlim=(0.5, max_rank + 0.5), ylim=(0, 100.5))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # ranks are whole numbers
    ax.grid(alpha=0.3)
    legend_outside(ax)
    fig.tight_layout()
    return fig


def plot_training(history: Sequence[Mapping]) -> Figure:
    """Loss terms and the base learning rate per epoch, from the trainer's history (or log.csv)."""
    frame = pd.DataFrame(list(history))
    skip = {"epoch", "lr", "seconds", "images_per_s"}
    losses = [c for c in frame.columns if c not in skip and not c.startswith("test_") and "precision" not in c]
    fig = Figure(figsize=(11, 3.5))
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    for column in losses:
        left.plot(frame["epoch"], frame[column], marker=".", label=column)
    left.set(xlabel="epoch", ylabel="loss", title="training losses")
    left.xaxis.set_major_locator(MaxNLocator(integer=True))
    legend_outside(left)
    right.plot(frame["epoch"], frame["lr"], color="black")
    right.set(xlabel="epoch", ylabel="base lr", title="learning rate", yscale="log")
    right.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return fig
