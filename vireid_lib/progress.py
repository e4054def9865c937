"""Progress bars that read the same in a terminal, in JupyterLab and in a saved notebook.

Plain-text bars (not tqdm's widget bars, which a notebook saved by papermill or opened without widget state shows
as an empty gap or "0%", as if nothing had run). In a notebook kernel (JupyterLab, or papermill / nbclient running
one) a bar is ONE text output of its cell, redrawn in place through its display id: JupyterLab shows the redraws
live, and nbclient applies them to the notebook it saves, which therefore keeps each bar once, in its final state
("epoch 3/4: 100%|...| 20/20 [00:05<00:00, loss=2.31]"), not every redraw as a stream would. In a terminal bars go
to ``sys.stderr``, redrawn on one line, so that a command's own output (a split as JSON) stays clean. They are
redrawn at most every two seconds and left in place when done.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterable

from tqdm.std import tqdm


class _Nowhere(io.TextIOBase):
    """Where a notebook bar's line breaks go: the bar is a display output, not text on a stream."""

    encoding = "utf-8"  # tqdm draws block characters, not "#", for a stream that takes them

    def write(self, text: str) -> int:
        return len(text)


class NotebookBar(tqdm):
    """A tqdm bar drawn as one ``text/plain`` display output of the running cell and updated in place."""

    # No refresh thread: a display sent from another thread can be routed to another cell (or dropped).
    monitor_interval = 0

    def __init__(self, *args, **kwargs) -> None:
        self._handle = None  # tqdm's __init__ already draws the bar
        super().__init__(*args, **{**kwargs, "file": _Nowhere()})

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        from IPython.display import display

        bundle = {"text/plain": self.__str__() if msg is None else msg}  # msg="": a bar with leave=False clears itself
        if self._handle is None:
            self._handle = display(bundle, raw=True, display_id=True)
        else:
            self._handle.update(bundle, raw=True)
        return True


def in_notebook_kernel() -> bool:
    """Whether this code runs in a Jupyter kernel (a notebook, live or under papermill), not a terminal."""
    if "ipykernel" not in sys.modules:
        return False
    from IPython import get_ipython

    return getattr(get_ipython(), "kernel", None) is not None


def progress(iterable: Iterable | None = None, *, desc: str, total: int | None = None, enabled: bool = True,
             leave: bool = True, unit: str = "it") -> tqdm:
    """A text progress bar over ``iterable`` (or a manual one with ``total``); ``enabled=False`` hides it."""
    options = dict(desc=desc, total=total, disable=not enabled, leave=leave, unit=unit, ncols=100, mininterval=2.0,
                   dynamic_ncols=False)
    if in_notebook_kernel():
        return NotebookBar(iterable, **options)
    return tqdm(iterable, file=sys.stderr, **options)
