"""SYSU-MM01 reader against a hand-built layout; expected splits worked out in the test."""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import pytest

from tests.helpers import touch, write
from vireid_lib.data import INFRARED, VISIBLE, DatasetError, SYSUMM01

# (camera, identity) -> number of images; identities 1, 3 train, 7 val, 2, 5, 9 test.
FOLDERS = {
    (1, 1): 2, (3, 1): 1,
    (2, 3): 1, (6, 3): 2,
    (5, 7): 1, (3, 7): 1,
    (1, 2): 3, (2, 2): 2, (4, 2): 12, (3, 2): 2, (6, 2): 1,
    (4, 5): 4, (5, 5): 10, (3, 5): 1,
    (1, 9): 5, (6, 9): 3,
}


@pytest.fixture()
def sysu(tmp_path: Path) -> Path:
    for (cam, pid), count in FOLDERS.items():
        for k in range(1, count + 1):
            touch(tmp_path / f"cam{cam}" / f"{pid:04d}" / f"{k:04d}.jpg")
    for cam in range(1, 7):
        (tmp_path / f"cam{cam}").mkdir(exist_ok=True)
    write(tmp_path / "exp/train_id.txt", "3,1\n")
    write(tmp_path / "exp/val_id.txt", "7\n")
    write(tmp_path / "exp/test_id.txt", "9,2,5\nthis second line is ignored by the official reader\n")
    return tmp_path


def rel(records, root: Path) -> list[str]:
    return [r.path.relative_to(root).as_posix() for r in records]


def test_training_set_walks_identity_then_camera_and_labels_ascending(sysu: Path) -> None:
    visible, infrared = SYSUMM01(sysu).train()
    assert rel(visible, sysu) == ["cam1/0001/0001.jpg", "cam1/0001/0002.jpg", "cam2/0003/0001.jpg", "cam5/0007/0001.jpg"]
    assert [r.pid for r in visible] == [0, 0, 1, 2]
    assert rel(infrared, sysu) == ["cam3/0001/0001.jpg", "cam6/0003/0001.jpg", "cam6/0003/0002.jpg", "cam3/0007/0001.jpg"]
    assert [r.pid for r in infrared] == [0, 1, 1, 2]
    assert [r.camid for r in infrared] == [3, 6, 6, 3]
    assert {r.modality for r in visible} == {VISIBLE} and {r.modality for r in infrared} == {INFRARED}


@pytest.mark.parametrize("mode", ["all", "indoor"])
def test_query_is_every_infrared_test_image_cam3_then_cam6(sysu: Path, mode: str) -> None:
    query = SYSUMM01(sysu).query(mode)
    assert rel(query, sysu) == [
        "cam3/0002/0001.jpg", "cam3/0002/0002.jpg", "cam6/0002/0001.jpg",
        "cam3/0005/0001.jpg",
        "cam6/0009/0001.jpg", "cam6/0009/0002.jpg", "cam6/0009/0003.jpg",
    ]
    assert [(r.pid, r.camid) for r in query] == [(2, 3), (2, 3), (2, 6), (5, 3), (9, 6), (9, 6), (9, 6)]


def expected_gallery(trial: int, cameras: list[int], shot: int) -> list[str]:
    """The PROTOCOLS.md rule, written out: seed `random` with the trial, then draw per
    identity ascending, per camera in the given order, over the sorted file list."""
    random.seed(trial)
    out = []
    for pid in (2, 5, 9):
        for cam in cameras:
            if (cam, pid) not in FOLDERS:
                continue
            files = [f"cam{cam}/{pid:04d}/{k:04d}.jpg" for k in range(1, FOLDERS[cam, pid] + 1)]
            if shot == 1:
                out.append(random.choice(files))
            elif len(files) >= shot:
                out.extend(random.sample(files, shot))
            else:
                out.extend(files)
    return out


@pytest.mark.parametrize("trial", range(10))
def test_single_shot_all_search_gallery_follows_official_random_calls(sysu: Path, trial: int) -> None:
    gallery = SYSUMM01(sysu).gallery("all", trial, 1)
    assert rel(gallery, sysu) == expected_gallery(trial, [1, 2, 4, 5], 1)
    assert [r.pid for r in gallery] == [2, 2, 2, 5, 5, 9]
    assert [r.camid for r in gallery] == [1, 2, 4, 4, 5, 1]


def test_galleries_differ_between_trials_and_repeat_within_one(sysu: Path) -> None:
    reader = SYSUMM01(sysu)
    galleries = {tuple(rel(reader.gallery("all", t), sysu)) for t in range(10)}
    assert len(galleries) > 1
    assert rel(reader.gallery("all", 4), sysu) == rel(reader.gallery("all", 4), sysu)


def test_indoor_gallery_uses_cameras_1_and_2_and_reports_unmatched_identity(sysu: Path) -> None:
    reader = SYSUMM01(sysu)
    assert rel(reader.gallery("indoor", 3), sysu) == expected_gallery(3, [1, 2], 1)
    with pytest.warns(UserWarning, match="1 of 3 query identities"):
        split = reader.split("indoor", 3)
    assert split.description["query_ids_without_gallery_match"] == [5]


@pytest.mark.parametrize("mode,cameras", [("all", [1, 2, 4, 5]), ("indoor", [1, 2])])
def test_ten_shot_gallery_samples_ten_and_takes_all_of_smaller_folders(sysu: Path, mode: str, cameras: list[int]) -> None:
    with pytest.warns(UserWarning, match="fewer than 10 images"):
        gallery = SYSUMM01(sysu).gallery(mode, 7, 10)
    expected = expected_gallery(7, cameras, 10)
    assert rel(gallery, sysu) == expected
    if mode == "all":  # cam4/0002 (12 files) and cam5/0005 (exactly 10) are sampled
        assert sum(p.startswith("cam4/0002/") for p in expected) == 10
        assert sorted(p for p in expected if p.startswith("cam5/0005/")) == [f"cam5/0005/{k:04d}.jpg" for k in range(1, 11)]


def test_all_search_split_has_no_unmatched_identity(sysu: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        split = SYSUMM01(sysu).split("all", 0)
    assert split.description["query_ids_without_gallery_match"] == []


# -- bad input ------------------------------------------------------------------------
def test_missing_root_names_it(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"SYSU-MM01 root .*nowhere does not exist.*cam1 \.\.\. cam6"):
        SYSUMM01(tmp_path / "nowhere")


def test_missing_camera_folder(sysu: Path) -> None:
    (sysu / "cam5").rename(sysu / "cam5_moved")
    with pytest.raises(DatasetError, match="camera folder .*cam5 does not exist"):
        SYSUMM01(sysu)


@pytest.mark.parametrize(
    "content,message",
    [("", "empty first line"), ("1,two,3\n", "'two' is not an identity number"), ("4,4\n", "lists an identity twice")],
)
def test_malformed_exp_file(sysu: Path, content: str, message: str) -> None:
    write(sysu / "exp/test_id.txt", content)
    with pytest.raises(DatasetError, match=f"test_id.txt.*{message}"):
        SYSUMM01(sysu)


def test_missing_exp_file(sysu: Path) -> None:
    (sysu / "exp/val_id.txt").unlink()
    with pytest.raises(DatasetError, match="exp/val_id.txt does not exist"):
        SYSUMM01(sysu)


def test_identity_in_train_and_test_is_refused(sysu: Path) -> None:
    write(sysu / "exp/test_id.txt", "2,3\n")
    with pytest.raises(DatasetError, match=r"identities \[3\] appear in both"):
        SYSUMM01(sysu)


def test_stray_file_in_identity_folder_is_refused(sysu: Path) -> None:
    touch(sysu / "cam1/0002/Thumbs.db")
    with pytest.raises(DatasetError, match="cam1/0002 holds .*Thumbs.db"):
        SYSUMM01(sysu).gallery("all", 0)


def test_empty_identity_folder_is_refused(sysu: Path) -> None:
    (sysu / "cam5/0009").mkdir()
    with pytest.raises(DatasetError, match="cam5/0009 is empty"):
        SYSUMM01(sysu).gallery("all", 0)


def test_empty_gallery_and_unknown_settings(sysu: Path) -> None:
    reader = SYSUMM01(sysu)
    with pytest.raises(DatasetError, match="mode='outdoor'.*'all', 'indoor'"):
        reader.query("outdoor")
    with pytest.raises(DatasetError, match="shot=5"):
        reader.gallery("all", 0, 5)
    with pytest.raises(DatasetError, match="trial=-1"):
        reader.gallery("all", -1)
    for cam in (1, 2):
        for folder in (sysu / f"cam{cam}").iterdir():
            for f in folder.iterdir():
                f.unlink()
            folder.rmdir()
    with pytest.raises(DatasetError, match="indoor-search gallery .* is empty"):
        reader.gallery("indoor", 0)


def test_no_query_identity_in_gallery_is_an_error(sysu: Path) -> None:
    # Identity 2 is only seen in visible, 5 and 9 only in infrared: no query can match.
    removed = [(3, 2), (6, 2), (4, 5), (5, 5), (1, 9)]
    for cam, pid in removed:
        folder = sysu / f"cam{cam}/{pid:04d}"
        for f in folder.iterdir():
            f.unlink()
        folder.rmdir()
    with pytest.raises(DatasetError, match=r"query identities \[5, 9\] have no image in the gallery"):
        SYSUMM01(sysu).split("all", 0)
