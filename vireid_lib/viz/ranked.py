"""Ranked lists: a query beside its nearest gallery items, and a browser that steps through queries."""

from __future__ import annotations

import base64
import functools
import io
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..data.io import read_image
from .common import MATCH, MISMATCH
from .samples import first_frame

CAPTION = ("rank: identity, and below it the distance to the query (lower is closer). "
           "Green frame: the query's identity; red: another identity.")


def _frame(ax, colour: str, width: float = 4) -> None:
    ax.add_patch(Rectangle((0, 0), 1, 1, transform=ax.transAxes, fill=False, edgecolor=colour, linewidth=width))


def plot_ranked_list(query, gallery: Sequence, distances: np.ndarray, top: int = 10, removed: np.ndarray | None = None) -> Figure:
    """A query beside its ``top`` nearest gallery items; true matches framed green, others red.

    ``removed`` marks gallery items the protocol drops for this query (e.g. SYSU-MM01's camera
    2 for camera-3 queries); they are skipped, as the scoring skips them. Under each item: its
    rank, identity and distance to the query (the cosine-style distance the scorer ranks by).
    """
    distances = np.asarray(distances, dtype=np.float64)
    keep = np.ones(len(gallery), dtype=bool) if removed is None else ~np.asarray(removed)
    order = [i for i in np.argsort(distances, kind="stable") if keep[i]][:top]
    fig = Figure(figsize=(max(6.0, 1.3 * (len(order) + 1)), 3.1))
    axes = np.atleast_1d(fig.subplots(1, len(order) + 1))
    for ax in axes:
        ax.axis("off")
    axes[0].imshow(read_image(first_frame(query)))
    axes[0].set_title(f"query\nid {query.pid} cam {query.camid}", fontsize=8)
    for rank, (ax, index) in enumerate(zip(axes[1:], order), start=1):
        item = gallery[index]
        ax.imshow(read_image(first_frame(item)))
        _frame(ax, MATCH if item.pid == query.pid else MISMATCH)
        ax.set_title(f"{rank}: id {item.pid}\nd = {distances[index]:.3f}", fontsize=7)
    fig.text(0.01, 0.01, CAPTION, fontsize=7, ha="left", va="bottom")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


@functools.cache
def _browser_type() -> type:
    import ipywidgets as widgets

    class RankedListBrowser(widgets.VBox):
        """The slider and its ranked list, plus a static ``text/html`` picture of one ranked list: a notebook saved
        without widget state (papermill, nbconvert's HTML, a viewer without the kernel) shows that picture where
        the widget alone would leave a blank (nbconvert falls back to the next format it can show)."""

        static_html = ""

        def _repr_mimebundle_(self, **kwargs) -> dict:
            return {**super()._repr_mimebundle_(**kwargs), "text/html": self.static_html}

    return RankedListBrowser


def ranked_list_browser(queries: Sequence, gallery: Sequence, distmat: np.ndarray, top: int = 10,
                        removed: np.ndarray | None = None):
    """An ipywidgets slider that steps through queries and redraws each one's ranked list; saved without widget
    state, it shows the first query's ranked list as a static picture."""
    import ipywidgets as widgets
    from IPython.display import Image, display

    output = widgets.Output()
    slider = widgets.IntSlider(value=0, min=0, max=len(queries) - 1, description="query")

    def figure(q: int) -> Figure:
        return plot_ranked_list(queries[q], gallery, distmat[q], top, None if removed is None else removed[q])

    def redraw(change: dict) -> None:
        with output:
            output.clear_output(wait=True)
            display(figure(change["new"]))

    slider.observe(redraw, names="value")
    first = _png(figure(0))
    # The first figure is appended directly: rendering inside the Output context before any
    # front end is attached can stall a headless (papermill) kernel.
    output.append_display_data(Image(data=first, format="png"))
    browser = _browser_type()(children=[slider, output])
    browser.static_html = (f'<img src="data:image/png;base64,{base64.b64encode(first).decode()}" '
                           f'alt="ranked list of query 1"/><p><i>Query 1 of {len(queries)}: the browser\'s slider '
                           "steps through the others when the notebook runs.</i></p>")
    return browser
