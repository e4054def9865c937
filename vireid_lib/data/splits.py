"""Protocol-level checks and the JSON form of a split, shared by every dataset reader."""

from __future__ import annotations

import warnings
from pathlib import Path

from .errors import DatasetError
from .records import ImageRecord, Split, TrackletRecord


def check_query_matches(split: Split, strict: bool) -> None:
    """Check that query identities are found in the gallery.

    ``strict`` (RegDB: lists paired by construction) makes any absent identity an error.
    Otherwise (SYSU-MM01 indoor search, HITSZ-VCM after the length filter) the protocol
    itself leaves some queries without a true match and the scoring skips them: that is
    reported as a warning, and only a split where *no* query can match is an error.
    """
    gallery_pids = {r.pid for r in split.gallery}
    query_pids = sorted({r.pid for r in split.query})
    missing = [pid for pid in query_pids if pid not in gallery_pids]
    split.description["query_ids_without_gallery_match"] = missing
    where = ", ".join(f"{k}={v}" for k, v in split.description.items() if k != "query_ids_without_gallery_match")
    if missing and (strict or len(missing) == len(query_pids)):
        raise DatasetError(
            f"{where}: query identities {missing[:10]}{' ...' if len(missing) > 10 else ''} have no "
            "image in the gallery, so they can never be matched. Check that the query and gallery "
            "files belong to the same trial and dataset root."
        )
    if missing:
        warnings.warn(
            f"{where}: {len(missing)} of {len(query_pids)} query identities have no gallery "
            "match; the official scoring skips their queries.",
            stacklevel=3,
        )


def split_to_json(split: Split, root: Path, frame_indices=None) -> dict:
    """The split as ``{"query": [...], "gallery": [...]}`` with paths relative to ``root``.

    Each item is ``{"paths": [...], "pid": int, "camid": int}``: one path for an image, the
    sampled test frames (``frame_indices(n) -> indices``) for a tracklet. This is the
    format others diff against their own implementation, so it holds nothing else.
    """
    root = Path(root)

    def item(record: ImageRecord | TrackletRecord) -> dict:
        if isinstance(record, TrackletRecord):
            frames = record.frames
            if frame_indices is not None:
                frames = [frames[i] for i in frame_indices(len(frames))]
        else:
            frames = [record.path]
        return {
            "paths": [Path(p).relative_to(root).as_posix() for p in frames],
            "pid": int(record.pid),
            "camid": int(record.camid),
        }

    return {"query": [item(r) for r in split.query], "gallery": [item(r) for r in split.gallery]}
