"""Synthetic twins of SYSU-MM01, RegDB, LLCM, HITSZ-VCM and BUPTCampus in their exact on-disk layouts.

``python -m vireid_lib.data.synthetic {sysu,regdb,llcm,vcm,bupt,all} OUT`` writes them;
:func:`ensure_synthetic` generates one on first use (the notebooks' empty ``data_root``).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

from ...locks import exclusive
from ..cache import default_cache_dir
from .writers import (DEFAULT_CONFIGS, GENERATOR_VERSION, MARKER, WRITERS, SyntheticConfig, write_bupt, write_llcm,
                      write_regdb, write_sysu, write_vcm)

__all__ = ["SyntheticConfig", "ensure_synthetic", "is_synthetic", "write_bupt", "write_llcm", "write_regdb", "write_sysu", "write_vcm",
           "KINDS"]

KINDS = tuple(WRITERS)


def is_synthetic(root: Path | str) -> bool:
    """True when ``root`` was written by this generator (its marker file is there)."""
    return (Path(root) / MARKER).is_file()


def ensure_synthetic(kind: str, root: Path | str | None = None, config: SyntheticConfig | None = None) -> Path:
    """The root of a synthetic dataset of ``kind``, generated there first if it is not yet.

    The dataset is written into a temporary sibling folder and renamed into place, so an
    interrupted generation never leaves a half dataset that looks complete.
    """
    if kind not in WRITERS:
        raise ValueError(f"kind={kind!r} is not a synthetic dataset; use one of {KINDS}.")
    config = config or DEFAULT_CONFIGS[kind]
    root = Path(root) if root is not None else default_cache_dir() / "synthetic" / f"{kind}_ids{config.ids}_seed{config.seed}"
    marker = root / MARKER

    def ready() -> bool:
        if not marker.is_file():
            return False
        info = json.loads(marker.read_text())
        return info.get("config") == asdict(config) and info.get("generator") == GENERATOR_VERSION

    if ready():
        return root
    # Two processes asking for the same twin at once (two notebooks, two test workers): one
    # generates, the other waits for it and then uses what it wrote.
    with exclusive(root.with_name(root.name + ".lock"), f"synthetic dataset {root}",
                   "Another process is generating it; try again when it is done.", wait=600.0):
        if ready():
            return root
        if root.exists() and any(root.iterdir()) and not marker.is_file():
            raise ValueError(f"{root} exists and holds files that are not a synthetic dataset; choose an empty folder.")
        tmp = root.with_name(f"{root.name}.partial{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        WRITERS[kind](tmp, config)
        shutil.rmtree(root, ignore_errors=True)
        tmp.rename(root)
    return root
