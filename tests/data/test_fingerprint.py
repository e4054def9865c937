"""provenance.fingerprint: which copy of a dataset, from names, sizes and a sample of contents."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from tests.helpers import touch
from vireid_lib.data.errors import DatasetError
from vireid_lib.data.provenance import file_fingerprint, fingerprint, sample_digest, spread


@pytest.fixture()
def dataset(tmp_path: Path) -> tuple[Path, list[Path]]:
    root = tmp_path / "copy_a"
    files = [touch(root / f"{pid:04d}/ir/D{cam}/{k:04d}.jpg", bytes([pid, cam, k]) * (10 + k))
             for pid in (1, 2, 3) for cam in (1, 2) for k in (1, 2, 3, 4)]
    return root, files


def test_fingerprint_is_short_hex_and_ignores_mtimes_order_and_where_the_root_is(dataset, tmp_path: Path) -> None:
    root, files = dataset
    digest = fingerprint(files, root)
    assert re.fullmatch(r"[0-9a-f]{16}", digest)
    assert fingerprint(list(reversed(files)), root) == digest
    assert fingerprint([f.relative_to(root) for f in files], root) == digest  # relative paths are taken in root
    for k, file in enumerate(files):
        os.utime(file, ns=(10**18 + k, 10**18 + k))
    assert fingerprint(files, root) == digest
    moved = tmp_path / "elsewhere" / "copy_b"
    shutil.copytree(root, moved, copy_function=shutil.copy)  # new mtimes, another place
    assert fingerprint([moved / f.relative_to(root) for f in files], moved) == digest
    assert fingerprint(files[:-1], root) != digest  # a file fewer is another dataset


def test_a_file_replaced_by_one_of_the_same_name_changes_the_fingerprint(dataset) -> None:
    root, files = dataset
    digest = fingerprint(files, root)
    other_size = files[5]
    touch(other_size, other_size.read_bytes() + b"x")
    assert fingerprint(files, root) != digest  # any file's size counts, sampled or not
    touch(other_size, other_size.read_bytes()[:-1])
    assert fingerprint(files, root) == digest
    # Same size, other bytes: seen in every sampled file; with 16 samples of 24 files, the first and last are.
    for file in (files[0], files[-1]):
        original = file.read_bytes()
        touch(file, bytes(255 - b for b in original))
        assert len(file.read_bytes()) == len(original) and fingerprint(files, root) != digest
        touch(file, original)
    assert fingerprint(files, root) == digest


def test_same_size_changes_outside_the_sample_are_seen_only_when_sampled(dataset) -> None:
    """The documented price of reading ``sample`` files, not all: a same-size edit elsewhere goes unseen."""
    root, files = dataset
    names = sorted(f.relative_to(root).as_posix() for f in files)
    unsampled = root / names[1]  # spread(24, 2) reads only the first and the last
    assert spread(len(names), 2) == [0, len(names) - 1]
    before = fingerprint(files, root, sample=2), fingerprint(files, root, sample=len(files))
    touch(unsampled, bytes(255 - b for b in unsampled.read_bytes()))
    assert fingerprint(files, root, sample=2) == before[0]
    assert fingerprint(files, root, sample=len(files)) != before[1]


def test_the_sample_is_spread_over_the_sorted_names_and_can_be_checked_alone(dataset) -> None:
    root, files = dataset
    measured = file_fingerprint({f.relative_to(root).as_posix(): f for f in files}, sample=4)
    names = sorted(f.relative_to(root).as_posix() for f in files)
    assert measured.files == 24 and [name for name, _, _ in measured.sampled] == [names[i] for i in (0, 7, 15, 23)]
    assert measured.digest == fingerprint(files, root, sample=4)
    assert sample_digest(measured.sampled) == sample_digest(list(reversed(measured.sampled)))
    assert spread(3, 16) == [0, 1, 2] and spread(10, 1) == [0] and spread(10, 0) == []


def test_a_missing_file_a_folder_or_a_path_outside_the_root_is_named(dataset, tmp_path: Path) -> None:
    root, files = dataset
    gone = root / "0002/ir/D1/0009.jpg"
    with pytest.raises(DatasetError, match=rf"{re.escape(str(gone))}\) does not exist: .*D1 exists but holds no "
                                           r"'0009.jpg'.*copy or extract the dataset again"):
        fingerprint([*files, gone], root)
    with pytest.raises(DatasetError, match=r"0002/ir/D1 \(listed as 0002/ir/D1\) is a folder"):
        fingerprint([*files, root / "0002/ir/D1"], root)
    with pytest.raises(DatasetError, match="is not inside the dataset root"):
        fingerprint([tmp_path / "stray.jpg"], root)
    with pytest.raises(DatasetError, match="sample=-1 must be a non-negative integer"):
        fingerprint(files, root, sample=-1)
