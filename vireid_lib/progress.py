"""Progress bars that read the same in a terminal, in JupyterLab and in a saved notebook.

Plain-text bars (not tqdm's widget bars): a notebook saved by papermill or opened without
widget state keeps each bar's final line ("epoch 3/4: 100% | 20/20 [00:05, loss=2.31]"),
where a widget bar would show an empty gap or "0%" as if nothing had run. In a notebook kernel
bars go to ``sys.stdout`` (ordinary output, not red stderr); in a terminal to ``sys.stderr``, so
that a command's own output (a split as JSON) stays clean. They are redrawn at most every two
seconds and left in place when done.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from tqdm.std import tqdm


def progress(iterable: Iterable | None = None, *, desc: str, total: int | None = None, enabled: bool = True,
             leave: bool = True, unit: str = "it") -> tqdm:
    """A text progress bar over ``iterable`` (or a manual one with ``total``); ``enabled=False`` hides it."""
    stream = sys.stdout if "ipykernel" in sys.modules else sys.stderr
    return tqdm(iterable, desc=desc, total=total, disable=not enabled, leave=leave, unit=unit, file=stream,
                ncols=100, mininterval=2.0, dynamic_ncols=False)
