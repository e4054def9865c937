"""Data on disk that is not what it seems: another copy of a dataset under a skeleton store, a full disk under
an image cache, a data root that is a file or a broken link (see README.md here)."""

from __future__ import annotations

import errno
import os
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from tests.helpers import touch
from tests.skeletons.test_extract import expected_frames
from vireid_lib.data import HITSZVCM, INFRARED, VISIBLE, DatasetError, ImageRecord, RegDB, SYSUMM01
from vireid_lib.data import cache as cache_module
from vireid_lib.data.cache import load_image_cache, load_test_cache
from vireid_lib.data.datasets import check_skeleton_store
from vireid_lib.data.skeletons import FILE_NAME, SkeletonStore, SkeletonWriter
from vireid_lib.data.synthetic import SyntheticConfig, write_vcm
from vireid_lib.data.transforms import TransformConfig, build_test_transform
from vireid_lib.engine.extract import split_normalize
from vireid_lib.skeletons.__main__ import main

STAND_IN = "tests.skeletons.test_extract:StandIn"
SOURCE_ATTRS = ("source_fingerprint", "source_files", "source_sample")


def extract(root: Path, out: Path, *extra: str) -> int:
    return main(["extract", "vcm", str(root), str(out), "--estimator", STAND_IN, "--no-progress", *extra])


def training_frames(root: Path) -> list:
    visible, infrared = HITSZVCM(root).train()
    return visible + infrared


def store_bytes(path: Path) -> dict[str, np.ndarray]:
    with SkeletonStore(path) as store:
        return {folder: store.read_folder(folder)[1] for folder in store.folders()}


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two synthetic HITSZ-VCM twins of the same size, seeds 1 and 2: two copies that differ in every image."""
    base = tmp_path_factory.mktemp("twins")
    write_vcm(base / "seed1", SyntheticConfig(ids=6, seed=1))
    write_vcm(base / "seed2", SyntheticConfig(ids=6, seed=2))
    return base / "seed1", base / "seed2"


# ------------------------------------------------------------------ a skeleton store and another copy of the data

def test_extraction_refuses_to_continue_a_store_of_another_copy(twins, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    first, second = twins
    out = tmp_path / "skeletons.h5"
    assert extract(first, out) == 0
    with SkeletonStore(out) as store:
        recorded = store.source_fingerprint
        assert re.fullmatch(r"[0-9a-f]{16}", recorded)
    with SkeletonStore(first / FILE_NAME) as truth:
        assert truth.source_fingerprint == recorded  # the ground truth records what an extraction would
    capsys.readouterr()
    before = store_bytes(out)
    assert extract(second, out) == 2  # the issue: this used to add seed 2's frames to seed 1's keypoints
    err = capsys.readouterr().err
    assert str(out) in err and recorded in err and "another copy of the dataset" in err
    assert "--overwrite" in err and "new OUT file" in err
    (other,) = set(re.findall(r"\b[0-9a-f]{16}\b", err)) - {recorded}
    after = store_bytes(out)
    assert after.keys() == before.keys() and all(np.array_equal(after[k], before[k]) for k in before)
    assert extract(second, out, "--overwrite") == 0  # starts again from nothing, on this copy
    with SkeletonStore(out) as store:
        assert store.source_fingerprint == other
        assert len(store) == len(expected_frames(second))


def test_a_moved_copy_of_the_same_data_continues_its_store(twins, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    first, _ = twins
    out = tmp_path / "skeletons.h5"
    assert extract(first, out) == 0
    moved = tmp_path / "moved" / "HITSZ-VCM"
    shutil.copytree(first, moved, copy_function=shutil.copy)  # another place, new modification times
    capsys.readouterr()
    assert extract(moved, out) == 0
    assert "0 now" in capsys.readouterr().out
    check_skeleton_store(out, training_frames(moved))


def test_a_run_refuses_the_skeleton_store_of_another_copy(twins, tmp_path: Path) -> None:
    first, second = twins
    truth = first / FILE_NAME
    with SkeletonStore(truth) as store:
        recorded = store.source_fingerprint
    assert check_skeleton_store(truth, training_frames(first)) == truth
    with pytest.raises(DatasetError, match=rf"{re.escape(str(truth))} was extracted from another copy of the data "
                                           rf"\(its source fingerprint: {recorded}\).*differ.*new OUT file"):
        check_skeleton_store(truth, training_frames(second))
    # The issue's end state: seed 1's store completed on seed 2 by an extraction that did not check the copy.
    mixed = tmp_path / "mixed.h5"
    shutil.copy(truth, mixed)
    with SkeletonWriter(mixed, "vcm", "ground truth") as writer:
        todo = [key for key in expected_frames(second) if not writer.done(key)]
        writer.add(todo, np.zeros((len(todo), 17, 3), np.float32))
    with pytest.raises(DatasetError, match=rf"{re.escape(str(mixed))} was extracted from another copy"):
        check_skeleton_store(mixed, training_frames(second))  # every key is there: only the content tells
    # The same names with other pixels (a re-encoded release): every key is there, only the content differs.
    reencoded = tmp_path / "reencoded"
    shutil.copytree(first, reencoded)
    for image in reencoded.rglob("*.jpg"):
        with Image.open(image) as img:
            img.convert("RGB").save(image, quality=60)
    with pytest.raises(DatasetError, match=r"[0-9a-f]{16} at extraction and [0-9a-f]{16} here"):
        check_skeleton_store(reencoded / FILE_NAME, training_frames(reencoded))


def test_a_store_from_before_the_fingerprint_is_used_with_a_warning(twins, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    first, _ = twins
    old = tmp_path / "old.h5"
    assert extract(first, old) == 0
    with h5py.File(old, "a") as store:
        for name in SOURCE_ATTRS:
            del store.attrs[name]
    with pytest.warns(UserWarning, match=rf"{re.escape(str(old))} records no fingerprint.*cannot be checked"):
        check_skeleton_store(old, training_frames(first))
    with pytest.warns(UserWarning, match="cannot be checked; continuing it"):
        assert extract(first, old) == 0
    with h5py.File(old, "r") as store:
        assert not set(SOURCE_ATTRS) & set(store.attrs)  # never stamped after the fact: nothing vouches for it


# ------------------------------------------------------------------ a full disk under an image cache

@pytest.fixture()
def images(tmp_path: Path) -> list[ImageRecord]:
    records = []
    for k, colour in enumerate([(200, 30, 30), (30, 200, 30)], start=1):
        path = tmp_path / "data" / f"cam1/0001/{k:04d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (40, 80), colour).save(path)
        records.append(ImageRecord(path, 0, 1, VISIBLE if k == 1 else INFRARED))
    return records


def disk_full(fd: int, offset: int, length: int) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_is_an_error_naming_the_cache_not_a_bus_error(images, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setattr(os, "posix_fallocate", disk_full, raising=False)
    with pytest.raises(DatasetError) as info:
        load_image_cache(images, tmp_path / "data", "demo", size=(16, 32), cache_dir=cache, progress=False)
    message = str(info.value)
    (named,) = re.findall(r"image cache (\S+): ", message)
    assert Path(named).parent == cache and named.endswith("_16x32.npy")
    needed = int(re.search(r"needs ([\d,]+) bytes", message).group(1).replace(",", ""))
    assert needed >= 2 * 32 * 16 * 3
    assert re.search(r"has [\d,]+ bytes \([\d.]+ [MG]iB\) free", message) and "VIREID_CACHE" in message
    assert list(cache.iterdir()) == []  # no partial file
    with pytest.raises(DatasetError, match=r"no room for the image cache .*test_.*VIREID_CACHE"):
        load_test_cache(images, split_normalize(build_test_transform(TransformConfig(32, 16)))[0], (32, 16),
                        cache_dir=cache)
    assert list((cache / "test").iterdir()) == []


def test_the_cache_reserves_its_whole_file_before_writing(images, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = getattr(os, "posix_fallocate", None)

    def spy(fd: int, offset: int, length: int) -> None:
        calls.append(length)
        if real is not None:
            real(fd, offset, length)

    monkeypatch.setattr(os, "posix_fallocate", spy, raising=False)
    array = load_image_cache(images, tmp_path / "data", "demo", size=(16, 32), cache_dir=tmp_path / "c", progress=False)
    (npy,) = (tmp_path / "c").glob("demo_*.npy")
    assert calls == [npy.stat().st_size] and array.shape == (2, 32, 16, 3)


def test_without_fallocate_the_free_space_is_compared_first(images, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "posix_fallocate", raising=False)
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(cache_module.shutil, "disk_usage", lambda path: usage._replace(free=100))
    with pytest.raises(DatasetError, match=r"has 100 bytes \(0.0 MiB\) free"):
        load_image_cache(images, tmp_path / "data", "demo", size=(16, 32), cache_dir=tmp_path / "c", progress=False)
    assert list((tmp_path / "c").iterdir()) == []


# ------------------------------------------------------------------ a data root that is not a folder

READERS = [(SYSUMM01, "SYSU-MM01 root"), (RegDB, "RegDB root"), (HITSZVCM, "HITSZ-VCM root")]


@pytest.mark.parametrize("reader, what", READERS)
def test_a_data_root_that_is_a_file_says_so(reader, what: str, tmp_path: Path) -> None:
    archive = touch(tmp_path / "dataset.zip", b"PK")
    with pytest.raises(DatasetError, match=rf"{what} {re.escape(str(archive))} is a file, not a folder\."):
        reader(archive)


@pytest.mark.parametrize("reader, what", READERS)
def test_a_data_root_inside_a_file_names_the_file(reader, what: str, tmp_path: Path) -> None:
    archive = touch(tmp_path / "dataset.zip", b"PK")
    with pytest.raises(DatasetError, match=rf"{what} .*dataset.zip/data cannot exist: it lies inside "
                                           rf"{re.escape(str(archive))}, which is a file, not a folder"):
        reader(archive / "data")


@pytest.mark.parametrize("reader, what", READERS)
def test_a_data_root_that_is_a_broken_link_says_where_it_points(reader, what: str, tmp_path: Path) -> None:
    link = tmp_path / "data"
    link.symlink_to(tmp_path / "unmounted" / "dataset")
    with pytest.raises(DatasetError, match=rf"{what} {re.escape(str(link))} is a broken symbolic link: it points to "
                                           rf"{re.escape(str(tmp_path / 'unmounted' / 'dataset'))}, which does not exist"):
        reader(link)
    with pytest.raises(DatasetError, match=rf"{re.escape(str(link))}, on its way, is a broken symbolic link"):
        reader(link / "SYSU-MM01")


@pytest.mark.parametrize("reader, what", READERS)
def test_a_missing_data_root_names_the_deepest_folder_that_exists(reader, what: str, tmp_path: Path) -> None:
    (tmp_path / "datasets").mkdir()
    with pytest.raises(DatasetError, match=rf"{what} .*datasets/SYSU/train does not exist: "
                                           rf"{re.escape(str(tmp_path / 'datasets'))} exists but holds no 'SYSU'"):
        reader(tmp_path / "datasets" / "SYSU" / "train")
    with pytest.raises(DatasetError, match=r"a leading ~ is not expanded here"):
        reader("~/no-such-dataset-here")
