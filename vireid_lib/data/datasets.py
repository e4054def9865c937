"""Torch datasets over reader records: single images, paired training images, tracklets.

They know nothing of any dataset's layout: a reader gives records, a transform turns a
PIL image or a uint8 array into a tensor. Paired training datasets are indexed by the
``(visible_index, infrared_index)`` tuples that the cross-modality samplers yield, so that
position i of a batch pairs a visible and an infrared item of the same identity.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .errors import DatasetError
from .io import read_image
from .records import ImageRecord, TrackletRecord
from .skeletons import EXTRACT_COMMAND, SkeletonStore
from .transforms import apply_per_frame
from .bupt import sample_frames as uniform_frames
from .vcm import sample_test_frames, sample_train_frames

Transform = Callable[[Any], Any]


class ImageDataset(Dataset):
    """Images of one split; ``images`` (a cached ``[N, H, W, 3]`` uint8 array) skips decoding."""

    def __init__(self, records: Sequence[ImageRecord], transform: Transform, images: np.ndarray | None = None) -> None:
        if images is not None and len(images) != len(records):
            raise ValueError(f"the image cache holds {len(images)} images for {len(records)} records; rebuild it.")
        self.records = list(records)
        self.transform = transform
        self.images = images

    def __len__(self) -> int:
        return len(self.records)

    def load(self, index: int) -> Any:
        if self.images is not None:
            return np.array(self.images[index])  # a private copy: the cache is memory-mapped read-only
        return read_image(self.records[index].path)

    def __getitem__(self, index: int) -> tuple[Any, int, int]:
        record = self.records[index]
        return self.transform(self.load(index)), record.pid, record.camid


class PairedImageDataset(Dataset):
    """Training pairs ``(visible, infrared, visible_pid, infrared_pid)`` for a pair of indices."""

    def __init__(self, visible: ImageDataset, infrared: ImageDataset) -> None:
        self.visible = visible
        self.infrared = infrared

    def __len__(self) -> int:
        return max(len(self.visible), len(self.infrared))

    def __getitem__(self, pair: tuple[int, int]) -> tuple[Any, Any, int, int]:
        v, i = pair
        visible, visible_pid, _ = self.visible[v]
        infrared, infrared_pid, _ = self.infrared[i]
        return visible, infrared, visible_pid, infrared_pid


def skeleton_key(frame: str | Path) -> str:
    """A frame's key in a skeleton store: the last four parts of its path, ``pid/modality/camera/file``."""
    return "/".join(Path(frame).parts[-4:])


def check_skeleton_store(path: str | Path, records: Sequence[TrackletRecord], dataset: str = "vcm") -> Path:
    """``path`` if it is a skeleton store of ``dataset``, extracted from these very images (the frames it
    sampled for its fingerprint, where ``records`` hold them, are unchanged), holding the first and last
    frame of every record; otherwise a :class:`DatasetError` naming the file or frame and the command that
    makes the store. A store older than the fingerprint is accepted with a warning that it cannot be checked."""
    path = Path(path)
    command = EXTRACT_COMMAND.replace("DATASET", dataset)
    if not path.is_file():
        raise DatasetError(f"skeleton store {path} does not exist: this model reads COCO-17 keypoints for every frame. "
                           f"Make it with `{command}` (or pass skeleton_store=<its path>).")
    with SkeletonStore(path) as store:
        if store.dataset not in (None, dataset):
            raise DatasetError(f"skeleton store {path} was made for dataset {store.dataset!r}, not {dataset!r}: make one "
                               f"for this dataset with `{command}`.")
        # Another copy of the data keeps every frame name, so the key check below cannot see it: re-read the
        # few frames the store sampled, found through their folders (a tracklet lives in one folder).
        sampled = {name for name, _, _ in store.source_sample}
        sampled_folders = {name.rpartition("/")[0] for name in sampled}
        frames: dict[str, Path] = {}
        for record in records:
            if skeleton_key(record.frames[0]).rpartition("/")[0] in sampled_folders:
                frames.update((key, Path(frame)) for frame in record.frames if (key := skeleton_key(frame)) in sampled)
        store.check_source(frames)
        for record in records:
            for frame in (record.frames[0], record.frames[-1]):
                if skeleton_key(frame) not in store:
                    raise DatasetError(f"skeleton store {path} has no keypoints for frame {frame} "
                                       f"(key {skeleton_key(frame)!r}): it was made for another copy of the data or "
                                       f"was interrupted; rerun `{command}` (it resumes).")
    return path


TEST_FRAMES = ("first", "random", "uniform")


class TrackletDataset(Dataset):
    """Tracklets as ``[S, C, H, W]`` clips.

    Training mode takes one random frame per chunk, each frame transformed on its own (MITML
    augments per frame). Test mode takes each chunk's first frame (``test_frames="first"``,
    MITML's and CST's ``video_test``), or one random frame per chunk as STAR's test loader does
    (``"random"``; ``"uniform"``: BUPTCampus's ``test.py``, frame ``int(i n / S)``), drawn from a generator seeded by ``frame_seed`` and the tracklet's first
    frame (its ``pid/modality/camera/file`` key): the same tracklet gets the same clip in every
    evaluation, whatever the batch, the loader workers or the data root.

    With ``skeletons`` (a skeleton store, :mod:`vireid_lib.data.skeletons`) an item's clip is
    ``(clip, keypoints)``: the COCO-17 keypoints ``[S, 17, 3]`` (x, y in pixels of the stored
    frame, score) of the same sampled frames, untouched by the frames' augmentation and with
    low-score joints kept, as STAR reads them.
    """

    def __init__(self, records: Sequence[TrackletRecord], seq_len: int, transform: Transform, train: bool = False,
                 skeletons: str | Path | None = None, test_frames: str = "first", frame_seed: int = 0) -> None:
        if test_frames not in TEST_FRAMES:
            raise ValueError(f"test_frames={test_frames!r} is not a test frame rule; use one of {TEST_FRAMES}.")
        self.records = list(records)
        self.seq_len = seq_len
        self.transform = transform
        self.train = train
        self.test_frames, self.frame_seed = test_frames, frame_seed
        self.skeletons = None if skeletons is None else Path(skeletons)
        self._store: tuple[int, SkeletonStore] | None = None

    def _open_store(self) -> SkeletonStore:
        # An HDF5 handle does not survive a fork: each loader process opens its own, once.
        if self._store is None or self._store[0] != os.getpid():
            self._store = (os.getpid(), SkeletonStore(self.skeletons))
        return self._store[1]

    def keypoints(self, record: TrackletRecord, indices: Sequence[int]) -> torch.Tensor:
        """``[len(indices), 17, 3]`` float32 keypoints of ``record``'s frames at ``indices``."""
        store = self._open_store()
        return torch.from_numpy(np.stack([store.get(skeleton_key(record.frames[i])) for i in indices]).astype(np.float32))

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_store": None}

    def __len__(self) -> int:
        return len(self.records)

    def frame_indices(self, index: int) -> list[int]:
        record = self.records[index]
        n = len(record.frames)
        if self.train:
            return sample_train_frames(n, self.seq_len)
        if self.test_frames == "random":
            key = zlib.crc32(skeleton_key(record.frames[0]).encode())
            generator = torch.Generator().manual_seed((self.frame_seed * 1_000_003 + key) % 2**63)
            return sample_train_frames(n, self.seq_len, generator)
        if self.test_frames == "uniform":
            return uniform_frames(n, self.seq_len)
        return sample_test_frames(n, self.seq_len)

    def __getitem__(self, index: int) -> tuple[Any, int, int]:
        record = self.records[index]
        indices = self.frame_indices(index)
        clip = apply_per_frame(self.transform, [read_image(record.frames[i]) for i in indices])
        if self.skeletons is None:
            return clip, record.pid, record.camid
        return (clip, self.keypoints(record, indices)), record.pid, record.camid


class PairedTrackletDataset(PairedImageDataset):
    """Training pairs of clips; the same pairing contract as :class:`PairedImageDataset`."""

    def __init__(self, visible: TrackletDataset, infrared: TrackletDataset) -> None:
        super().__init__(visible, infrared)  # type: ignore[arg-type]
