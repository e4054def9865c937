"""Where a run's files go: relative paths are taken against the workbook's root, not the kernel's folder.

A notebook opened in JupyterLab runs its kernel in ``notebooks/``, papermill may be given
``--cwd`` anything, and a command may be started from any folder; ``results_dir="results"``
must still mean the ``results/`` that ``python -m vireid_lib.results readme`` reads. So a
relative ``results_dir`` or ``out_dir`` resolves against the workbook root:

1. ``$VIREID_ROOT`` when set;
2. the checkout this package was imported from (an editable install: the folder holding
   ``vireid_lib/`` beside ``results/`` and ``notebooks/``);
3. the nearest folder at or above the working directory that holds ``results/`` and
   ``notebooks/`` (a checkout used with a regular install);
4. else the working directory itself.

Absolute paths are kept as they are.
"""

from __future__ import annotations

import os
from pathlib import Path

_MARKERS = ("results", "notebooks")


def _is_root(folder: Path) -> bool:
    return all((folder / name).is_dir() for name in _MARKERS)


def workbook_root() -> Path:
    """The folder relative run paths are resolved against (see the module docstring)."""
    configured = os.environ.get("VIREID_ROOT")
    if configured:
        return Path(configured).expanduser().resolve()
    checkout = Path(__file__).resolve().parents[1]
    if _is_root(checkout):
        return checkout
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if _is_root(folder):
            return folder
    return here


def resolve(path: str | os.PathLike) -> Path:
    """``path`` itself when absolute (``~`` expanded), else ``workbook_root() / path``."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else workbook_root() / path
