"""One run per folder: ``run.lock`` names the process writing it, and a killed write's leftovers go.

Two processes training into the same ``out_dir`` would overwrite each other's checkpoints and
cite each other's files in their records; the second one gets :class:`RunLocked` instead (a
lock left by a killed run is detected and taken over, see :mod:`vireid_lib.locks`). While the
lock is held, the partial files of atomic writes that a kill interrupted (``.last.pt.tmp...``,
up to a checkpoint's size) are removed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..locks import Locked, exclusive

LOCK = "run.lock"
RunLocked = Locked


@contextmanager
def run_lock(folder: Path | str) -> Iterator[Path]:
    """Hold ``folder/run.lock`` for the ``with`` block; clear stale temporary files in ``folder``."""
    folder = Path(folder)
    with exclusive(folder / LOCK, f"run folder {folder}", "Wait for that run to finish or choose another out_dir.") as path:
        for leftover in folder.glob(".*.tmp*"):
            leftover.unlink(missing_ok=True)
        yield path
