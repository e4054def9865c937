"""Plain records that dataset readers yield; everything downstream is generic over them.

A reader only parses a layout. It returns lists of these records in protocol order; samplers,
transforms, loaders and the evaluator never look at the on-disk layout again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

VISIBLE = 0
INFRARED = 1
MODALITY_NAMES = {VISIBLE: "visible", INFRARED: "infrared"}


@dataclass(frozen=True)
class ImageRecord:
    """One image: its path, identity label and camera id, and which modality it is."""

    path: Path
    pid: int
    camid: int
    modality: int


@dataclass(frozen=True)
class TrackletRecord:
    """One tracklet: all of its frame paths in order, identity, camera and modality.

    ``row`` is the 0-based row of the tracklet in the dataset's track info file, kept so that
    a split can always be traced back to the official metadata.
    """

    frames: tuple[Path, ...]
    pid: int
    camid: int
    modality: int
    row: int = -1

    def __len__(self) -> int:
        return len(self.frames)


@dataclass
class Split:
    """A query set and a gallery set in protocol order, with what produced them."""

    query: list
    gallery: list
    description: dict = field(default_factory=dict)
