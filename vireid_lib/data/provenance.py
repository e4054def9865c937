"""Whether a dataset is the real one, decided by the data itself.

A folder is the real SYSU-MM01, RegDB or HITSZ-VCM only when its splits have the sizes the
dataset publishes (PROTOCOLS.md): a copied synthetic twin without its marker file, a subset, or
a re-made layout is not, however it is named. Three kinds:

* ``synthetic``: written by this workbook's generator (its marker file is there);
* ``real``: every published size matches;
* ``custom``: anything else in a real layout (a subset, another collection, an edited twin).

Only ``real`` runs stand beside a paper's numbers; a record keeps the measured sizes so the
README generator can check the claim again.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from .synthetic import is_synthetic

# The published split sizes (PROTOCOLS.md). RegDB: every one of a trial's four lists.
PUBLISHED: dict[str, dict[str, int]] = {
    "sysu": {"train_ids": 395, "queries": 3803, "all_search_gallery_trial0": 301},
    "regdb": {"train_ids": 206, "train_visible": 2060, "train_thermal": 2060, "test_visible": 2060, "test_thermal": 2060},
    "vcm": {"train_ids": 500, "train_ir_tracklets": 4291, "train_rgb_tracklets": 5460},
}
DATA_KINDS = ("real", "synthetic", "custom")


def measure(dataset: str, reader, trial: int = 1) -> dict[str, int]:
    """The split sizes of ``reader`` that :data:`PUBLISHED` lists for ``dataset``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # split warnings (short folders, unmatched queries) are reported elsewhere
        if dataset == "sysu":
            visible, infrared = reader.train()
            return {"train_ids": len({r.pid for r in visible + infrared}), "queries": len(reader.query()),
                    "all_search_gallery_trial0": len(reader.gallery("all", 0))}
        if dataset == "regdb":
            visible, infrared = reader.train(trial)
            split = reader.split(trial, "v2t")
            return {"train_ids": len({r.pid for r in visible + infrared}), "train_visible": len(visible),
                    "train_thermal": len(infrared), "test_visible": len(split.query), "test_thermal": len(split.gallery)}
        if dataset == "vcm":
            visible, infrared = reader.train()
            return {"train_ids": len({r.pid for r in visible + infrared}), "train_ir_tracklets": len(infrared),
                    "train_rgb_tracklets": len(visible)}
    raise ValueError(f"dataset={dataset!r} has no published sizes; use one of {sorted(PUBLISHED)}.")


def is_published(dataset: str, sizes: dict) -> bool:
    """True when ``sizes`` are exactly the published sizes of ``dataset``."""
    return dataset in PUBLISHED and dict(sizes or {}) == PUBLISHED[dataset]


def data_kind(dataset: str, root: Path | str, reader, trial: int = 1) -> tuple[str, dict[str, int]]:
    """(kind, measured sizes) of the dataset at ``root`` (see the module doc)."""
    sizes = measure(dataset, reader, trial)
    if is_synthetic(root):
        return "synthetic", sizes
    return ("real" if is_published(dataset, sizes) else "custom"), sizes
