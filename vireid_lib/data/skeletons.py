"""HDF5 store of COCO-17 skeletons, keyed by identity / modality / camera / frame.

STAR (arXiv 2411.11069) precomputes keypoints (x, y, score) for every frame once and reads
them beside the images. One HDF5 group per image folder, ``/<pid>/<ir|rgb>/<camera>``, holds
``frames`` (the frame file names of that folder) and ``keypoints`` (``[N, 17, 3]`` float32, in
pixels of the stored image). One dataset per frame would cost more metadata than data on the
real dataset's ~460k frames; a group per folder keeps the same keys at a fraction of the size.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import h5py
import numpy as np

from .errors import DatasetError

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


def write_skeletons(path: Path | str, folders: Mapping[str, Iterable[tuple[str, np.ndarray]]]) -> None:
    """Write ``{"<pid>/<ir|rgb>/<camera>": [(frame_file, keypoints[17, 3]), ...]}`` to ``path``."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as store:
        store.attrs["format"] = "coco17"
        store.attrs["keypoint_names"] = list(COCO17_NAMES)
        for key, frames in folders.items():
            frames = sorted(frames)
            group = store.require_group(key)
            group.create_dataset("frames", data=np.array([f for f, _ in frames], dtype=h5py.string_dtype()))
            group.create_dataset("keypoints", data=np.stack([k for _, k in frames]).astype(np.float32))
    tmp.replace(path)


class SkeletonStore:
    """Read-only access to a skeleton HDF5 file; ``get("0001/ir/D1/0005.jpg")`` -> ``[17, 3]``."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DatasetError(
                f"skeleton store {self.path} does not exist. Precompute COCO-17 keypoints for every "
                "frame (the synthetic generator writes them) and save them there."
            )
        self._file = h5py.File(self.path, "r")
        self._index: dict[str, dict[str, int]] = {}

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> SkeletonStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, frame: str) -> np.ndarray:
        """Keypoints of one frame given its path relative to the image tree, ``pid/mod/cam/file``."""
        folder, _, name = frame.rpartition("/")
        if folder not in self._file:
            raise DatasetError(f"skeleton store {self.path} has no folder {folder!r} (asked for frame {frame!r}).")
        group = self._file[folder]
        if folder not in self._index:
            self._index[folder] = {n.decode() if isinstance(n, bytes) else n: i for i, n in enumerate(group["frames"][()])}
        row = self._index[folder].get(name)
        if row is None:
            raise DatasetError(f"skeleton store {self.path} has no keypoints for frame {frame!r}.")
        return np.asarray(group["keypoints"][row])
