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
    right.plot(frame["epoch"], frame["lr"], color="black", marker=".")  # a one-epoch run is a point, not a line
    right.set(xlabel="epoch", ylabel="base lr", title="learning rate", yscale="log")
    right.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return fig


def plot_trial_spread(trials: pd.DataFrame, metric: str = "mAP", title: str = "") -> Figure:
    """Every trial's ``metric`` per paper (a point per trial over a box), one panel per dataset / protocol /
    direction: how much of a difference between papers the trials' spread alone could make."""
    if trials.empty:
        raise ValueError("no trials to plot: the records hold no per-trial rows of this data kind.")
    frame = trials.assign(setting=trials["dataset"] + ", " + trials["protocol"] + ", " + trials["direction"])
    settings = list(dict.fromkeys(frame["setting"]))
    fig = Figure(figsize=(4.2 * min(len(settings), 3), 3.6 * -(-len(settings) // 3)))
    axes = np.atleast_1d(fig.subplots(-(-len(settings) // 3), min(len(settings), 3), squeeze=False)).ravel()
    for ax, setting in zip(axes, settings):
        data = frame[frame["setting"] == setting]
        sns.boxplot(data=data, x="paper", y=metric, ax=ax, color="0.9", showfliers=False)
        sns.stripplot(data=data, x="paper", y=metric, ax=ax, size=4, color="tab:blue", jitter=0.15)
        ax.set(title=setting, xlabel="", ylabel=f"{metric} (%)")
        ax.tick_params(axis="x", rotation=30)
        ax.grid(alpha=0.3, axis="y")
    for ax in axes[len(settings):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
