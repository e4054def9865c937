"""Figures: they draw what they say (curves per setting, frames by match, maps on an honest scale)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.patches import Rectangle

from vireid_lib.data import SYSUMM01
from vireid_lib.viz import (
    MATCH, MISMATCH, activation_maps, plot_activation_maps, plot_clip_attention, plot_cmc, plot_ranked_list,
    plot_training, show_samples, table,
)


def test_cmc_plot_has_one_line_per_setting_integer_ranks_and_a_legend_beside_the_curves() -> None:
    curves = {("all-search", "ir2rgb"): np.linspace(0.4, 0.9, 20), ("indoor-search", "ir2rgb"): np.linspace(0.5, 1.0, 20)}
    fig = plot_cmc(curves)
    ax = fig.axes[0]
    lines = [l for l in ax.get_lines() if len(l.get_xdata()) == 20]
    assert len(lines) == 2 and max(lines[1].get_ydata()) == 100.0
    ticks = [t for t in ax.get_xticks() if 1 <= t <= 20]
    assert ticks and all(float(t).is_integer() for t in ticks)
    fig.canvas.draw()
    legend, plot_area = ax.get_legend().get_window_extent(), ax.get_window_extent()
    assert legend.x0 >= plot_area.x1  # outside the axes: it cannot cover a curve


def test_training_plot_and_samples(synthetic_sysu: Path) -> None:
    history = [{"epoch": e, "lr": 0.1 * (e + 1), "loss": 2.0 / (e + 1), "ce": 1.0, "seconds": 1.0} for e in range(1, 4)]
    fig = plot_training(history)
    assert {l.get_label() for l in fig.axes[0].get_lines()} == {"loss", "ce"}
    records = SYSUMM01(synthetic_sysu).query()[:5]
    assert sum(len(ax.images) > 0 for ax in show_samples(records, columns=4).axes) == 5


def test_ranked_list_frames_matches_green_skips_removed_and_says_what_the_numbers_are(synthetic_sysu: Path) -> None:
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
    assert "distance to the query (lower is closer)" in " ".join(t.get_text() for t in fig.texts)
    assert fig.axes[1].get_title().endswith("d = 0.000")


class Backboned(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = torch.nn.Conv2d(3, 4, 3, stride=4, padding=1)

    def forward(self, visible, infrared):
        x = visible if visible is not None else infrared
        return {"embedding": self.backbone(x).mean((2, 3))}


def test_activation_maps_are_relative_to_each_image_mean_and_share_a_labelled_scale() -> None:
    images = torch.randn(3, 3, 32, 16)
    model = Backboned().train()
    maps = activation_maps(model, images, modality=0)
    assert maps.shape == (3, 32, 16) and model.training
    assert np.allclose(maps.reshape(3, -1).mean(1), 1.0)
    fig = plot_activation_maps(images, maps, ["a", "b", "c"])
    overlays = [ax.images[1] for ax in fig.axes if len(ax.images) == 2]
    assert len(overlays) == 3 and len({im.get_clim() for im in overlays}) == 1  # one scale for every image
    (bar,) = [ax for ax in fig.axes if "mean" in ax.get_ylabel()]
    assert "1 = average" in bar.get_ylabel()


def test_a_uniform_map_is_drawn_mid_scale_not_hot() -> None:
    clip = torch.zeros(3, 3, 32, 16)
    fig = plot_clip_attention(clip, torch.full((3, 4, 2), 1 / 24))
    overlay = fig.axes[0].images[1]
    low, high = overlay.get_clim()
    value = float(np.asarray(overlay.get_array()).mean())
    assert abs(value - 1.0) < 1e-5 and low == 0.0 and high >= 2.0  # 1 = spread evenly: the middle of the scale
    peaked = torch.full((3, 4, 2), 0.01)
    peaked[1, 2, 1] = 0.9
    top = plot_clip_attention(clip, peaked).axes[1].images[1]
    assert float(np.asarray(top.get_array()).max()) > 2.0  # a real peak stands out above the middle


def test_table_carries_its_caption() -> None:
    frame = pd.DataFrame({"R1": [1.234]})
    frame.attrs["caption"] = "synthetic: no difference"
    html = table(frame).to_html()
    assert "synthetic: no difference" in html and "1.23" in html
