"""HITSZ-VCM reader: tracklets from the ``info/`` metadata, both test directions.

Follows MITML's ``data_manager.py`` (the reader every VCM paper reports with):

* ``track_*_info.txt`` rows are ``modality start end pid camid``; modality 1 is infrared,
  anything else visible; frames are lines ``start..end`` (1-based, inclusive) of the
  matching ``*_name.txt``;
* a frame name decodes to ``<pid>/<ir|rgb>/<camera>/<file>`` (see :func:`decode_frame_name`);
* the query rows come from the *last* line of ``query_IDX.txt`` (1-based) and are taken from
  the unfiltered test rows; the gallery is every other row in ascending order; only then are
  tracklets shorter than 12 frames dropped, from train, query and gallery alike;
* training pids are relabelled 0..N-1 in ascending order over *all* training rows, before
  the length filter (the official code builds the map first).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .errors import DatasetError
from .io import read_text_lines, require_dir
from .records import INFRARED, VISIBLE, Split, TrackletRecord
from .splits import check_query_matches

MIN_SEQ_LEN = 12
DIRECTIONS = ("ir2rgb", "rgb2ir")
INFO_FILES = ("train_name.txt", "track_train_info.txt", "test_name.txt", "track_test_info.txt", "query_IDX.txt")
_LAYOUT_HINT = (
    "Point data_root at the HITSZ-VCM folder that holds the identity folders (or Train/ and "
    "Test/) and the info files, either at the root or in info/ (see the README)."
)


def decode_frame_name(name: str) -> str:
    """Relative image path of a VCM frame name, as MITML's ``decoder_pic_path`` builds it.

    Identity folder = first 4 characters; character 5 is '1' for infrared ('ir'), anything
    else visible ('rgb'); camera folder = from the first 'D' up to the first 'T'; file =
    everything after the first 'F'. E.g. ``0001M1D1T001F005.jpg`` -> ``0001/ir/D1/005.jpg``.
    """
    d, t, f = name.find("D"), name.find("T"), name.find("F")
    if len(name) < 6 or not name[:4].isdigit() or min(d, t, f) < 0 or not d < t or f == len(name) - 1:
        raise DatasetError(
            f"frame name {name!r} does not decode: expected 4 identity digits, a modality digit at "
            "index 5, then 'D<camera>T...F<file>' (e.g. 0001M1D1T001F005.jpg)."
        )
    modality = "ir" if name[5] == "1" else "rgb"
    return f"{name[:4]}/{modality}/{name[d:t]}/{name[f + 1:]}"


def frame_chunks(n: int, seq_len: int) -> np.ndarray:
    """The ``seq_len`` x k chunk table from which frames are sampled (MITML's ``sample_clip``).

    k = ceil(n / seq_len); the indices 0..n-1 are padded with n-1 up to k * seq_len entries
    and cut into seq_len consecutive chunks of k.
    """
    if n < 1:
        raise DatasetError(f"a tracklet needs at least one frame to be sampled, got n={n}.")
    if seq_len < 1:
        raise DatasetError(f"seq_len={seq_len!r} must be a positive integer (MITML and CST use 6, STAR 12).")
    k = math.ceil(n / seq_len)
    padded = np.minimum(np.arange(k * seq_len), n - 1)
    return padded.reshape(seq_len, k)


def sample_test_frames(n: int, seq_len: int) -> list[int]:
    """Deterministic test frames: the first index of every chunk (n=13, S=6 -> 0,3,6,9,12,12)."""
    return frame_chunks(n, seq_len)[:, 0].tolist()


def sample_train_frames(n: int, seq_len: int, generator: torch.Generator | None = None) -> list[int]:
    """Training frames: one uniformly random index from every chunk.

    Draws from torch's RNG so that DataLoader workers, which torch seeds one by one, give
    reproducible clips without any global NumPy state.
    """
    chunks = frame_chunks(n, seq_len)
    picks = torch.randint(0, chunks.shape[1], (seq_len,), generator=generator).numpy()
    return chunks[np.arange(seq_len), picks].tolist()


class HITSZVCM:
    """Reads a HITSZ-VCM root: merged or ``Train/`` + ``Test/`` image trees, info at root or ``info/``."""

    NAME = "HITSZ-VCM"  # as tables print it
    PUBLISHED = {"train_ids": 500, "train_ir_tracklets": 4291, "train_rgb_tracklets": 5460}  # PROTOCOLS.md
    DIRECTIONS = DIRECTIONS

    def __init__(self, root: Path | str, min_seq_len: int = MIN_SEQ_LEN) -> None:
        self.root = require_dir(Path(root), "HITSZ-VCM root", _LAYOUT_HINT)
        self.min_seq_len = min_seq_len
        info = self.root / "info"
        self.info_dir = info if (info / "track_train_info.txt").is_file() else self.root
        missing = [n for n in INFO_FILES if not (self.info_dir / n).is_file()]
        if missing:
            raise DatasetError(
                f"HITSZ-VCM info files {missing} are missing from {self.info_dir} (also looked in "
                f"{info}). {_LAYOUT_HINT}"
            )
        split_tree = (self.root / "Train").is_dir() and (self.root / "Test").is_dir()
        self.train_images = self.root / "Train" if split_tree else self.root
        self.test_images = self.root / "Test" if split_tree else self.root

    # -- metadata ---------------------------------------------------------------------
    def frame_names(self, subset: str) -> list[str]:
        """Every frame of ``subset`` ("train" or "test") as a relative image path, in name-list order,
        short tracklets included (what a per-frame precomputation such as skeleton extraction needs)."""
        if subset not in ("train", "test"):
            raise DatasetError(f"subset={subset!r} must be 'train' or 'test'.")
        return self._names(f"{subset}_name.txt")

    def _names(self, file: str) -> list[str]:
        """The name list's frames as relative image paths, decoded line by line (errors name the line)."""
        path = self.info_dir / file
        names = [line.strip() for line in read_text_lines(path, "HITSZ-VCM name list", _LAYOUT_HINT)]
        while names and not names[-1]:
            names.pop()
        if not names:
            raise DatasetError(f"HITSZ-VCM name list {path} is empty. Restore it from the info archive.")
        decoded = []
        for line, name in enumerate(names, start=1):
            try:
                decoded.append(decode_frame_name(name))
            except DatasetError as err:
                raise DatasetError(f"{path}, line {line}: {err} Restore the file from the info archive.") from None
        return decoded

    def _tracks(self, file: str, num_names: int) -> np.ndarray:
        path = self.info_dir / file
        hint = "Each line must be five integers 'modality start end pid camid'; restore the file from the info archive."
        rows = []
        for number, line in enumerate(read_text_lines(path, "HITSZ-VCM track info", hint), start=1):
            if not line.strip():
                continue
            fields = line.split()
            if len(fields) != 5 or not all(f.lstrip("-").isdigit() for f in fields):
                raise DatasetError(f"HITSZ-VCM track info {path}, line {number}: {line!r} is malformed. {hint}")
            row = [int(f) for f in fields]
            if not 1 <= row[1] <= row[2] <= num_names:
                raise DatasetError(
                    f"HITSZ-VCM track info {path}, line {number}: frames {row[1]}..{row[2]} fall outside "
                    f"the {num_names} lines of the matching name list. Use the info files from one release."
                )
            rows.append(row)
        if not rows:
            raise DatasetError(f"HITSZ-VCM track info {path} is empty. {hint}")
        return np.asarray(rows, dtype=np.int64)

    def _query_rows(self, num_rows: int) -> np.ndarray:
        path = self.info_dir / "query_IDX.txt"
        hint = "It holds 1-based row numbers into track_test_info.txt, space separated; restore it from the info archive."
        lines = [line for line in read_text_lines(path, "HITSZ-VCM query index", hint) if line.strip()]
        if not lines:
            raise DatasetError(f"HITSZ-VCM query index {path} is empty. {hint}")
        # Official: every line overwrites the previous one, so only the last line counts.
        tokens = lines[-1].split()
        if not all(t.isdigit() for t in tokens):
            raise DatasetError(f"HITSZ-VCM query index {path}: last line {lines[-1][:80]!r} is not a list of integers. {hint}")
        rows = np.asarray([int(t) for t in tokens], dtype=np.int64) - 1
        bad = rows[(rows < 0) | (rows >= num_rows)]
        if bad.size:
            raise DatasetError(
                f"HITSZ-VCM query index {path} names row {int(bad[0]) + 1}, but track_test_info.txt has "
                f"{num_rows} rows. Use the info files from one release. {hint}"
            )
        return rows

    def _tracklets(self, names: list[str], tracks: np.ndarray, rows: Sequence[int], images: Path,
                   labels: dict[int, int] | None = None) -> list[TrackletRecord]:
        records = []
        for row in rows:
            modality_code, start, end, pid, camid = (int(v) for v in tracks[row])
            if end - start + 1 < self.min_seq_len:
                continue
            frames = tuple(images / n for n in names[start - 1:end])  # names are decoded paths (see _names)
            modality = INFRARED if modality_code == 1 else VISIBLE
            records.append(TrackletRecord(frames, labels[pid] if labels else pid, camid, modality, int(row)))
        for record in records[:: max(1, len(records) // 50)]:
            # A sample of first frames catches a wrong image tree (merged vs Train/Test) early.
            if not record.frames[0].is_file():
                raise DatasetError(
                    f"HITSZ-VCM frame {record.frames[0]} (tracklet row {record.row + 1}) does not exist. "
                    f"Images are looked up under {images}. {_LAYOUT_HINT}"
                )
        return records

    # -- splits -----------------------------------------------------------------------
    def train(self) -> tuple[list[TrackletRecord], list[TrackletRecord]]:
        """Visible and infrared training tracklets of at least ``min_seq_len`` frames, pids 0..N-1."""
        names = self._names("train_name.txt")
        tracks = self._tracks("track_train_info.txt", len(names))
        labels = {pid: label for label, pid in enumerate(sorted(set(tracks[:, 3].tolist())))}
        records = self._tracklets(names, tracks, range(len(tracks)), self.train_images, labels)
        visible = [r for r in records if r.modality == VISIBLE]
        infrared = [r for r in records if r.modality == INFRARED]
        for name, subset in (("visible", visible), ("infrared", infrared)):
            if not subset:
                raise DatasetError(
                    f"HITSZ-VCM training set has no {name} tracklet of at least {self.min_seq_len} frames "
                    f"in {self.info_dir / 'track_train_info.txt'}."
                )
        return visible, infrared

    def split(self, direction: str = "ir2rgb") -> Split:
        """Query and gallery tracklets; ``ir2rgb`` queries with the query_IDX rows."""
        if direction not in DIRECTIONS:
            raise DatasetError(f"direction={direction!r} is not a HITSZ-VCM direction; use one of {DIRECTIONS}.")
        names = self._names("test_name.txt")
        tracks = self._tracks("track_test_info.txt", len(names))
        query_rows = self._query_rows(len(tracks))
        chosen = set(query_rows.tolist())
        other_rows = [row for row in range(len(tracks)) if row not in chosen]
        if direction == "rgb2ir":
            query_rows, other_rows = other_rows, query_rows
        split = Split(
            query=self._tracklets(names, tracks, query_rows, self.test_images),
            gallery=self._tracklets(names, tracks, other_rows, self.test_images),
            description={"dataset": "vcm", "direction": direction, "min_seq_len": self.min_seq_len},
        )
        for role in ("query", "gallery"):
            if not getattr(split, role):
                raise DatasetError(
                    f"HITSZ-VCM {direction} {role} is empty after dropping tracklets shorter than "
                    f"{self.min_seq_len} frames; check {self.info_dir / 'query_IDX.txt'} and track_test_info.txt."
                )
        check_query_matches(split, strict=False)
        return split

    # -- what summary tables, provenance and the command line read (vireid_lib.data.summary, .provenance) --------
    def sizes(self, trial: int | None = None) -> dict[str, int]:
        """The sizes :attr:`PUBLISHED` lists, measured on this copy."""
        visible, infrared = self.train()
        return {"train_ids": len({r.pid for r in visible + infrared}), "train_ir_tracklets": len(infrared),
                "train_rgb_tracklets": len(visible)}

    def overview(self, trial: int | None = None) -> list[tuple[str, str, list | Split]]:
        """(protocol, subset, records or split) of every subset a summary table shows."""
        visible, infrared = self.train()
        return [("-", "train", visible + infrared)] + [(d, "", self.split(d)) for d in DIRECTIONS]

    def used_records(self, trial: int | None = None) -> list[TrackletRecord]:
        visible, infrared = self.train()
        split = self.split("ir2rgb")
        return visible + infrared + split.query + split.gallery

    def cli_split(self, trial: int | None, direction: str | None, mode: str = "all", shot: int = 1) -> Split:
        return self.split(direction or "ir2rgb")

    @staticmethod
    def test_frame_sampler(seq_len: int | None):
        """The test frames the official code samples from a tracklet of ``n`` frames (default S = 6)."""
        return functools.partial(sample_test_frames, seq_len=seq_len or 6)
