"""LLCM reader (Zhang et al., "Diverse Embedding Expansion Network and Low-Light Cross-Modality Benchmark for
Visible-Infrared Person Re-identification", CVPR 2023; official code ``ZYK100/LLCM``, ``DEEN/data_loader.py``,
``DEEN/data_manager.py``, ``DEEN/test.py``).

Layout, as the official code reads it:

* training: ``idx/train_vis.txt`` and ``idx/train_nir.txt``, one ``relative/path label`` per line (the path is
  joined to the root as written; the label is the classifier's);
* test identities: the first line of ``idx/test_id.txt``, comma-separated integers;
* test images: ``test_vis/camK/PPPP/*.jpg`` (K = 1..9) and ``test_nir/camK/PPPP/*.jpg`` (K = 1, 2, 4..9: no
  near-infrared camera 3); camera numbers are shared by the two modalities (one physical camera each).

The test sets (``process_query_llcm`` / ``process_gallery_llcm``): identities in ascending order, then cameras in
the order above, then each folder's files sorted; a query set takes every image, a gallery draw takes one
``random.choice`` per (identity, camera) folder after ``random.seed(trial)``, trials 0..9.

Directions, as ``DEEN/test.py`` runs them (one per run, by editing ``test_mode``):

* ``"ir2rgb"`` (``test_mode = [1, 2]``, "IR to VIS", the README's first column group): every near-infrared test
  image queries a single-shot visible gallery drawn per trial;
* ``"rgb2ir"`` (``[2, 1]``, "VIS to IR", the second group): the code transposes the similarity and the labels, so
  the scored queries are the single-shot **near-infrared** draw and the gallery is every visible test image. The
  workbook follows the code (the README's numbers come from it; they fit it: rank-1 well above mAP, as a gallery
  with many images per identity gives), and says so wherever the direction is named.

Scoring: :func:`vireid_lib.eval.evaluate` with ``rule="llcm"`` (``eval_llcm``: a gallery image of the query's
identity seen by the query's camera number is removed, whatever its modality; the CMC counts identities).

Where the workbook differs: camera and identity come from the folders ``camK/PPPP`` instead of the characters after
the first ``cam`` of the full path (the official parse breaks when the root itself contains ``cam``); an empty
test folder is an error (the official ``random.choice`` fails on it); a training image named in a list must exist.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

from .errors import DatasetError
from .io import read_text_lines, require_dir, sorted_entries
from .records import INFRARED, VISIBLE, ImageRecord, Split
from .splits import check_query_matches

CAMERAS = {VISIBLE: tuple(range(1, 10)), INFRARED: (1, 2, 4, 5, 6, 7, 8, 9)}
FOLDERS = {VISIBLE: "test_vis", INFRARED: "test_nir"}
TRAIN_LISTS = {VISIBLE: "train_vis.txt", INFRARED: "train_nir.txt"}
TRIALS = range(10)
DIRECTIONS = ("ir2rgb", "rgb2ir")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
_CAMERA_IN_NAME = re.compile(r"_c(\d+)_")
_LAYOUT_HINT = ("Point data_root at the LLCM folder that holds idx/, test_vis/ and test_nir/ (the layout is described "
                "in the README).")


class LLCM:
    """Reads an LLCM root laid out as ``idx/``, ``test_vis/camK/PPPP/`` and ``test_nir/camK/PPPP/``."""

    NAME = "LLCM"  # as tables print it
    # 713 training identities (DEEN/test.py's n_class), 1,064 - 713 = 351 test ones, 46,767 images (its README)
    PUBLISHED = {"train_ids": 713, "test_ids": 351, "images": 46767}
    DIRECTIONS = DIRECTIONS

    def __init__(self, root: Path | str) -> None:
        self.root = require_dir(Path(root), "LLCM root", _LAYOUT_HINT)
        for name in ("idx", *FOLDERS.values()):
            require_dir(self.root / name, "LLCM folder", _LAYOUT_HINT)
        self.test_ids = self._read_test_ids()

    # -- metadata ---------------------------------------------------------------------
    def _read_test_ids(self) -> list[int]:
        path = self.root / "idx" / "test_id.txt"
        hint = "Restore it from the LLCM archive: its first line is a comma-separated id list."
        lines = read_text_lines(path, "LLCM split file", hint)
        tokens = [t.strip() for t in (lines[0] if lines else "").split(",") if t.strip()]
        if not tokens:
            raise DatasetError(f"LLCM split file {path} lists no identity on its first line. {hint}")
        bad = [t for t in tokens if not t.isdigit()]
        if bad:
            raise DatasetError(f"LLCM split file {path}: {bad[0]!r} is not an identity number. {hint}")
        ids = [int(t) for t in tokens]
        if len(set(ids)) != len(ids):
            raise DatasetError(f"LLCM split file {path} lists an identity twice. {hint}")
        return sorted(ids)

    def _read_train(self, modality: int) -> list[tuple[Path, int, int]]:
        path = self.root / "idx" / TRAIN_LISTS[modality]
        hint = "Restore it from the LLCM archive: each line is 'relative/path label'."
        rows = []
        for number, line in enumerate(read_text_lines(path, "LLCM training list", hint), start=1):
            if not line.strip():
                continue
            fields = line.split(" ")
            if len(fields) < 2 or not fields[1].strip().isdigit():
                raise DatasetError(f"LLCM training list {path}, line {number}: {line!r} is not 'relative/path label'. "
                                   f"{hint}")
            image = self.root / fields[0]
            if not image.is_file():
                raise DatasetError(f"LLCM training list {path}, line {number} names {fields[0]}, which does not exist "
                                   f"under {self.root}. Check that the archive was extracted completely.")
            found = _CAMERA_IN_NAME.search(image.name)  # the released names carry _cNN_; the code never reads it
            rows.append((image, int(fields[1]), int(found.group(1)) if found else 0))
        if not rows:
            raise DatasetError(f"LLCM training list {path} is empty. {hint}")
        return rows

    def _files(self, modality: int, cam: int, pid: int) -> list[str] | None:
        folder = self.root / FOLDERS[modality] / f"cam{cam}" / f"{pid:04d}"
        if not folder.is_dir():
            return None
        names = sorted_entries(folder)
        strays = [n for n in names if not n.lower().endswith(IMAGE_SUFFIXES) or not (folder / n).is_file()]
        if strays:
            raise DatasetError(f"LLCM folder {folder} holds {strays[:3]}, which are not images. The official gallery "
                               "draw counts every entry, so remove them.")
        if not names:
            raise DatasetError(f"LLCM folder {folder} is empty; the official code fails on it. Remove the empty folder "
                               "or restore its images.")
        return names

    def _record(self, modality: int, cam: int, pid: int, name: str) -> ImageRecord:
        return ImageRecord(self.root / FOLDERS[modality] / f"cam{cam}" / f"{pid:04d}" / name, pid, cam, modality)

    # -- splits -----------------------------------------------------------------------
    def train(self) -> tuple[list[ImageRecord], list[ImageRecord]]:
        """Visible and near-infrared training images with labels 0..N-1 (the lists' labels in ascending order; the
        released lists already hold 0..712, where the mapping changes nothing)."""
        visible, infrared = self._read_train(VISIBLE), self._read_train(INFRARED)
        pids = sorted({label for _, label, _ in visible})
        if pids != sorted({label for _, label, _ in infrared}):
            raise DatasetError(f"LLCM: idx/{TRAIN_LISTS[VISIBLE]} and idx/{TRAIN_LISTS[INFRARED]} under {self.root} "
                               "list different identities; restore the original idx/ files.")
        labels = {pid: label for label, pid in enumerate(pids)}
        return ([ImageRecord(path, labels[pid], cam, VISIBLE) for path, pid, cam in visible],
                [ImageRecord(path, labels[pid], cam, INFRARED) for path, pid, cam in infrared])

    def test_images(self, modality: int) -> list[ImageRecord]:
        """Every test image of a modality in the official order (``process_query_llcm``)."""
        records = [self._record(modality, cam, pid, name) for pid in self.test_ids for cam in CAMERAS[modality]
                   for name in self._files(modality, cam, pid) or ()]
        if not records:
            raise DatasetError(f"LLCM {FOLDERS[modality]}/ under {self.root} holds no image of the identities of "
                               f"idx/test_id.txt. " + _LAYOUT_HINT)
        return records

    def draw(self, modality: int, trial: int = 0) -> list[ImageRecord]:
        """One image per (identity, camera) folder, drawn as ``process_gallery_llcm`` draws it for ``trial``."""
        if isinstance(trial, bool) or not isinstance(trial, int) or trial < 0:
            raise DatasetError(f"trial={trial!r} must be a non-negative integer (the papers use 0..9).")
        rng = random.Random(trial)  # the stream of the official random.seed(trial)
        drawn = []
        for pid in self.test_ids:
            for cam in CAMERAS[modality]:
                names = self._files(modality, cam, pid)
                if names is not None:
                    drawn.append(self._record(modality, cam, pid, rng.choice(names)))
        if not drawn:
            raise DatasetError(f"LLCM {FOLDERS[modality]}/ under {self.root} holds no folder of the test identities. "
                               + _LAYOUT_HINT)
        return drawn

    def split(self, trial: int = 0, direction: str = "ir2rgb") -> Split:
        """The query and gallery ``DEEN/test.py`` scores for ``direction`` and gallery ``trial`` (see the module doc:
        both directions score near-infrared queries; ``rgb2ir`` is the code's transposed ``[2, 1]`` mode)."""
        if direction not in DIRECTIONS:
            raise DatasetError(f"direction={direction!r} is not an LLCM direction; use one of {DIRECTIONS}.")
        if direction == "ir2rgb":
            query, gallery = self.test_images(INFRARED), self.draw(VISIBLE, trial)
        else:
            query, gallery = self.draw(INFRARED, trial), self.test_images(VISIBLE)
        split = Split(query=query, gallery=gallery,
                      description={"dataset": "llcm", "trial": trial, "direction": direction})
        check_query_matches(split, strict=False)
        return split

    # -- what summary tables, provenance and the command line read (vireid_lib.data.summary, .provenance) --------
    def sizes(self, trial: int | None = None) -> dict[str, int]:
        """The sizes :attr:`PUBLISHED` lists, measured on this copy."""
        visible, infrared = self.train()
        tests = self.test_images(VISIBLE) + self.test_images(INFRARED)
        return {"train_ids": len({r.pid for r in visible + infrared}), "test_ids": len(self.test_ids),
                "images": len(visible) + len(infrared) + len(tests)}

    def overview(self, trial: int | None = None) -> list[tuple[str, str, list | Split]]:
        """(protocol, subset, records or split) of every subset a summary table shows."""
        visible, infrared = self.train()
        return [("-", "train", visible + infrared)] + [
            (f"{direction}, trial {trial or 0}", "", self.split(trial or 0, direction)) for direction in DIRECTIONS]

    def used_records(self, trial: int | None = None) -> list[ImageRecord]:
        """Every training and test image: the draws of any trial come from the test images."""
        visible, infrared = self.train()
        return visible + infrared + self.test_images(VISIBLE) + self.test_images(INFRARED)

    def cli_split(self, trial: int | None, direction: str | None, mode: str = "all", shot: int = 1) -> Split:
        return self.split(0 if trial is None else trial, direction or "ir2rgb")
