"""Torch datasets over reader records: single images, paired training images, tracklets.

They know nothing of any dataset's layout: a reader gives records, a transform turns a
PIL image or a uint8 array into a tensor. Paired training datasets are indexed by the
``(visible_index, infrared_index)`` tuples that the cross-modality samplers yield, so that
position i of a batch pairs a visible and an infrared item of the same identity.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .io import read_image
from .records import ImageRecord, TrackletRecord
from .transforms import apply_per_frame
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


class TrackletDataset(Dataset):
    """Tracklets as ``[S, C, H, W]`` clips.

    Test mode takes the deterministic first frame of each chunk; training mode one random
    frame per chunk, each frame transformed on its own (MITML augments per frame).
    """

    def __init__(self, records: Sequence[TrackletRecord], seq_len: int, transform: Transform, train: bool = False) -> None:
        self.records = list(records)
        self.seq_len = seq_len
        self.transform = transform
        self.train = train

    def __len__(self) -> int:
        return len(self.records)

    def frame_indices(self, index: int) -> list[int]:
        n = len(self.records[index].frames)
        return sample_train_frames(n, self.seq_len) if self.train else sample_test_frames(n, self.seq_len)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        record = self.records[index]
        frames = [read_image(record.frames[i]) for i in self.frame_indices(index)]
        return apply_per_frame(self.transform, frames), record.pid, record.camid


class PairedTrackletDataset(PairedImageDataset):
    """Training pairs of clips; the same pairing contract as :class:`PairedImageDataset`."""

    def __init__(self, visible: TrackletDataset, infrared: TrackletDataset) -> None:
        super().__init__(visible, infrared)  # type: ignore[arg-type]
