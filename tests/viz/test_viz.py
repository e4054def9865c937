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
    plot_training, ranked_list_browser, show_samples, table,
)
from vireid_lib.viz.common import count


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


def test_a_one_epoch_run_still_draws_its_learning_rate() -> None:
    """A single epoch is a single point: without a marker the learning-rate panel would be empty."""
    fig = plot_training([{"epoch": 1, "lr": 3.5e-4, "loss": 2.0, "seconds": 1.0}])
    (lr,) = fig.axes[1].get_lines()
    assert lr.get_marker() not in (None, "None", "", " ") and list(lr.get_xdata()) == [1]


def test_the_ranked_list_browser_shows_a_picture_where_widgets_are_not_saved(synthetic_sysu: Path) -> None:
    """Saved without widget state (papermill's output, nbconvert's HTML) a widget is a blank; the browser carries a
    static picture of the first query's ranked list, which nbconvert shows in its place."""
    import base64

    import nbformat
    from IPython.core.formatters import DisplayFormatter
    from nbconvert import HTMLExporter

    reader = SYSUMM01(synthetic_sysu)
    queries, gallery = reader.query()[:3], reader.gallery("all", 0)
    distances = np.random.default_rng(0).random((len(queries), len(gallery)))
    bundle, _ = DisplayFormatter().format(ranked_list_browser(queries, gallery, distances, top=5))
    assert "application/vnd.jupyter.widget-view+json" in bundle  # live, the slider
    html = bundle["text/html"]
    encoded = html.split('src="data:image/png;base64,')[1].split('"')[0]
    assert base64.b64decode(encoded).startswith(b"\x89PNG") and "Query 1 of 3" in html
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "ranked_list_browser(...)", outputs=[nbformat.v4.new_output("display_data", data=bundle)])])
    page, _ = HTMLExporter().from_notebook_node(notebook)
    assert encoded[:200] in page and "Query 1 of 3" in page


def test_valid_queries_read_as_a_count_when_whole() -> None:
    """A mean over trials: 23 in every trial is "23", not "23.00"; 22 and 23 are "22.5"."""
    from vireid_lib.eval.protocols import METRIC_COLUMNS, Evaluation, summarise

    rows = [{"dataset": "SYSU-MM01", "protocol": protocol, "direction": "IR → VIS", "reranked": False, "trial": trial,
             "valid_queries": valid, **{m: 50.0 for m in METRIC_COLUMNS}}
            for protocol, counts in (("all-search", (23, 23)), ("indoor-search", (22, 23)))
            for trial, valid in enumerate(counts)]
    per_trial = pd.DataFrame(rows)
    readable = Evaluation(summarise(per_trial), per_trial).readable()
    assert list(readable["valid queries"]) == ["23", "22.5"]
    html = table(readable).to_html()
    assert ">23<" in html and "23.00" not in html


def test_counts_agree_with_their_nouns() -> None:
    assert [count(n, "sample") for n in (0, 1, 2)] == ["0 samples", "1 sample", "2 samples"]
    assert count(1, "query", "queries") == "1 query" and count(3, "query", "queries") == "3 queries"


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
