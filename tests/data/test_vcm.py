"""HITSZ-VCM reader against hand-written info files; expected values worked out by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.helpers import touch, write
from vireid_lib.data import INFRARED, VISIBLE, DatasetError, HITSZVCM
from vireid_lib.data.vcm import decode_frame_name, frame_chunks, sample_test_frames, sample_train_frames

# Test rows (1-based): modality, first frame, last frame, pid, camid.
TEST_ROWS = [
    (1, 1, 13, 10, 2),    # 1: infrared, 13 frames
    (2, 14, 25, 10, 3),   # 2: visible, 12 frames
    (1, 26, 30, 11, 1),   # 3: infrared, 5 frames  -> dropped by the 12-frame filter
    (2, 31, 45, 11, 4),   # 4: visible, 15 frames
    (1, 46, 60, 11, 2),   # 5: infrared, 15 frames
    (0, 61, 72, 10, 2),   # 6: modality 0 is "anything else": visible
]
# Train rows: identity 4 only has a short tracklet, yet the official relabelling counts it.
TRAIN_ROWS = [(1, 1, 12, 8, 1), (2, 13, 24, 8, 2), (1, 25, 30, 4, 1), (2, 31, 42, 3, 5), (1, 43, 56, 3, 6), (2, 57, 70, 5, 3), (1, 71, 82, 5, 1)]


def names_for(rows) -> list[str]:
    names = []
    for t, (m, start, end, pid, cam) in enumerate(rows, start=1):
        names += [f"{pid:04d}M{m}D{cam}T{t:03d}F{start + i:04d}.jpg" for i in range(end - start + 1)]
    return names


def write_vcm_layout(root: Path, info: str = "info", tree: str = "merged") -> Path:
    info_dir = root / "info" if info == "info" else root
    for subset, rows in (("train", TRAIN_ROWS), ("test", TEST_ROWS)):
        names = names_for(rows)
        write(info_dir / f"{subset}_name.txt", "\n".join(names) + "\n")
        write(info_dir / f"track_{subset}_info.txt", "\n".join(" ".join(map(str, r)) for r in rows) + "\n")
        images = root / subset.capitalize() if tree == "split" else root
        for name in names:
            touch(images / decode_frame_name(name))
    # Only the last line counts (the official reader overwrites earlier lines).
    write(info_dir / "query_IDX.txt", "2 4\n5 1 3\n")
    return root


@pytest.fixture(params=[("info", "merged"), ("root", "merged"), ("info", "split"), ("root", "split")],
                ids=lambda p: f"{p[0]}-{p[1]}")
def vcm(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    return write_vcm_layout(tmp_path, *request.param)


def rows_of(records) -> list[int]:
    return [r.row + 1 for r in records]


@pytest.mark.parametrize("name,path", [
    ("0001M1D1T001F005.jpg", "0001/ir/D1/005.jpg"),
    ("0927M2D12T0010F0100.jpg", "0927/rgb/D12/0100.jpg"),
    ("0042M0D3T7F12.jpg", "0042/rgb/D3/12.jpg"),
])
def test_frame_name_decoding(name: str, path: str) -> None:
    assert decode_frame_name(name) == path


@pytest.mark.parametrize("name", ["", "0001M1.jpg", "abcdM1D1T1F1.jpg", "0001M1T1D1F1.jpg", "0001M1D1T1F"])
def test_undecodable_frame_names(name: str) -> None:
    with pytest.raises(DatasetError, match="does not decode"):
        decode_frame_name(name)


def test_ir_to_visible_picks_query_rows_before_the_length_filter(vcm: Path) -> None:
    split = HITSZVCM(vcm).split("ir2rgb")
    # last query_IDX line: rows 5, 1, 3 (file order); row 3 is too short and dropped after
    assert rows_of(split.query) == [5, 1]
    assert [(r.pid, r.camid, r.modality) for r in split.query] == [(11, 2, INFRARED), (10, 2, INFRARED)]
    assert rows_of(split.gallery) == [2, 4, 6]
    assert [r.modality for r in split.gallery] == [VISIBLE] * 3
    assert [len(r) for r in split.gallery] == [12, 15, 12]


def test_visible_to_ir_swaps_the_two_sets(vcm: Path) -> None:
    split = HITSZVCM(vcm).split("rgb2ir")
    assert rows_of(split.query) == [2, 4, 6]
    assert rows_of(split.gallery) == [5, 1]


def test_frame_paths_follow_the_layout(vcm: Path) -> None:
    reader = HITSZVCM(vcm)
    images = vcm / "Test" if (vcm / "Test").is_dir() else vcm
    first = reader.split("ir2rgb").query[1]  # row 1: pid 10, infrared, camera D2, frames 1..13
    assert first.frames[0] == images / "0010/ir/D2/0001.jpg"
    assert first.frames[-1] == images / "0010/ir/D2/0013.jpg"
    visible_zero = reader.split("ir2rgb").gallery[2]  # row 6: modality code 0 -> 'rgb' folder
    assert visible_zero.frames[0] == images / "0010/rgb/D2/0061.jpg"


def test_training_set_relabels_over_all_rows_before_the_filter(vcm: Path) -> None:
    visible, infrared = HITSZVCM(vcm).train()
    # pids {3, 4, 5, 8} -> labels 0, 1, 2, 3; identity 4's only tracklet (6 frames) is dropped
    assert [(r.row + 1, r.pid) for r in infrared] == [(1, 3), (5, 0), (7, 2)]
    assert [(r.row + 1, r.pid) for r in visible] == [(2, 3), (4, 0), (6, 2)]
    assert [r.camid for r in infrared] == [1, 6, 1]
    images = vcm / "Train" if (vcm / "Train").is_dir() else vcm
    assert infrared[0].frames[0] == images / "0008/ir/D1/0001.jpg"


@pytest.mark.parametrize("n,seq_len,expected", [
    (13, 6, [0, 3, 6, 9, 12, 12]),
    (5, 6, [0, 1, 2, 3, 4, 4]),
    (12, 6, [0, 2, 4, 6, 8, 10]),
    (12, 12, list(range(12))),
    (30, 12, [0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 29, 29]),
    (1, 3, [0, 0, 0]),
])
def test_test_frame_sampling(n: int, seq_len: int, expected: list[int]) -> None:
    assert sample_test_frames(n, seq_len) == expected


def test_train_frame_sampling_draws_one_uniform_frame_per_chunk() -> None:
    # n = 13, S = 6: chunks {0,1,2} {3,4,5} {6,7,8} {9,10,11} {12} {12}
    chunks = [{0, 1, 2}, {3, 4, 5}, {6, 7, 8}, {9, 10, 11}, {12}, {12}]
    generator = torch.Generator().manual_seed(0)
    seen = [set() for _ in chunks]
    counts = [0, 0, 0]
    for _ in range(600):
        picks = sample_train_frames(13, 6, generator)
        for s, pick in enumerate(picks):
            assert pick in chunks[s]
            seen[s].add(pick)
        counts[picks[0]] += 1
    assert seen == chunks
    assert all(150 < c < 250 for c in counts)  # uniform within the chunk: 200 each expected


def test_frame_chunks_reject_bad_lengths() -> None:
    with pytest.raises(DatasetError, match="seq_len=0"):
        frame_chunks(10, 0)
    with pytest.raises(DatasetError, match="n=0"):
        frame_chunks(0, 6)


def test_min_seq_len_is_a_parameter(tmp_path: Path) -> None:
    root = write_vcm_layout(tmp_path)
    assert rows_of(HITSZVCM(root, min_seq_len=1).split("ir2rgb").query) == [5, 1, 3]


# -- bad input ------------------------------------------------------------------------
def test_missing_info_files(tmp_path: Path) -> None:
    root = write_vcm_layout(tmp_path)
    (root / "info/query_IDX.txt").unlink()
    with pytest.raises(DatasetError, match=r"info files \['query_IDX.txt'\] are missing"):
        HITSZVCM(root)


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="HITSZ-VCM root .* does not exist"):
        HITSZVCM(tmp_path / "absent")


@pytest.mark.parametrize("line,message", [
    ("1 1 13 10", "line 2: '1 1 13 10' is malformed"),
    ("1 a 13 10 2", "is malformed"),
    ("1 70 80 10 2", "frames 70..80 fall outside the 72 lines"),
])
def test_malformed_track_info(tmp_path: Path, line: str, message: str) -> None:
    root = write_vcm_layout(tmp_path)
    rows = [" ".join(map(str, TEST_ROWS[0])), line]
    write(root / "info/track_test_info.txt", "\n".join(rows) + "\n")
    with pytest.raises(DatasetError, match=message):
        HITSZVCM(root).split()


@pytest.mark.parametrize("content,message", [("\n", "is empty"), ("1 x 3\n", "not a list of integers"), ("1 7\n", "names row 7, but track_test_info.txt has 6 rows")])
def test_bad_query_index(tmp_path: Path, content: str, message: str) -> None:
    root = write_vcm_layout(tmp_path)
    write(root / "info/query_IDX.txt", content)
    with pytest.raises(DatasetError, match=message):
        HITSZVCM(root).split()


def test_undecodable_name_in_list_names_it(tmp_path: Path) -> None:
    root = write_vcm_layout(tmp_path)
    names = (root / "info/test_name.txt").read_text().splitlines()
    names[0] = "frame_without_pattern.jpg"
    write(root / "info/test_name.txt", "\n".join(names))
    with pytest.raises(DatasetError, match="'frame_without_pattern.jpg' does not decode"):
        HITSZVCM(root).split()


def test_images_in_the_wrong_tree(tmp_path: Path) -> None:
    root = write_vcm_layout(tmp_path, tree="merged")
    (root / "Train").mkdir()
    (root / "Test").mkdir()  # an empty Train/Test pair makes the reader look there
    with pytest.raises(DatasetError, match=r"frame .*Test/0011/ir/D2/0046.jpg \(tracklet row 5\) does not exist"):
        HITSZVCM(root).split()


def test_empty_query_after_filter(tmp_path: Path) -> None:
    root = write_vcm_layout(tmp_path)
    write(root / "info/query_IDX.txt", "3\n")
    with pytest.raises(DatasetError, match="ir2rgb query is empty after dropping tracklets shorter than 12"):
        HITSZVCM(root).split()


def test_no_query_identity_in_gallery(tmp_path: Path) -> None:
    root = write_vcm_layout(tmp_path)
    # infrared tracklets relabelled to identities that no visible tracklet has
    rows = [r if r[0] != 1 else (r[0], r[1], r[2], 50 + r[3], r[4]) for r in TEST_ROWS]
    write(root / "info/track_test_info.txt", "\n".join(" ".join(map(str, r)) for r in rows))
    with pytest.raises(DatasetError, match=r"query identities \[60, 61\] have no image in the gallery"):
        HITSZVCM(root).split()
