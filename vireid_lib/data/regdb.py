"""RegDB reader: the ten official trials, each with its own train and test lists.

Trial K trains on ``idx/train_{visible,thermal}_K.txt`` and tests on
``idx/test_{visible,thermal}_K.txt``; each line is ``relative/path label``. Every trial is a
separately trained model and the papers average the ten. Both test directions are read:
visible-to-thermal (query visible, gallery thermal) and thermal-to-visible.
"""

from __future__ import annotations

from pathlib import Path

from .errors import DatasetError
from .io import read_text_lines, require_dir
from .records import INFRARED, VISIBLE, ImageRecord, Split
from .splits import check_query_matches

TRIALS = range(1, 11)
DIRECTIONS = ("v2t", "t2v")
# RegDB has one camera per modality; these camera ids only keep the records uniform.
CAMERA_OF_MODALITY = {VISIBLE: 1, INFRARED: 2}
_LIST_NAME = {VISIBLE: "visible", INFRARED: "thermal"}
_LAYOUT_HINT = (
    "Point data_root at the RegDB folder that holds Visible/, Thermal/ and idx/ "
    "(the layout is described in the README)."
)


class RegDB:
    """Reads a RegDB root laid out as ``Visible/<id>/*.bmp``, ``Thermal/<id>/*.bmp``, ``idx/``."""

    NAME = "RegDB"  # as tables print it
    PUBLISHED = {"train_ids": 206, "train_visible": 2060, "train_thermal": 2060, "test_visible": 2060,
                 "test_thermal": 2060}  # PROTOCOLS.md, every trial
    DIRECTIONS = DIRECTIONS

    def __init__(self, root: Path | str) -> None:
        self.root = require_dir(Path(root), "RegDB root", _LAYOUT_HINT)
        for name in ("Visible", "Thermal", "idx"):
            require_dir(self.root / name, "RegDB folder", _LAYOUT_HINT)

    def _read_list(self, stage: str, modality: int, trial: int) -> list[ImageRecord]:
        _check_trial(trial)
        path = self.root / "idx" / f"{stage}_{_LIST_NAME[modality]}_{trial}.txt"
        hint = "Restore it from the RegDB archive: each line is 'relative/path label'."
        records = []
        for number, line in enumerate(read_text_lines(path, "RegDB list", hint), start=1):
            if not line.strip():
                continue
            fields = line.split()
            if len(fields) != 2 or not fields[1].lstrip("-").isdigit():
                raise DatasetError(f"RegDB list {path}, line {number}: {line!r} is not 'relative/path label'. {hint}")
            image = self.root / fields[0]
            if not image.is_file():
                raise DatasetError(
                    f"RegDB list {path}, line {number} names {fields[0]}, which does not exist under "
                    f"{self.root}. Check that Visible/ and Thermal/ were extracted completely."
                )
            records.append(ImageRecord(image, int(fields[1]), CAMERA_OF_MODALITY[modality], modality))
        if not records:
            raise DatasetError(f"RegDB list {path} is empty. {hint}")
        return records

    def train(self, trial: int = 1) -> tuple[list[ImageRecord], list[ImageRecord]]:
        """Visible and thermal training images of a trial, labels mapped to 0..N-1.

        The official lists already use 0..205, so the mapping is the identity there; it only
        guards the classifier against lists with gaps.
        """
        visible = self._read_list("train", VISIBLE, trial)
        thermal = self._read_list("train", INFRARED, trial)
        pids = sorted({r.pid for r in visible})
        if pids != sorted({r.pid for r in thermal}):
            raise DatasetError(
                f"RegDB trial {trial}: idx/train_visible_{trial}.txt and idx/train_thermal_{trial}.txt "
                "list different identities; they must list the same ones. Restore the original idx/ files."
            )
        labels = {pid: label for label, pid in enumerate(pids)}

        def relabel(records: list[ImageRecord]) -> list[ImageRecord]:
            return [ImageRecord(r.path, labels[r.pid], r.camid, r.modality) for r in records]

        return relabel(visible), relabel(thermal)

    def test(self, trial: int = 1, modality: int = VISIBLE) -> list[ImageRecord]:
        return self._read_list("test", modality, trial)

    def split(self, trial: int = 1, direction: str = "v2t") -> Split:
        if direction not in DIRECTIONS:
            raise DatasetError(f"direction={direction!r} is not a RegDB direction; use one of {DIRECTIONS}.")
        query_modality, gallery_modality = (VISIBLE, INFRARED) if direction == "v2t" else (INFRARED, VISIBLE)
        split = Split(
            query=self.test(trial, query_modality),
            gallery=self.test(trial, gallery_modality),
            description={"dataset": "regdb", "trial": trial, "direction": direction},
        )
        # The two test lists of a trial describe the same identities: any gap is a wrong file.
        check_query_matches(split, strict=True)
        return split

    # -- what summary tables, provenance and the command line read (vireid_lib.data.summary, .provenance) --------
    def sizes(self, trial: int | None = None) -> dict[str, int]:
        """The split sizes :attr:`PUBLISHED` lists (every one of a trial's four lists), measured on this copy."""
        visible, infrared = self.train(trial or 1)
        split = self.split(trial or 1, "v2t")
        return {"train_ids": len({r.pid for r in visible + infrared}), "train_visible": len(visible),
                "train_thermal": len(infrared), "test_visible": len(split.query), "test_thermal": len(split.gallery)}

    def overview(self, trial: int | None = None) -> list[tuple[str, str, list | Split]]:
        """(protocol, subset, records or split) of every subset a summary table shows."""
        visible, infrared = self.train(trial or 1)
        return [(f"trial {trial or 1}", "train", visible + infrared)] + [
            (f"{direction}, trial {trial or 1}", "", self.split(trial or 1, direction)) for direction in DIRECTIONS]

    def used_records(self, trial: int | None = None) -> list[ImageRecord]:
        """Every record of ``trial``'s lists (every trial's when None)."""
        records = []
        for t in [trial] if trial is not None else TRIALS:
            split = self.split(t, "v2t")
            records += [r for part in (*self.train(t), split.query, split.gallery) for r in part]
        return records

    def cli_split(self, trial: int | None, direction: str | None, mode: str = "all", shot: int = 1) -> Split:
        return self.split(1 if trial is None else trial, direction or "v2t")


def _check_trial(trial: int) -> None:
    if trial not in TRIALS:
        raise DatasetError(f"trial={trial!r} is not a RegDB trial; use 1..10.")
