"""The appendable skeleton writer and what ``SkeletonStore`` says about a store."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import touch
from vireid_lib.data import HITSZVCM
from vireid_lib.data.datasets import check_skeleton_store
from vireid_lib.data.errors import DatasetError
from vireid_lib.data.provenance import fingerprint
from vireid_lib.data.skeletons import (EXTRACT_COMMAND, FILE_NAME, SkeletonStore, SkeletonWriter, source_of,
                                       write_skeletons)
from vireid_lib.skeletons import vcm_frames


def points(value: float, rows: int = 1) -> np.ndarray:
    return np.full((rows, 17, 3), value, np.float32)


def test_writer_appends_skips_known_frames_and_the_store_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    with SkeletonWriter(path, "vcm", "est") as writer:
        assert writer.add(["0001/ir/D1/0002.jpg", "0001/ir/D1/0001.jpg"], np.concatenate([points(2), points(1)])) == 2
        assert writer.add(["0001/ir/D1/0001.jpg", "0002/rgb/D3/0001.jpg", "0002/rgb/D3/0001.jpg"],
                          np.concatenate([points(9), points(3), points(4)])) == 1  # known and repeated frames skipped
        assert writer.done("0001/ir/D1/0001.jpg") and not writer.done("0001/ir/D1/0003.jpg")
    with SkeletonWriter(path, "vcm", "est") as writer:  # reopened: the index comes from the file
        assert len(writer) == 3 and writer.done("0002/rgb/D3/0001.jpg")
        assert writer.add(["0001/ir/D1/0003.jpg"], points(5)) == 1
    with SkeletonStore(path) as store:
        assert (store.dataset, store.estimator, len(store)) == ("vcm", "est", 4)
        assert store.folders() == ["0001/ir/D1", "0002/rgb/D3"]
        names, keypoints = store.read_folder("0001/ir/D1")
        assert names == ["0002.jpg", "0001.jpg", "0003.jpg"] and keypoints[:, 0, 0].tolist() == [2, 1, 5]
        assert store.get("0002/rgb/D3/0001.jpg")[0, 0] == 3
        assert "0001/ir/D1/0003.jpg" in store and "0001/ir/D1/0009.jpg" not in store and "0001/ir" not in store


def test_writer_rejects_a_wrong_shape_or_key(tmp_path: Path) -> None:
    with SkeletonWriter(tmp_path / "s.h5", "vcm", "est") as writer:
        with pytest.raises(DatasetError, match=r"\(1, 17, 3\)"):
            writer.add(["0001/ir/D1/0001.jpg"], np.zeros((1, 17, 2)))
        with pytest.raises(DatasetError, match="pid/modality/camera/file"):
            writer.add(["0001.jpg"], points(0))


def test_writer_continues_a_whole_store_of_the_same_run(tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    write_skeletons(path, {"0001/ir/D1": [("0001.jpg", points(1)[0])]}, dataset="vcm", estimator="est")
    with SkeletonWriter(path, "vcm", "est") as writer:
        assert writer.add(["0001/ir/D1/0001.jpg", "0001/ir/D1/0002.jpg"], np.concatenate([points(7), points(2)])) == 1
    with SkeletonStore(path) as store:
        assert store.read_folder("0001/ir/D1")[1][:, 0, 0].tolist() == [1, 2]


def test_older_stores_have_no_dataset_or_estimator(tmp_path: Path) -> None:
    write_skeletons(tmp_path / "old.h5", {"0001/ir/D1": [("0001.jpg", points(1)[0])]})
    with SkeletonStore(tmp_path / "old.h5") as store:
        assert store.dataset is None and store.estimator is None


def test_synthetic_store_says_it_is_vcm_ground_truth(synthetic_vcm: Path) -> None:
    with SkeletonStore(synthetic_vcm / FILE_NAME) as store:
        assert (store.dataset, store.estimator) == ("vcm", "ground truth")


def test_synthetic_store_records_the_fingerprint_an_extraction_would(synthetic_vcm: Path) -> None:
    frames = dict(vcm_frames(synthetic_vcm))
    with SkeletonStore(synthetic_vcm / FILE_NAME) as store:
        assert store.source_fingerprint == source_of(frames).digest
        assert store.source_fingerprint == fingerprint(list(frames.values()), synthetic_vcm)  # a merged tree: keys = paths
        assert len(store.source_sample) == 16 and all(name in store for name, _, _ in store.source_sample)
    visible, infrared = HITSZVCM(synthetic_vcm).train()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # checked, so no "cannot be checked" warning
        check_skeleton_store(synthetic_vcm / FILE_NAME, visible + infrared)


def test_writer_records_the_frames_fingerprint_and_overwrite_starts_again(tmp_path: Path) -> None:
    frames = {f"0001/ir/D1/{k:04d}.jpg": touch(tmp_path / f"a/0001/ir/D1/{k:04d}.jpg", bytes([k]) * 50) for k in (1, 2)}
    other = {key: touch(tmp_path / "b" / key, b"other" * 10) for key in frames}  # same names and sizes
    path = tmp_path / "s.h5"
    with SkeletonWriter(path, "vcm", "est", frames=frames) as writer:
        writer.add(["0001/ir/D1/0001.jpg"], points(1))
    with SkeletonWriter(path, "vcm", "est", frames=frames) as writer:  # the same copy continues
        assert writer.add(list(frames), points(2, rows=2)) == 1
    with pytest.raises(DatasetError, match=rf"{source_of(frames).digest} \(2 frames\).*{source_of(other).digest}"):
        SkeletonWriter(path, "vcm", "est", frames=other)
    with SkeletonWriter(path, "vcm", "est", frames=other, overwrite=True) as writer:
        assert len(writer) == 0
    with SkeletonStore(path) as store:
        assert store.source_fingerprint == source_of(other).digest and len(store) == 0


def test_store_errors_name_the_command_that_makes_a_store(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist") as missing:
        SkeletonStore(tmp_path / "none.h5")
    assert EXTRACT_COMMAND in str(missing.value) == str(missing.value)
    with SkeletonWriter(tmp_path / "s.h5", "vcm", "est") as writer:
        writer.add(["0001/ir/D1/0001.jpg"], points(1))
    with SkeletonStore(tmp_path / "s.h5") as store:
        for frame in ("0009/ir/D1/0001.jpg", "0001/ir/D1/0002.jpg"):
            with pytest.raises(DatasetError, match=frame) as err:
                store.get(frame)
            assert EXTRACT_COMMAND in str(err.value)


def test_a_damaged_store_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    path.write_bytes(b"not an HDF5 file")
    with pytest.raises(DatasetError, match="move it aside"):
        SkeletonWriter(path, "vcm", "est")
