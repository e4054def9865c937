"""Figures: they draw what they say (curves per setting, frames by match, maps per image)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.patches import Rectangle

from vireid_lib.data import SYSUMM01
from vireid_lib.viz import (
    MATCH, MISMATCH, activation_maps, plot_activation_maps, plot_cmc, plot_ranked_list, plot_training, show_samples,
)


def test_cmc_plot_has_one_line_per_setting() -> None:
    curves = {("all-search", "ir2rgb"): np.linspace(0.4, 0.9, 20), ("indoor-search", "ir2rgb"): np.linspace(0.5, 1.0, 20)}
    fig = plot_cmc(curves)
    lines = [l for l in fig.axes[0].get_lines() if len(l.get_xdata()) == 20]
    assert len(lines) == 2 and max(lines[1].get_ydata()) == 100.0


def test_training_plot_and_samples(synthetic_sysu: Path) -> None:
    history = [{"epoch": e, "lr": 0.1 * (e + 1), "loss": 2.0 / (e + 1), "ce": 1.0, "seconds": 1.0} for e in range(1, 4)]
    fig = plot_training(history)
    assert {l.get_label() for l in fig.axes[0].get_lines()} == {"loss", "ce"}
    records = SYSUMM01(synthetic_sysu).query()[:5]
    assert sum(len(ax.images) > 0 for ax in show_samples(records, columns=4).axes) == 5


def test_ranked_list_frames_matches_green_and_skips_removed(synthetic_sysu: Path) -> None:
    reader = SYSUMM01(synthetic_sysu)
    query, gallery = reader.query()[0], reader.gallery("all", 0)
    distances = np.array([0.0 if g.pid == query.pid else 1.0 + i for i, g in enumerate(gallery)])
    removed = np.zeros(len(gallery), dtype=bool)
    removed[int(np.argmax(distances))] = True  # the farthest never shows
    fig = plot_ranked_list(query, gallery, distances, top=len(gallery), removed=removed)
    colours = [p.get_edgecolor() for ax in fig.axes[1:] for p in ax.patches if isinstance(p, Rectangle)]
    matches = sum(g.pid == query.pid for g in gallery)
    assert len(fig.axes) == len(gallery)  # the query plus every kept item
    from matplotlib.colors import to_rgba
    assert colours[:matches] == [to_rgba(MATCH)] * matches
    assert all(c == to_rgba(MISMATCH) for c in colours[matches:])


class Backboned(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = torch.nn.Conv2d(3, 4, 3, stride=4, padding=1)

    def forward(self, visible, infrared):
        x = visible if visible is not None else infrared
        return {"embedding": self.backbone(x).mean((2, 3))}


def test_activation_maps_cover_each_image() -> None:
    images = torch.randn(3, 3, 32, 16)
    model = Backboned().train()
    maps = activation_maps(model, images, modality=0)
    assert maps.shape == (3, 32, 16) and model.training
    assert np.allclose(maps.reshape(3, -1).min(1), 0) and np.allclose(maps.reshape(3, -1).max(1), 1)
    assert len(plot_activation_maps(images, maps, ["a", "b", "c"]).axes) == 3
