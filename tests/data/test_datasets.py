"""Torch datasets over reader records, driven by the samplers through a DataLoader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from tests.helpers import touch
from vireid_lib.data import HITSZVCM, INFRARED, SYSUMM01, VISIBLE, DatasetError
from vireid_lib.data.cache import load_image_cache
from vireid_lib.data.datasets import ImageDataset, PairedImageDataset, PairedTrackletDataset, TrackletDataset
from vireid_lib.data.io import read_image
from vireid_lib.data.samplers import CrossModalityIdentitySampler, TrackletSampler
from vireid_lib.data.transforms import TransformConfig, build_test_transform, build_train_transform
from vireid_lib.data.vcm import sample_test_frames

SMALL = TransformConfig(height=64, width=32, pad=2)


def test_paired_image_batches_pair_identities_by_position(synthetic_sysu: Path, tmp_path: Path) -> None:
    reader = SYSUMM01(synthetic_sysu)
    visible, infrared = reader.train()
    cache_v = load_image_cache(visible, reader.root, "v", size=(32, 64), cache_dir=tmp_path, progress=False)
    cache_i = load_image_cache(infrared, reader.root, "i", size=(32, 64), cache_dir=tmp_path, progress=False)
    dataset = PairedImageDataset(
        ImageDataset(visible, build_train_transform(SMALL, VISIBLE), cache_v),
        ImageDataset(infrared, build_train_transform(SMALL, INFRARED), cache_i),
    )
    sampler = CrossModalityIdentitySampler([r.pid for r in visible], [r.pid for r in infrared], num_ids=4, num_per_modality=2, seed=1)
    loader = DataLoader(dataset, batch_size=sampler.batch_size, sampler=sampler)
    batches = list(loader)
    assert len(batches) == len(sampler) // sampler.batch_size
    for v, i, v_pid, i_pid in batches:
        assert v.shape == i.shape == (8, 3, 64, 32)
        assert torch.equal(v_pid, i_pid) and len(set(v_pid.tolist())) == 4


def test_image_dataset_reads_files_when_no_cache(synthetic_sysu: Path) -> None:
    query = SYSUMM01(synthetic_sysu).query()
    dataset = ImageDataset(query, build_test_transform(SMALL))
    image, pid, camid = dataset[3]
    assert image.shape == (3, 64, 32) and (pid, camid) == (query[3].pid, query[3].camid)
    expected = build_test_transform(SMALL)(read_image(query[3].path))
    assert torch.equal(image, expected)
    with pytest.raises(ValueError, match="cache holds 2 images"):
        ImageDataset(query, build_test_transform(SMALL), np.zeros((2, 64, 32, 3), np.uint8))


def test_test_clips_use_the_deterministic_frames(synthetic_vcm: Path) -> None:
    split = HITSZVCM(synthetic_vcm).split("ir2rgb")
    transform = build_test_transform(SMALL)
    dataset = TrackletDataset(split.gallery, 6, transform)
    clip, pid, camid = dataset[0]
    record = split.gallery[0]
    expected = torch.stack([transform(read_image(record.frames[i])) for i in sample_test_frames(len(record), 6)])
    assert torch.equal(clip, expected) and (pid, camid) == (record.pid, record.camid)
    assert torch.equal(dataset[0][0], clip)


def test_training_clips_are_random_per_draw_and_paired(synthetic_vcm: Path) -> None:
    visible, infrared = HITSZVCM(synthetic_vcm).train()
    dataset = PairedTrackletDataset(
        TrackletDataset(visible, 4, build_train_transform(SMALL, VISIBLE), train=True),
        TrackletDataset(infrared, 4, build_train_transform(SMALL, INFRARED), train=True),
    )
    sampler = TrackletSampler([r.pid for r in visible], [r.pid for r in infrared], num_ids=2, seed=0)
    v, i, v_pid, i_pid = next(iter(DataLoader(dataset, batch_size=sampler.batch_size, sampler=sampler)))
    assert v.shape == i.shape == (4, 4, 3, 64, 32) and torch.equal(v_pid, i_pid)
    torch.manual_seed(0)
    draws = {tuple(dataset.visible.frame_indices(0)) for _ in range(20)}
    assert len(draws) > 1


def test_corrupt_frame_is_named_when_loading(synthetic_vcm: Path, tmp_path: Path) -> None:
    split = HITSZVCM(synthetic_vcm).split("ir2rgb")
    record = split.query[0]
    broken = touch(tmp_path / "broken.jpg", b"\xff\xd8\xff\xe0 truncated")
    frames = (broken,) + record.frames[1:]
    dataset = TrackletDataset([type(record)(frames, record.pid, record.camid, record.modality)], 6, build_test_transform(SMALL))
    with pytest.raises(DatasetError, match="broken.jpg"):
        dataset[0]
