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
from .bupt import PAIRINGS as BUPT_PAIRINGS
from .llcm import DIRECTIONS as LLCM_DIRECTIONS
from .records import INFRARED, VISIBLE
from .regdb import DIRECTIONS as REGDB_DIRECTIONS
from .sysu import SEARCH_MODES
from .vcm import DIRECTIONS as VCM_DIRECTIONS


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

    Images for SYSU-MM01, RegDB and LLCM, tracklets (with frame counts and lengths) for HITSZ-VCM.
    """
    dataset = open_dataset(kind, root)
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the table itself reports unmatched query identities
        if kind == "sysu":
            visible, infrared = dataset.train()
            rows.append(_row("train", visible + infrared, protocol="-"))
            for mode in SEARCH_MODES:
                rows += _split_rows(dataset.split(mode, trial or 0, 1), f"{mode}-search, trial {trial or 0}")
        elif kind == "regdb":
            visible, infrared = dataset.train(trial or 1)
            rows.append(_row("train", visible + infrared, protocol=f"trial {trial or 1}"))
            for direction in REGDB_DIRECTIONS:
                rows += _split_rows(dataset.split(trial or 1, direction), f"{direction}, trial {trial or 1}")
        elif kind == "bupt":
            for split in ("train", "auxiliary"):
                visible, infrared = dataset.train(split)
                rows.append(_row(split, visible + infrared, protocol="-"))
            for direction in BUPT_PAIRINGS:
                rows += _split_rows(dataset.split(direction), direction)
        elif kind == "llcm":
            visible, infrared = dataset.train()
            rows.append(_row("train", visible + infrared, protocol="-"))
            for direction in LLCM_DIRECTIONS:
                rows += _split_rows(dataset.split(trial or 0, direction), f"{direction}, trial {trial or 0}")
        else:
            visible, infrared = dataset.train()
            rows.append(_row("train", visible + infrared, protocol="-"))
            for direction in VCM_DIRECTIONS:
                rows += _split_rows(dataset.split(direction), direction)
    columns = ["protocol", "subset", "identities", "visible", "infrared", "cameras"]
    frame = pd.DataFrame(rows).convert_dtypes()  # integer columns stay integers beside blanks
    frame = frame[columns + [c for c in frame.columns if c not in columns]]
    return frame.astype(object).where(frame.notna(), "")


def image_paths(kind: str, root: Path | str, trial: int | None = None) -> list[Path]:
    """Every image file the dataset's training and test splits read, once each, sorted."""
    dataset = open_dataset(kind, root)
    paths: set = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "sysu":
            visible, infrared = dataset.train()
            pool = [r for mode in ("all", "indoor") for t in range(10) for shot in (1, 10) for r in dataset.gallery(mode, t, shot)]
            records = visible + infrared + dataset.query() + pool
        elif kind == "regdb":
            trials = [trial] if trial is not None else range(1, 11)
            records = []
            for t in trials:
                split = dataset.split(t, "v2t")
                records += [r for part in (*dataset.train(t), split.query, split.gallery) for r in part]
        elif kind == "bupt":
            records = [r for split in ("train", "auxiliary") for part in dataset.train(split) for r in part]
            records += dataset.test("query", False) + dataset.test("gallery", False)
        elif kind == "llcm":  # every test image: the draws of any trial come from them
            visible, infrared = dataset.train()
            records = visible + infrared + dataset.test_images(VISIBLE) + dataset.test_images(INFRARED)
        else:
            visible, infrared = dataset.train()
            split = dataset.split("ir2rgb")
            records = visible + infrared + split.query + split.gallery
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
