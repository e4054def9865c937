"""BUPTCampus reader (Du et al., "Video-based Visible-Infrared Person Re-Identification with Auxiliary Samples",
IEEE TIFS 2023; official code ``dyhBUPT/BUPTCampus``: ``dataloader.py``, ``sampler.py``, ``evaluation.py``,
``test.py``, ``utils.py``).

Layout (the folder that holds ``DATA/``; the official ``--data_root`` is ``DATA`` itself, every other file one
level up):

* ``data_paths.json``: identity -> ``"IR"`` / ``"RGB"`` -> camera -> tracklet id -> the tracklet's frame paths,
  relative to ``DATA/``, in the listed order (all keys strings);
* ``train.txt``, ``train_auxiliary.txt``, ``query.txt``, ``gallery.txt``: one ``pid modality camera tracklet``
  per line, single spaces; training lines name a paired tracklet (``RGB/IR``: its visible and infrared frames at
  the same identity, camera and tracklet), test lines one modality (``RGB`` or ``IR``);
* cameras ``LS3, G25, CQ1, W4, TSG1, TSG2`` are 0..5 (``utils.py``).

Training labels follow ``dataloader.py``: the identities of a list sorted **as strings** (so ``"10"`` comes
before ``"9"``), each list (training, auxiliary) with its own labels. Test identities are the integers.

Test frames (``test.py --test_frame_sample``): ``uniform`` (the default: ``int(i L / T)`` for i < T), ``first_half``,
``second_half`` or ``dense`` (every frame).

The test loader's ``ConsistentModalitySampler`` orders every set visible first and drops the last
``len(visible) % 64`` visible tracklets so that each batch holds one modality: the default follows it
(``drop_visible_remainder=True``), the switch keeps them. (Where the remainder is 0 the code's slice ``[:-0]``
drops every visible tracklet, as the cut does for fewer than 64: the workbook keeps them all there and warns.)

Scoring (``evaluation.py``): no camera, modality or tracklet filter, a plain CMC and AP over the whole ranked
gallery, no mINP (reported as an extra); ``test.py`` prints RGB->RGB, RGB->IR, IR->RGB, IR->IR and all against
all. The workbook's directions: ``rgb2ir`` (visible queries, infrared gallery), ``ir2rgb``, ``rgb2rgb``,
``ir2ir`` and ``all``.
"""

from __future__ import annotations

import functools
import json
import warnings
from pathlib import Path

from .errors import DatasetError
from .io import read_text_lines, require_dir, require_file
from .records import INFRARED, VISIBLE, Split, TrackletRecord
from .splits import check_query_matches

CAMERAS = {"LS3": 0, "G25": 1, "CQ1": 2, "W4": 3, "TSG1": 4, "TSG2": 5}
MODALITIES = {"RGB": VISIBLE, "IR": INFRARED}
LISTS = {"train": "train.txt", "auxiliary": "train_auxiliary.txt", "query": "query.txt", "gallery": "gallery.txt"}
PAIRINGS = {"rgb2ir": (VISIBLE, INFRARED), "ir2rgb": (INFRARED, VISIBLE), "rgb2rgb": (VISIBLE, VISIBLE),
            "ir2ir": (INFRARED, INFRARED), "all": (None, None)}
FRAME_SAMPLES = ("uniform", "first_half", "second_half", "dense")
TEST_BATCH = 64  # test.py's --test_bs ("please don't change it"): the size the visible remainder is cut to
_LAYOUT_HINT = ("Point data_root at the BUPTCampus folder that holds DATA/, data_paths.json and the train, "
                "train_auxiliary, query and gallery lists (the layout is described in the README).")


def sample_frames(length: int, seq_len: int = 10, mode: str = "uniform") -> list[int]:
    """The test frames of a tracklet of ``length`` frames, as ``dataloader.py``'s test dataset picks them."""
    if mode not in FRAME_SAMPLES:
        raise DatasetError(f"frame sampling {mode!r} is not one of {FRAME_SAMPLES}.")
    if length < 1 or seq_len < 1:
        raise DatasetError(f"a tracklet of {length} frames cannot give {seq_len} test frames.")
    if mode == "dense":
        return list(range(length))
    if mode == "uniform":
        return [int(i * length / seq_len) for i in range(seq_len)]
    half = length // 2
    if mode == "first_half":
        return [int(i * half / seq_len) for i in range(seq_len)]
    return [int(half + i * (length - half) / seq_len) for i in range(seq_len)]


class BUPTCampus:
    """Reads a BUPTCampus root: ``DATA/``, ``data_paths.json`` and the four lists beside it."""

    NAME = "BUPTCampus"  # as tables print it
    # 1,074 training identities (test.py's class_num), 3,080 in all (its README)
    PUBLISHED = {"train_ids": 1074, "ids": 3080}
    DIRECTIONS = tuple(PAIRINGS)

    def __init__(self, root: Path | str) -> None:
        self.root = require_dir(Path(root), "BUPTCampus root", _LAYOUT_HINT)
        self.data = require_dir(self.root / "DATA", "BUPTCampus image folder", _LAYOUT_HINT)
        path = require_file(self.root / "data_paths.json", "BUPTCampus frame index", _LAYOUT_HINT)
        try:
            self.paths = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DatasetError(f"BUPTCampus frame index {path} is not JSON ({err}); restore it from the archive.") \
                from None
        if not isinstance(self.paths, dict):
            raise DatasetError(f"BUPTCampus frame index {path} must map identities to modalities; restore it.")

    def _lines(self, split: str) -> list[tuple[str, str, str, str]]:
        path = self.root / LISTS[split]
        hint = "Restore it from the archive: each line is 'pid modality camera tracklet'."
        rows = []
        for number, line in enumerate(read_text_lines(path, "BUPTCampus list", hint), start=1):
            if not line.strip():
                continue
            fields = line.strip().split(" ")
            if len(fields) != 4 or not fields[0].isdigit() or fields[2] not in CAMERAS:
                raise DatasetError(f"BUPTCampus list {path}, line {number}: {line!r} is not 'pid modality camera "
                                   f"tracklet' with a camera of {tuple(CAMERAS)}. {hint}")
            rows.append(tuple(fields))
        if not rows:
            raise DatasetError(f"BUPTCampus list {path} is empty. {hint}")
        return rows

    def _frames(self, pid: str, modality: str, camera: str, tracklet: str, where: str) -> tuple[Path, ...]:
        try:
            frames = self.paths[pid][modality][camera][tracklet]
        except (KeyError, TypeError):
            raise DatasetError(f"{where}: data_paths.json has no {modality} tracklet {pid}/{camera}/{tracklet}; the "
                               "list and the frame index come from different copies. Restore both.") from None
        if not frames:
            raise DatasetError(f"{where}: tracklet {pid}/{modality}/{camera}/{tracklet} lists no frame.")
        return tuple(self.data / f for f in frames)

    def train(self, split: str = "train") -> tuple[list[TrackletRecord], list[TrackletRecord]]:
        """Visible and infrared training tracklets (``split``: ``"train"`` or ``"auxiliary"``), pair i of both
        lists the same tracklet; labels by the identities sorted as strings (``dataloader.py``)."""
        rows = self._lines(split)
        bad = [r for r in rows if r[1] != "RGB/IR"]
        if bad:
            raise DatasetError(f"BUPTCampus {LISTS[split]}: training lines name paired tracklets ('RGB/IR'), not "
                               f"{bad[0][1]!r}. Restore the original list.")
        labels = {pid: label for label, pid in enumerate(sorted({r[0] for r in rows}))}
        visible, infrared = [], []
        for number, (pid, _, camera, tracklet) in enumerate(rows):
            where = f"BUPTCampus {LISTS[split]}, line {number + 1}"
            for modality, out in (("RGB", visible), ("IR", infrared)):
                out.append(TrackletRecord(self._frames(pid, modality, camera, tracklet, where), labels[pid],
                                          CAMERAS[camera], MODALITIES[modality], number))
        return visible, infrared

    def test(self, split: str, drop_visible_remainder: bool = True) -> list[TrackletRecord]:
        """The query or gallery tracklets in the test loader's order: visible first, then infrared, each in list
        order, the visible ones cut to a multiple of 64 unless ``drop_visible_remainder=False``."""
        if split not in ("query", "gallery"):
            raise DatasetError(f"split={split!r}: the BUPTCampus test sets are 'query' and 'gallery'.")
        records = []
        for number, (pid, modality, camera, tracklet) in enumerate(self._lines(split)):
            if modality not in MODALITIES:
                raise DatasetError(f"BUPTCampus {LISTS[split]}, line {number + 1}: modality {modality!r} is not one "
                                   f"of {tuple(MODALITIES)}.")
            where = f"BUPTCampus {LISTS[split]}, line {number + 1}"
            records.append(TrackletRecord(self._frames(pid, modality, camera, tracklet, where), int(pid),
                                          CAMERAS[camera], MODALITIES[modality], number))
        visible = [r for r in records if r.modality == VISIBLE]
        infrared = [r for r in records if r.modality == INFRARED]
        cut = len(visible) % TEST_BATCH
        if drop_visible_remainder and visible and cut and cut < len(visible):
            visible = visible[:-cut]
        elif drop_visible_remainder and visible:
            # the official slice would leave no visible tracklet (fewer than one batch, or [:-0]), and its scoring
            # would then stop: every one is kept instead
            warnings.warn(f"BUPTCampus {LISTS[split]}: {len(visible)} visible tracklets, which the official sampler "
                          f"would drop entirely (fewer than {TEST_BATCH}, or a multiple of it); all are kept.",
                          stacklevel=2)
        return visible + infrared

    def split(self, direction: str = "rgb2ir", drop_visible_remainder: bool = True) -> Split:
        """The query and gallery of one of ``test.py``'s pairings (``rgb2ir``, ``ir2rgb``, ``rgb2rgb``, ``ir2ir``,
        ``all``)."""
        if direction not in PAIRINGS:
            raise DatasetError(f"direction={direction!r} is not a BUPTCampus pairing; use one of {tuple(PAIRINGS)}.")
        wanted_query, wanted_gallery = PAIRINGS[direction]
        query = [r for r in self.test("query", drop_visible_remainder) if wanted_query in (None, r.modality)]
        gallery = [r for r in self.test("gallery", drop_visible_remainder) if wanted_gallery in (None, r.modality)]
        split = Split(query=query, gallery=gallery, description={"dataset": "bupt", "direction": direction})
        check_query_matches(split, strict=False)
        return split

    # -- what summary tables, provenance and the command line read (vireid_lib.data.summary, .provenance) --------
    def sizes(self, trial: int | None = None) -> dict[str, int]:
        """The sizes :attr:`PUBLISHED` lists, measured on this copy (identities over all four lists)."""
        visible, _ = self.train()
        ids = {int(line.split(" ")[0]) for name in ("train.txt", "train_auxiliary.txt", "query.txt", "gallery.txt")
               for line in (self.root / name).read_text().splitlines() if line.strip()}
        return {"train_ids": len({r.pid for r in visible}), "ids": len(ids)}

    def overview(self, trial: int | None = None) -> list[tuple[str, str, list | Split]]:
        """(protocol, subset, records or split) of every subset a summary table shows."""
        parts: list = [("-", split, [r for part in self.train(split) for r in part]) for split in ("train", "auxiliary")]
        return parts + [(direction, "", self.split(direction)) for direction in PAIRINGS]

    def used_records(self, trial: int | None = None) -> list[TrackletRecord]:
        records = [r for split in ("train", "auxiliary") for part in self.train(split) for r in part]
        return records + self.test("query", False) + self.test("gallery", False)

    def cli_split(self, trial: int | None, direction: str | None, mode: str = "all", shot: int = 1) -> Split:
        return self.split(direction or "rgb2ir")

    @staticmethod
    def test_frame_sampler(seq_len: int | None):
        """``test.py``'s uniform test frames of a tracklet of ``n`` frames (default S = 10)."""
        return functools.partial(sample_frames, seq_len=seq_len or 10)



def clip_frames(record: TrackletRecord, seq_len: int = 10, mode: str = "uniform") -> list[Path]:
    """The frame paths of ``record``'s test clip (:func:`sample_frames`)."""
    return [record.frames[i] for i in sample_frames(len(record.frames), seq_len, mode)]
