"""Dataset readers (exact official layouts and splits), samplers, transforms and loaders."""

from __future__ import annotations

from pathlib import Path

from .errors import DatasetError
from .bupt import BUPTCampus
from .llcm import LLCM
from .records import INFRARED, VISIBLE, ImageRecord, Split, TrackletRecord
from .regdb import RegDB
from .sysu import SYSUMM01
from .vcm import HITSZVCM, sample_test_frames, sample_train_frames

READERS = {"sysu": SYSUMM01, "regdb": RegDB, "llcm": LLCM, "vcm": HITSZVCM, "bupt": BUPTCampus}

__all__ = [
    "BUPTCampus", "DatasetError", "HITSZVCM", "INFRARED", "ImageRecord", "LLCM", "READERS", "RegDB", "SYSUMM01", "Split",
    "TrackletRecord", "VISIBLE", "open_dataset", "sample_test_frames", "sample_train_frames",
]


def open_dataset(kind: str, root: Path | str) -> SYSUMM01 | RegDB | LLCM | HITSZVCM | BUPTCampus:
    """The reader for ``kind`` (``sysu``, ``regdb``, ``llcm``, ``vcm`` or ``bupt``) over ``root``."""
    if kind not in READERS:
        raise DatasetError(f"dataset={kind!r} is not known; use one of {sorted(READERS)}.")
    return READERS[kind](root)
