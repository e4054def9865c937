"""SYSU-MM01 reader: the official training set, query set and per-trial galleries.

Everything follows the official code used by every paper in the workbook
(Cross-Modal-Re-ID-baseline ``pre_process_sysu.py`` and ``data_manager.py``):

* the folder walk: identities in ascending order, then cameras in a fixed order, then files
  sorted by name; camera and identity come from the path ``camC/PPPP/NNNN.jpg``;
* training = ``train_id`` + ``val_id``, labels 0..N-1 in ascending identity order;
* the query = every infrared image (cam3 then cam6) of every test identity, in both modes;
* the gallery of trial ``t`` is drawn with Python's ``random`` seeded with ``t``, one
  ``random.choice`` (single-shot) or ``random.sample(files, 10)`` (multi-shot) per
  (identity, camera) in exactly the official loop order; any other order gives other
  galleries than the papers'. ``walk="camera"`` draws in IV-ReID's order instead (cameras,
  then identities: ``data/sysumm.py`` walks each camera folder), which only its model selection uses.
"""

from __future__ import annotations

import random
import warnings
from pathlib import Path

from .errors import DatasetError
from .io import read_text_lines, require_dir, sorted_entries
from .records import INFRARED, VISIBLE, ImageRecord, Split
from .splits import check_query_matches

VISIBLE_CAMERAS = {"all": (1, 2, 4, 5), "indoor": (1, 2)}
INFRARED_CAMERAS = (3, 6)
SEARCH_MODES = tuple(VISIBLE_CAMERAS)
SHOTS = (1, 10)
TRIALS = range(10)
WALKS = ("identity", "camera")
IMAGE_SUFFIX = ".jpg"

_LAYOUT_HINT = (
    "Point data_root at the SYSU-MM01 folder that holds cam1 ... cam6 and exp/ "
    "(the layout is described in the README)."
)


class SYSUMM01:
    """Reads a SYSU-MM01 root laid out as ``cam1..cam6/PPPP/NNNN.jpg`` plus ``exp/*_id.txt``."""

    NAME = "SYSU-MM01"  # as tables print it
    PUBLISHED = {"train_ids": 395, "queries": 3803, "all_search_gallery_trial0": 301}  # PROTOCOLS.md
    DIRECTIONS: tuple[str, ...] = ()  # infrared queries, visible galleries only

    def __init__(self, root: Path | str) -> None:
        self.root = require_dir(Path(root), "SYSU-MM01 root", _LAYOUT_HINT)
        for cam in (*VISIBLE_CAMERAS["all"], *INFRARED_CAMERAS):
            require_dir(self.root / f"cam{cam}", "SYSU-MM01 camera folder", _LAYOUT_HINT)
        require_dir(self.root / "exp", "SYSU-MM01 split folder", _LAYOUT_HINT)
        self.train_ids = sorted(self._read_ids("train_id.txt") + self._read_ids("val_id.txt"))
        self.test_ids = sorted(self._read_ids("test_id.txt"))
        overlap = sorted(set(self.train_ids) & set(self.test_ids))
        if overlap:
            raise DatasetError(
                f"identities {overlap[:10]} appear in both exp/test_id.txt and the training "
                f"lists of {self.root / 'exp'}; the official split is disjoint. Restore the "
                "original exp/ files."
            )

    # -- metadata ---------------------------------------------------------------------
    def _read_ids(self, name: str) -> list[int]:
        # Official: only the first line counts, as a comma-separated list of integers.
        path = self.root / "exp" / name
        hint = "Restore it from the SYSU-MM01 archive: its first line is a comma-separated id list."
        lines = read_text_lines(path, "SYSU-MM01 split file", hint)
        if not lines or not lines[0].strip():
            raise DatasetError(f"SYSU-MM01 split file {path} has an empty first line. {hint}")
        ids = []
        for token in lines[0].split(","):
            token = token.strip()
            if not token:
                continue  # a trailing comma carries no identity
            if not token.isdigit():
                raise DatasetError(f"SYSU-MM01 split file {path}: {token!r} is not an identity number. {hint}")
            ids.append(int(token))
        if not ids:
            raise DatasetError(f"SYSU-MM01 split file {path} lists no identity. {hint}")
        if len(set(ids)) != len(ids):
            raise DatasetError(f"SYSU-MM01 split file {path} lists an identity twice. {hint}")
        return ids

    def _files(self, cam: int, pid: int) -> list[str] | None:
        """Sorted file names of one identity folder, or None when the camera never saw it."""
        folder = self.root / f"cam{cam}" / f"{pid:04d}"
        if not folder.is_dir():
            return None
        names = sorted_entries(folder)
        # The official sampling counts every entry of the folder, so a stray file would
        # silently change the galleries; refuse it instead.
        strays = [n for n in names if not n.endswith(IMAGE_SUFFIX) or not (folder / n).is_file()]
        if strays:
            raise DatasetError(
                f"SYSU-MM01 folder {folder} holds {strays[:3]}, which are not {IMAGE_SUFFIX} images. "
                "The official gallery sampling counts every entry, so remove them."
            )
        if not names:
            raise DatasetError(
                f"SYSU-MM01 folder {folder} is empty; the official code fails on it. Remove the "
                "empty folder or restore its images."
            )
        return names

    def _record(self, cam: int, pid: int, name: str, label: int) -> ImageRecord:
        modality = INFRARED if cam in INFRARED_CAMERAS else VISIBLE
        return ImageRecord(self.root / f"cam{cam}" / f"{pid:04d}" / name, label, cam, modality)

    def _walk(self, pids: list[int], cameras: tuple[int, ...], labels: dict[int, int] | None = None) -> list[ImageRecord]:
        records = []
        for pid in pids:
            for cam in cameras:
                for name in self._files(cam, pid) or ():
                    records.append(self._record(cam, pid, name, labels[pid] if labels else pid))
        return records

    # -- splits -----------------------------------------------------------------------
    def train(self) -> tuple[list[ImageRecord], list[ImageRecord]]:
        """Visible and infrared training images with labels 0..N-1 (ascending identity)."""
        labels = {pid: label for label, pid in enumerate(self.train_ids)}
        visible = self._walk(self.train_ids, VISIBLE_CAMERAS["all"], labels)
        infrared = self._walk(self.train_ids, INFRARED_CAMERAS, labels)
        for name, records in (("visible", visible), ("infrared", infrared)):
            if not records:
                raise DatasetError(
                    f"SYSU-MM01 training set under {self.root} has no {name} image for the "
                    "identities of exp/train_id.txt and exp/val_id.txt. " + _LAYOUT_HINT
                )
        return visible, infrared

    def query(self, mode: str = "all") -> list[ImageRecord]:
        """Every infrared image of every test identity; the same in both search modes."""
        _check_mode(mode)
        query = self._walk(self.test_ids, INFRARED_CAMERAS)
        if not query:
            raise DatasetError(
                f"SYSU-MM01 query under {self.root} is empty: no cam3/cam6 folder exists for the "
                "identities of exp/test_id.txt. " + _LAYOUT_HINT
            )
        return query

    def gallery(self, mode: str = "all", trial: int = 0, shot: int = 1, walk: str = "identity") -> list[ImageRecord]:
        """The visible gallery of one trial, drawn exactly as the official code draws it.

        ``trial`` seeds Python's ``random`` (any non-negative integer: IV-ReID's selection galleries use
        2019 + 33 k); ``walk`` is the order of the draws: ``"identity"`` (each identity's cameras in turn, the
        official ``process_gallery_sysu``) or ``"camera"`` (each camera's identities in turn, IV-ReID's
        ``_process_dir``, whose file listings are unsorted; sorted here, so its exact draws cannot be repeated).
        """
        _check_mode(mode)
        if shot not in SHOTS:
            raise DatasetError(f"shot={shot!r} is not a SYSU-MM01 gallery setting; use one of {SHOTS}.")
        if isinstance(trial, bool) or not isinstance(trial, int) or trial < 0:
            raise DatasetError(f"trial={trial!r} must be a non-negative integer (the papers use 0..9).")
        if walk not in WALKS:
            raise DatasetError(f"walk={walk!r} is not a gallery draw order; use one of {WALKS}.")
        rng = random.Random(trial)  # same stream as the official random.seed(trial)
        short: list[str] = []
        gallery = []
        cameras = VISIBLE_CAMERAS[mode]
        order = ([(pid, cam) for pid in self.test_ids for cam in cameras] if walk == "identity" else
                 [(pid, cam) for cam in cameras for pid in self.test_ids])
        for pid, cam in order:
            names = self._files(cam, pid)
            if names is None:
                continue
            if shot == 1:
                chosen = [rng.choice(names)]
            elif len(names) >= shot:
                chosen = rng.sample(names, shot)
            else:
                # The official multi-shot code crashes here; take every image, draw nothing.
                chosen = names
                short.append(f"cam{cam}/{pid:04d}")
            gallery.extend(self._record(cam, pid, name, pid) for name in chosen)
        if short:
            warnings.warn(
                f"SYSU-MM01 {shot}-shot gallery: {len(short)} folders hold fewer than {shot} images "
                f"({', '.join(short[:5])}{', ...' if len(short) > 5 else ''}); all their images were "
                "taken (the official code would stop with an error).",
                stacklevel=2,
            )
        if not gallery:
            raise DatasetError(
                f"SYSU-MM01 {mode}-search gallery under {self.root} is empty: no visible folder "
                f"(cameras {VISIBLE_CAMERAS[mode]}) exists for the test identities. " + _LAYOUT_HINT
            )
        return gallery

    def split(self, mode: str = "all", trial: int = 0, shot: int = 1) -> Split:
        split = Split(
            query=self.query(mode),
            gallery=self.gallery(mode, trial, shot),
            description={"dataset": "sysu", "mode": mode, "trial": trial, "shot": shot},
        )
        check_query_matches(split, strict=False)
        return split

    # -- what summary tables, provenance and the command line read (vireid_lib.data.summary, .provenance) --------
    def sizes(self, trial: int | None = None) -> dict[str, int]:
        """The split sizes :attr:`PUBLISHED` lists, measured on this copy."""
        visible, infrared = self.train()
        return {"train_ids": len({r.pid for r in visible + infrared}), "queries": len(self.query()),
                "all_search_gallery_trial0": len(self.gallery("all", 0))}

    def overview(self, trial: int | None = None) -> list[tuple[str, str, list | Split]]:
        """(protocol, subset, records or split) of every subset a summary table shows."""
        visible, infrared = self.train()
        return [("-", "train", visible + infrared)] + [
            (f"{mode}-search, trial {trial or 0}", "", self.split(mode, trial or 0, 1)) for mode in SEARCH_MODES]

    def used_records(self, trial: int | None = None) -> list[ImageRecord]:
        """Every record the training set and any trial's galleries (single- and multi-shot) read."""
        visible, infrared = self.train()
        pool = [r for mode in SEARCH_MODES for t in TRIALS for shot in (1, 10) for r in self.gallery(mode, t, shot)]
        return visible + infrared + self.query() + pool

    def cli_split(self, trial: int | None, direction: str | None, mode: str = "all", shot: int = 1) -> Split:
        return self.split(mode, 0 if trial is None else trial, shot)


def _check_mode(mode: str) -> None:
    if mode not in VISIBLE_CAMERAS:
        raise DatasetError(f"mode={mode!r} is not a SYSU-MM01 search mode; use one of {SEARCH_MODES}.")

