"""RegDB reader against hand-written idx lists; expected splits worked out in the test."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import touch, write
from vireid_lib.data import INFRARED, VISIBLE, DatasetError, RegDB

TRAIN_V = ["Visible/3/male_front_v_00003_1.bmp 0", "Visible/3/male_front_v_00003_2.bmp 0", "Visible/8/female_back_v_00008_1.bmp 1"]
TRAIN_T = ["Thermal/3/male_front_t_00003_1.bmp 0", "Thermal/8/female_back_t_00008_1.bmp 1", "Thermal/8/female_back_t_00008_2.bmp 1"]
TEST_V = ["Visible/5/male_back_v_00005_1.bmp 4", "Visible/1/female_front_v_00001_1.bmp 0"]
TEST_T = ["Thermal/1/female_front_t_00001_1.bmp 0", "Thermal/5/male_back_t_00005_1.bmp 4", "Thermal/5/male_back_t_00005_2.bmp 4"]


@pytest.fixture()
def regdb(tmp_path: Path) -> Path:
    for line in TRAIN_V + TRAIN_T + TEST_V + TEST_T:
        touch(tmp_path / line.split()[0])
    for trial in (1, 2):
        write(tmp_path / f"idx/train_visible_{trial}.txt", "\n".join(TRAIN_V) + "\n")
        write(tmp_path / f"idx/train_thermal_{trial}.txt", "\n".join(TRAIN_T) + "\n")
        write(tmp_path / f"idx/test_visible_{trial}.txt", "\n".join(TEST_V) + "\n")
        write(tmp_path / f"idx/test_thermal_{trial}.txt", "\n".join(TEST_T))
    return tmp_path


def rel(records, root: Path) -> list[str]:
    return [r.path.relative_to(root).as_posix() for r in records]


def test_train_lists_keep_file_order_and_labels(regdb: Path) -> None:
    visible, thermal = RegDB(regdb).train(2)
    assert rel(visible, regdb) == [line.split()[0] for line in TRAIN_V]
    assert [r.pid for r in visible] == [0, 0, 1]
    assert rel(thermal, regdb) == [line.split()[0] for line in TRAIN_T]
    assert [r.pid for r in thermal] == [0, 1, 1]
    assert {r.modality for r in visible} == {VISIBLE} and {r.modality for r in thermal} == {INFRARED}


def test_train_labels_with_gaps_are_made_contiguous(regdb: Path) -> None:
    write(regdb / "idx/train_visible_1.txt", "\n".join(l.replace(" 1", " 7") for l in TRAIN_V))
    write(regdb / "idx/train_thermal_1.txt", "\n".join(l.replace(" 1", " 7") for l in TRAIN_T))
    visible, thermal = RegDB(regdb).train(1)
    assert [r.pid for r in visible] == [0, 0, 1] and [r.pid for r in thermal] == [0, 1, 1]


def test_visible_to_thermal_and_back(regdb: Path) -> None:
    v2t = RegDB(regdb).split(1, "v2t")
    assert rel(v2t.query, regdb) == ["Visible/5/male_back_v_00005_1.bmp", "Visible/1/female_front_v_00001_1.bmp"]
    assert [r.pid for r in v2t.query] == [4, 0]
    assert rel(v2t.gallery, regdb) == [line.split()[0] for line in TEST_T]
    assert [r.pid for r in v2t.gallery] == [0, 4, 4]
    t2v = RegDB(regdb).split(1, "t2v")
    assert rel(t2v.query, regdb) == rel(v2t.gallery, regdb)
    assert rel(t2v.gallery, regdb) == rel(v2t.query, regdb)
    # one camera per modality: every pair is cross-camera
    assert {r.camid for r in v2t.query}.isdisjoint({r.camid for r in v2t.gallery})


def test_missing_list_and_bad_arguments(regdb: Path) -> None:
    reader = RegDB(regdb)
    with pytest.raises(DatasetError, match="idx/test_visible_3.txt does not exist"):
        reader.split(3)
    with pytest.raises(DatasetError, match="trial=11 is not a RegDB trial; use 1..10"):
        reader.split(11)
    with pytest.raises(DatasetError, match="direction='ir2rgb'.*'v2t', 't2v'"):
        reader.split(1, "ir2rgb")


def test_missing_root_and_folders(tmp_path: Path, regdb: Path) -> None:
    with pytest.raises(DatasetError, match="RegDB root .* does not exist"):
        RegDB(tmp_path / "missing")
    (regdb / "Thermal").rename(regdb / "thermal_images")
    with pytest.raises(DatasetError, match="RegDB folder .*Thermal does not exist"):
        RegDB(regdb)


@pytest.mark.parametrize("line,message", [
    ("Visible/1/female_front_v_00001_1.bmp", "line 2: .* is not 'relative/path label'"),
    ("Visible/1/female_front_v_00001_1.bmp x", "line 2: .* is not 'relative/path label'"),
    ("Visible/1/nothing_here.bmp 0", "line 2 names Visible/1/nothing_here.bmp, which does not exist"),
])
def test_malformed_lines(regdb: Path, line: str, message: str) -> None:
    write(regdb / "idx/test_visible_1.txt", f"{TEST_V[0]}\n{line}\n")
    with pytest.raises(DatasetError, match=message):
        RegDB(regdb).split(1)


def test_empty_list(regdb: Path) -> None:
    write(regdb / "idx/test_thermal_1.txt", "\n")
    with pytest.raises(DatasetError, match="test_thermal_1.txt is empty"):
        RegDB(regdb).split(1, "t2v")


def test_query_identity_absent_from_gallery_is_an_error(regdb: Path) -> None:
    write(regdb / "idx/test_thermal_1.txt", TEST_T[0] + "\n")
    with pytest.raises(DatasetError, match=r"query identities \[4\] have no image in the gallery.*same trial"):
        RegDB(regdb).split(1, "v2t")


def test_train_lists_with_different_identities(regdb: Path) -> None:
    write(regdb / "idx/train_thermal_1.txt", TRAIN_T[0] + "\n")
    with pytest.raises(DatasetError, match="list different identities"):
        RegDB(regdb).train(1)
