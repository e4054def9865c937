"""HDF5 store of COCO-17 skeletons, keyed by identity / modality / camera / frame.

STAR (arXiv 2411.11069) precomputes keypoints (x, y, score) for every frame once and reads
them beside the images. One HDF5 group per image folder, ``/<pid>/<ir|rgb>/<camera>``, holds
``frames`` (the frame file names of that folder) and ``keypoints`` (``[N, 17, 3]`` float32, in
pixels of the stored image). One dataset per frame would cost more metadata than data on the
real dataset's ~460k frames; a group per folder keeps the same keys at a fraction of the size.

Two writers make such a file: :func:`write_skeletons` writes a finished mapping at once (the
synthetic generator's ground truth), :class:`SkeletonWriter` appends batch by batch as a pose
estimator produces them (``python -m vireid_lib.skeletons extract``), so that a run killed after
hours resumes where it stopped. The file attributes say what the keypoints are: ``format``
(``coco17``), ``keypoint_names``, and, when known, ``dataset`` and ``estimator``.

They also say which copy of the data the keypoints belong to: ``source_fingerprint`` is the
:func:`~vireid_lib.data.provenance.fingerprint` of the dataset's whole frame list (every frame's
``pid/mod/cam/file`` name and size, the content of 16 frames spread over it), taken when the store
is started; ``source_files`` counts those frames and ``source_sample`` (JSON) lists the sampled
frames' name, size and sha256. Keypoints of one copy of HITSZ-VCM are of no use beside another
copy's images (another release, a re-encoded or regenerated tree: same names, other pixels), so
extraction refuses to continue a store of another copy (the whole list is fingerprinted again,
seconds beside hours of pose estimation), and a run start re-reads the sampled frames its
tracklets include (milliseconds) and refuses a store they do not match. The whole frame list,
not the frames extracted so far, is fingerprinted: it is the same in every session of a resumed
extraction, so the attribute is written once. Stores written before the attribute existed are
used with a warning that they cannot be checked.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np

from .errors import DatasetError
from .provenance import Fingerprint, file_fingerprint, measure_sample, sample_digest

COCO17_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
FILE_NAME = "skeletons_coco17.h5"
# The 19 COCO-17 limbs as (joint, joint) pairs, in the order STAR's code lists them (its ``connections``):
# legs, hips, torso, shoulders, arms, then the head.
COCO17_BONES = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
    (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)
FORMAT = "coco17"
EXTRACT_COMMAND = "python -m vireid_lib.skeletons extract DATASET ROOT OUT.h5"  # DATASET: vcm or bupt
# Rows per HDF5 chunk of an appendable folder: a VCM camera folder holds tens to hundreds of
# frames, and every started chunk takes its full size on disk, so chunks stay small.
_CHUNK_ROWS = 32


def _stamp(store: h5py.File, dataset: str | None, estimator: str | None, source: Fingerprint | None = None) -> None:
    store.attrs["format"] = FORMAT
    store.attrs["keypoint_names"] = list(COCO17_NAMES)
    if dataset is not None:
        store.attrs["dataset"] = dataset
    if estimator is not None:
        store.attrs["estimator"] = estimator
    if source is not None:
        store.attrs["source_fingerprint"] = source.digest
        store.attrs["source_files"] = source.files
        store.attrs["source_sample"] = source.sampled_json()


def source_of(frames: Mapping[str, Path | str], sample: int | None = None) -> Fingerprint:
    """The fingerprint a store records of the frames ``{pid/mod/cam/file: image path}`` it is extracted from.

    Frames are named by their store key, not their path, so a merged and a ``Train/``+``Test/``
    tree of the same images agree; ``sample`` defaults to the provenance default (16).
    """
    return file_fingerprint(frames) if sample is None else file_fingerprint(frames, sample)


def _unchecked_warning(path: Path, action: str) -> None:
    warnings.warn(
        f"skeleton store {path} records no fingerprint of the frames it was extracted from (it was written before "
        f"stores recorded one), so whether its keypoints belong to this copy of the dataset cannot be checked; "
        f"{action}. To get a checked store, extract into a new file (`{EXTRACT_COMMAND}`).", UserWarning, stacklevel=3)


def _text_attr(store: h5py.File, name: str) -> str | None:
    value = store.attrs.get(name)
    return value.decode() if isinstance(value, bytes) else (None if value is None else str(value))


def _names(dataset: h5py.Dataset) -> list[str]:
    return [n.decode() if isinstance(n, bytes) else str(n) for n in dataset[()]]


def _split_key(frame: str) -> tuple[str, str]:
    folder, _, name = frame.rpartition("/")
    return folder, name


def write_skeletons(path: Path | str, folders: Mapping[str, Iterable[tuple[str, np.ndarray]]],
                    dataset: str | None = None, estimator: str | None = None, source: Fingerprint | None = None) -> None:
    """Write ``{"<pid>/<ir|rgb>/<camera>": [(frame_file, keypoints[17, 3]), ...]}`` to ``path``.

    ``dataset`` (e.g. ``"vcm"``), ``estimator`` (e.g. ``"ground truth"``) and ``source`` (the
    :func:`source_of` the dataset's frames) are stored as file attributes when given, so that
    :class:`SkeletonWriter` refuses to mix another run or another copy of the data into it.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as store:
        _stamp(store, dataset, estimator, source)
        for key, frames in folders.items():
            frames = sorted(frames)
            group = store.require_group(key)
            group.create_dataset("frames", data=np.array([f for f, _ in frames], dtype=h5py.string_dtype()))
            group.create_dataset("keypoints", data=np.stack([k for _, k in frames]).astype(np.float32))
    tmp.replace(path)


class SkeletonWriter:
    """Appends keypoints to a skeleton store as they are computed; a rerun continues where it stopped.

    Every :meth:`add` extends the folder's ``frames`` and ``keypoints`` (resizable datasets) and
    flushes the file, so a killed run loses at most the batch it was computing. Frames already in
    the store are skipped, never written twice. An existing file must hold the same ``dataset``
    and ``estimator``: keypoints of two estimators in one store would be silently inconsistent.
    With ``frames`` (``{pid/mod/cam/file: image path}``, the dataset's whole frame list) a new
    store records their fingerprint and an existing one must record the same: keypoints of
    another copy of the data are refused too. ``overwrite`` deletes an existing store first (once
    the frames are fingerprinted, so a bad dataset root leaves it alone).
    :class:`SkeletonStore` reads the result like any other store.
    """

    def __init__(self, path: Path | str, dataset: str, estimator: str,
                 frames: Mapping[str, Path | str] | None = None, overwrite: bool = False) -> None:
        self.path = Path(path)
        self.dataset = dataset
        self.estimator = estimator
        self.source: Fingerprint | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        resuming = self.path.exists() and not overwrite
        sample = None
        if resuming:
            # Checked read-only first, so a store of another run is refused without being touched.
            with self._open("r") as store:
                self._check(store)
                sampled = _text_attr(store, "source_sample")
            # Fingerprinted with the store's own sample size (fewer than 16 when its dataset had fewer frames).
            sample = None if sampled is None else len(Fingerprint.sampled_from_json(sampled))
        if frames is not None:
            self.source = source_of(frames, sample)
        if overwrite and self.path.exists():
            if not self.path.is_file():
                raise DatasetError(f"skeleton store {self.path} is a folder, not a file; --overwrite replaces only a "
                                   "store file. Pass another OUT path.")
            self.path.unlink()
        if resuming:
            with self._open("r") as store:
                self._check_source(store)
        self._file = self._open("a")
        self._datasets: dict[str, tuple[h5py.Dataset, h5py.Dataset]] = {}
        try:
            if "format" not in self._file.attrs:
                _stamp(self._file, self.dataset, self.estimator, self.source)
                self._file.flush()
            self._done = self._load_index()
        except BaseException:
            self._file.close()
            raise

    def _open(self, mode: str) -> h5py.File:
        try:
            return h5py.File(self.path, mode)
        except OSError as err:
            raise DatasetError(
                f"skeleton store {self.path} cannot be opened ({err}). If another run has it open, wait for it; "
                "if a run was killed while writing it, the file is damaged: move it aside and run "
                f"`{EXTRACT_COMMAND}` again."
            ) from err

    def _check(self, store: h5py.File) -> None:
        if "format" not in store.attrs and len(store) == 0:
            return  # created, then stopped before anything was stamped
        found = {name: _text_attr(store, name) for name in ("format", "dataset", "estimator")}
        wanted = {"format": FORMAT, "dataset": self.dataset, "estimator": self.estimator}
        if found != wanted:
            raise DatasetError(
                f"skeleton store {self.path} holds format={found['format']!r}, dataset={found['dataset']!r}, "
                f"estimator={found['estimator']!r}, but this run writes format={FORMAT!r}, "
                f"dataset={self.dataset!r}, estimator={self.estimator!r}. To continue that store, rerun with "
                "the dataset, --estimator and --model that started it; otherwise write to another OUT file (or "
                "replace this one with --overwrite)."
            )

    def _check_source(self, store: h5py.File) -> None:
        if self.source is None or "format" not in store.attrs:
            return  # no frames given, or a store stopped before it was stamped (it is stamped now)
        stored = _text_attr(store, "source_fingerprint")
        if stored is None:
            _unchecked_warning(self.path, "continuing it")
            return
        if stored != self.source.digest:
            files = store.attrs.get("source_files")
            raise DatasetError(
                f"skeleton store {self.path} was extracted from another copy of the dataset: it records source "
                f"fingerprint {stored} ({files} frames), but the frames under this dataset root give "
                f"{self.source.digest} ({self.source.files} frames). The keypoints already in it belong to other "
                "images, so it is not continued. Write this copy's keypoints to a new OUT file, or rerun with "
                f"--overwrite (extract(..., overwrite=True)) to start {self.path.name} again from nothing."
            )

    def _load_index(self) -> dict[str, set[str]]:
        """Frame names per folder; a folder whose two datasets differ in length is cut to the shorter.

        Keypoints are written before names, so a name on disk always has its keypoints; the cut
        drops keypoints whose names never made it to disk (a run killed between the two writes).
        """
        folders: dict[str, set[str]] = {}

        def visit(name: str, node: h5py.HLObject) -> None:
            if isinstance(node, h5py.Group) and "frames" in node and "keypoints" in node:
                frames, keypoints = node["frames"], node["keypoints"]
                rows = min(len(frames), len(keypoints))
                for dataset in (frames, keypoints):
                    if len(dataset) != rows and dataset.maxshape[0] is None:
                        dataset.resize(rows, axis=0)
                folders[name] = set(_names(frames)[:rows])

        self._file.visititems(visit)
        return folders

    def __len__(self) -> int:
        return sum(len(names) for names in self._done.values())

    def done(self, frame: str) -> bool:
        """Whether the store already holds keypoints for ``pid/mod/cam/file``."""
        folder, name = _split_key(frame)
        return name in self._done.get(folder, ())

    def _appendable(self, folder: str) -> tuple[h5py.Dataset, h5py.Dataset]:
        """The folder's resizable ``frames`` and ``keypoints``, created if new (handles kept: lookups cost)."""
        if folder in self._datasets:
            return self._datasets[folder]
        if folder in self._file and not all(self._file[folder][n].maxshape[0] is None for n in ("frames", "keypoints")):
            # A folder written whole by write_skeletons has fixed-size datasets: rewrite it resizable.
            group = self._file[folder]
            names, keypoints = _names(group["frames"]), group["keypoints"][()]
            del self._file[folder]
            self._datasets[folder] = self._appendable(folder)
            self._extend(self._datasets[folder], names, keypoints)
        elif folder not in self._file:
            group = self._file.create_group(folder)
            group.create_dataset("frames", shape=(0,), maxshape=(None,), chunks=(_CHUNK_ROWS,),
                                 dtype=h5py.string_dtype())
            group.create_dataset("keypoints", shape=(0, len(COCO17_NAMES), 3), maxshape=(None, len(COCO17_NAMES), 3),
                                 chunks=(_CHUNK_ROWS, len(COCO17_NAMES), 3), dtype=np.float32)
        group = self._file[folder]
        self._datasets[folder] = (group["frames"], group["keypoints"])
        return self._datasets[folder]

    @staticmethod
    def _extend(datasets: tuple[h5py.Dataset, h5py.Dataset], names: Sequence[str], keypoints: np.ndarray) -> None:
        frames, points = datasets
        start = len(frames)
        # Keypoints first: a name on disk then always has its keypoints (see _load_index).
        points.resize(start + len(names), axis=0)
        points[start:] = keypoints
        frames.resize(start + len(names), axis=0)
        frames[start:] = np.array(names, dtype=h5py.string_dtype())

    def add(self, frames: Sequence[str], keypoints: np.ndarray) -> int:
        """Append ``keypoints[i]`` (``[17, 3]``) for ``frames[i]`` (``pid/mod/cam/file``), then flush.

        Frames already in the store (or repeated within the call) are skipped; returns how many
        were written.
        """
        keypoints = np.asarray(keypoints, dtype=np.float32)
        if keypoints.shape != (len(frames), len(COCO17_NAMES), 3):
            raise DatasetError(
                f"skeleton store {self.path}: {len(frames)} frames need keypoints of shape "
                f"({len(frames)}, {len(COCO17_NAMES)}, 3), got {keypoints.shape}."
            )
        rows: dict[str, dict[str, int]] = {}
        for i, frame in enumerate(frames):
            folder, name = _split_key(frame)
            if not folder or not name:
                raise DatasetError(f"frame key {frame!r} must be 'pid/modality/camera/file' (e.g. '0001/ir/D1/0005.jpg').")
            if name not in self._done.get(folder, ()):
                rows.setdefault(folder, {}).setdefault(name, i)
        for folder, index in rows.items():
            self._extend(self._appendable(folder), list(index), keypoints[list(index.values())])
            self._done.setdefault(folder, set()).update(index)
        self._file.flush()
        return sum(map(len, rows.values()))

    def close(self) -> None:
        if self._file.id.valid:
            self._file.flush()
            self._file.close()

    def __enter__(self) -> SkeletonWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SkeletonStore:
    """Read-only access to a skeleton HDF5 file; ``get("0001/ir/D1/0005.jpg")`` -> ``[17, 3]``."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DatasetError(
                f"skeleton store {self.path} does not exist. Precompute COCO-17 keypoints for every "
                f"frame with `{EXTRACT_COMMAND}` (a pose estimator over the whole dataset; the synthetic "
                "generator writes ground-truth ones) and save them there."
            )
        self._file = h5py.File(self.path, "r")
        self._index: dict[str, dict[str, int]] = {}

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> SkeletonStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def dataset(self) -> str | None:
        """The dataset the keypoints belong to (``"vcm"``), or None for a store written without it."""
        return _text_attr(self._file, "dataset")

    @property
    def estimator(self) -> str | None:
        """What produced the keypoints (``"ground truth"``, an RTMPose model), or None if unrecorded."""
        return _text_attr(self._file, "estimator")

    @property
    def source_fingerprint(self) -> str | None:
        """The fingerprint of the frames the keypoints were extracted from, or None for an older store."""
        return _text_attr(self._file, "source_fingerprint")

    @property
    def source_sample(self) -> tuple[tuple[str, int, str], ...]:
        """``(pid/mod/cam/file, size, sha256)`` of the frames whose content the fingerprint read (none if unrecorded)."""
        text = _text_attr(self._file, "source_sample")
        return () if text is None else Fingerprint.sampled_from_json(text)

    def check_source(self, frames: Mapping[str, Path | str]) -> int:
        """Refuse the store when ``frames`` (``{pid/mod/cam/file: image path}``, e.g. a run's training frames)
        are not the images it was extracted from; returns how many sampled frames were compared.

        Only the frames sampled at extraction that ``frames`` holds are read (at most 16 small files), so
        this is cheap at every run start; an older store without a fingerprint, or one none of whose
        sampled frames is among ``frames``, is accepted with a warning that it cannot be checked.
        """
        stored = self.source_fingerprint
        if stored is None:
            _unchecked_warning(self.path, "using it as it is")
            return 0
        sampled = [entry for entry in self.source_sample if entry[0] in frames]
        if not sampled:
            warnings.warn(f"skeleton store {self.path}: none of the {len(self.source_sample)} frames sampled for its "
                          "fingerprint is among the frames given, so whether it belongs to these images cannot be "
                          "checked.", UserWarning, stacklevel=2)
            return 0
        now = measure_sample({name: frames[name] for name, _, _ in sampled})
        then, here = sample_digest(sampled), sample_digest(now)
        if then != here:
            changed = [f"{a[0]} ({a[1]} bytes then, {b[1]} now{', other content' if a[1] == b[1] else ''})"
                       for a, b in zip(sorted(sampled), now) if a != b]
            raise DatasetError(
                f"skeleton store {self.path} was extracted from another copy of the data (its source fingerprint: "
                f"{stored}): the {len(sampled)} frames it sampled for that fingerprint that are among these give "
                f"{then} at extraction and {here} here; {len(changed)} differ, e.g. {changed[0]}. Its keypoints "
                f"belong to other images. Make a store for this copy with `{EXTRACT_COMMAND}` into a new OUT file "
                "(or the same one with --overwrite) and pass it as skeleton_store=<its path>."
            )
        return len(sampled)

    def folders(self) -> list[str]:
        """Every image folder in the store, ``pid/mod/cam``, in the file's order."""
        found: list[str] = []
        self._file.visititems(lambda name, node: found.append(name)
                              if isinstance(node, h5py.Group) and "frames" in node else None)
        return found

    def read_folder(self, folder: str) -> tuple[list[str], np.ndarray]:
        """A folder's frame names and their ``[N, 17, 3]`` keypoints, row for row."""
        if not self._has_folder(folder):
            raise DatasetError(f"skeleton store {self.path} has no folder {folder!r}. {self._fill_hint()}")
        group = self._file[folder]
        names = _names(group["frames"])
        return names, np.asarray(group["keypoints"][: len(names)])

    def __len__(self) -> int:
        return sum(len(self._file[folder]["frames"]) for folder in self.folders())

    def _has_folder(self, folder: str) -> bool:
        return bool(folder) and folder in self._file and "frames" in self._file[folder]

    def _row(self, folder: str, name: str) -> int | None:
        if not self._has_folder(folder):
            return None
        if folder not in self._index:
            self._index[folder] = {n: i for i, n in enumerate(_names(self._file[folder]["frames"]))}
        return self._index[folder].get(name)

    def __contains__(self, frame: object) -> bool:
        return isinstance(frame, str) and self._row(*_split_key(frame)) is not None

    def _fill_hint(self) -> str:
        return f"Fill it in with `{EXTRACT_COMMAND}`, which resumes and adds only the missing frames."

    def get(self, frame: str) -> np.ndarray:
        """Keypoints of one frame given its path relative to the image tree, ``pid/mod/cam/file``."""
        folder, name = _split_key(frame)
        if not self._has_folder(folder):
            raise DatasetError(
                f"skeleton store {self.path} has no folder {folder!r} (asked for frame {frame!r}). {self._fill_hint()}"
            )
        row = self._row(folder, name)
        if row is None:
            raise DatasetError(f"skeleton store {self.path} has no keypoints for frame {frame!r}. {self._fill_hint()}")
        return np.asarray(self._file[folder]["keypoints"][row])
