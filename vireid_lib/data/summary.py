"""Tables that describe a dataset's splits: what a notebook shows before training."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..text import count
from . import open_dataset
from .errors import DatasetError
from .records import INFRARED, VISIBLE, Split


def _row(subset: str, records: list, **extra: object) -> dict:
    lengths = [len(r) for r in records] if records and hasattr(records[0], "frames") else None
    row = {
        "subset": subset,
        "identities": len({r.pid for r in records}),
        "visible": sum(r.modality == VISIBLE for r in records),
        "infrared": sum(r.modality == INFRARED for r in records),
        "cameras": len({r.camid for r in records}),
        **extra,
    }
    if lengths:
        row["frames"] = int(np.sum(lengths))
        row["min_len"], row["max_len"] = int(np.min(lengths)), int(np.max(lengths))
    return row


def _split_rows(split: Split, protocol: str) -> list[dict]:
    unmatched = len(split.description.get("query_ids_without_gallery_match", []))
    return [_row("query", split.query, protocol=protocol, ids_without_match=unmatched),
            _row("gallery", split.gallery, protocol=protocol)]


def summarise(kind: str, root: Path | str, trial: int | None = None) -> pd.DataFrame:
    """One row per subset (train, and query / gallery of every protocol): counts per modality.

    Images for the image datasets, tracklets (with frame counts and lengths) for the video ones; which subsets, the
    reader says (its ``overview``).
    """
    return summarise_reader(open_dataset(kind, root), trial)


def summarise_reader(dataset, trial: int | None = None) -> pd.DataFrame:
    """:func:`summarise` of an open reader (any reader with an ``overview``)."""
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the table itself reports unmatched query identities
        for protocol, subset, part in dataset.overview(trial):
            rows += _split_rows(part, protocol) if isinstance(part, Split) else [_row(subset, part, protocol=protocol)]
    columns = ["protocol", "subset", "identities", "visible", "infrared", "cameras"]
    frame = pd.DataFrame(rows).convert_dtypes()  # integer columns stay integers beside blanks
    frame = frame[columns + [c for c in frame.columns if c not in columns]]
    return frame.astype(object).where(frame.notna(), "")


def image_paths(kind: str, root: Path | str, trial: int | None = None) -> list[Path]:
    """Every image file the dataset's training and test splits read (the reader's ``used_records``), once each,
    sorted."""
    dataset = open_dataset(kind, root)
    paths: set = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        records = dataset.used_records(trial)
    for record in records:
        paths.update(record.frames if hasattr(record, "frames") else [record.path])
    return sorted(Path(p) for p in paths)


def check_images(kind: str, root: Path | str, trial: int | None = None, progress: bool = True) -> list[tuple[Path, str]]:
    """(path, reason) of every image the splits use that is missing or does not decode."""
    from ..progress import progress as bar
    from .io import read_image

    broken = []
    paths = image_paths(kind, root, trial)
    for path in bar(paths, desc=f"decoding {count(len(paths), 'image')}", enabled=progress, unit="image"):
        try:
            read_image(path)
        except DatasetError as err:
            broken.append((path, str(err).split(": ", 1)[-1]))
    return broken
