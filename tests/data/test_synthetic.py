"""The synthetic twins: written in the real layouts, read back by the real readers."""

from __future__ import annotations

import subprocess
import sys
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vireid_lib.data import LLCM, BUPTCampus, HITSZVCM, INFRARED, VISIBLE, RegDB, SYSUMM01
from vireid_lib.data.skeletons import FILE_NAME, SkeletonStore
from vireid_lib.data.synthetic import SyntheticConfig, ensure_synthetic, is_synthetic, write_vcm
from vireid_lib.data.vcm import decode_frame_name


def test_sysu_twin_layout(synthetic_sysu: Path) -> None:
    reader = SYSUMM01(synthetic_sysu)
    ids = {name: (synthetic_sysu / "exp" / name).read_text().splitlines()[0].split(",") for name in
           ("train_id.txt", "val_id.txt", "test_id.txt")}
    assert sum(len(v) for v in ids.values()) == 16
    assert all(len(token) <= 3 or token.isdigit() for v in ids.values() for token in v)
    visible, infrared = reader.train()
    assert {r.pid for r in visible} == {r.pid for r in infrared} == set(range(len(ids["train_id.txt"]) + len(ids["val_id.txt"])))
    files = sorted(p.relative_to(synthetic_sysu).as_posix() for p in synthetic_sysu.glob("cam*/*/*"))
    assert files and all(len(f.split("/")[1]) == 4 and f.endswith(".jpg") and len(f.split("/")[2]) == 8 for f in files)
    sizes = [len(list(folder.iterdir())) for folder in synthetic_sysu.glob("cam*/*")]
    assert min(sizes) < 10 <= max(sizes)  # the 10-shot gallery meets both cases
    with pytest.warns(UserWarning, match="query identities have no gallery match"):
        indoor = reader.split("indoor", 0)
    assert indoor.description["query_ids_without_gallery_match"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert reader.split("all", 0).description["query_ids_without_gallery_match"] == []


def test_images_are_colour_for_visible_and_thermal_for_infrared(synthetic_sysu: Path) -> None:
    visible, infrared = SYSUMM01(synthetic_sysu).train()
    v = np.asarray(Image.open(visible[0].path), dtype=np.int16)
    t = np.asarray(Image.open(infrared[0].path), dtype=np.int16)
    assert v.shape == t.shape == (128, 64, 3)
    assert np.abs(v[..., 0] - v[..., 1]).mean() > 3  # colour
    assert np.abs(t[..., 0] - t[..., 1]).max() <= 8  # three (almost, after JPEG) equal channels


def test_regdb_twin_layout(synthetic_regdb: Path) -> None:
    reader = RegDB(synthetic_regdb)
    for trial in range(1, 11):
        visible, thermal = reader.train(trial)
        split = reader.split(trial, "v2t")
        assert len(visible) == len(thermal) == 4 * 10 and len(split.query) == len(split.gallery) == 4 * 10
        train_folders = {r.path.parent.name for r in visible}
        test_folders = {r.path.parent.name for r in split.query}
        assert not train_folders & test_folders
        assert all(r.path.suffix == ".bmp" for r in visible + split.gallery)
    line = (synthetic_regdb / "idx/test_thermal_1.txt").read_text().splitlines()[0]
    path, label = line.split()
    assert path.startswith("Thermal/") and "_t_" in path and label.isdigit()
    assert Image.open(synthetic_regdb / path).format == "BMP"


def test_vcm_twin_layout_and_skeletons(synthetic_vcm: Path) -> None:
    info = synthetic_vcm / "info"
    rows = [list(map(int, line.split())) for line in (info / "track_train_info.txt").read_text().splitlines()]
    rows += [list(map(int, line.split())) for line in (info / "track_test_info.txt").read_text().splitlines()]
    lengths = [end - start + 1 for _, start, end, _, _ in rows]
    assert min(lengths) < 12 <= max(lengths)
    cameras = defaultdict(set)
    for modality, _, _, pid, cam in rows:
        cameras[pid, modality].add(cam)
    assert min(len(c) for c in cameras.values()) >= 2
    reader = HITSZVCM(synthetic_vcm)
    visible, infrared = reader.train()
    assert {r.pid for r in visible} == {r.pid for r in infrared}
    split = reader.split("ir2rgb")
    assert {r.modality for r in split.query} == {INFRARED} and {r.modality for r in split.gallery} == {VISIBLE}
    names = (info / "test_name.txt").read_text().split()
    with SkeletonStore(synthetic_vcm / FILE_NAME) as store:
        for name in names[::7]:
            keypoints = store.get(decode_frame_name(name))
            assert keypoints.shape == (17, 3)
            assert (keypoints[:, 0] >= 0).all() and (keypoints[:, 0] < 64).all()
            assert (keypoints[:, 1] >= 0).all() and (keypoints[:, 1] < 128).all()
            assert ((keypoints[:, 2] >= 0) & (keypoints[:, 2] <= 1)).all()


def test_vcm_keypoints_follow_a_walking_person(synthetic_vcm: Path) -> None:
    visible, _ = HITSZVCM(synthetic_vcm).train()
    track = visible[0]
    with SkeletonStore(synthetic_vcm / FILE_NAME) as store:
        points = np.stack([store.get(p.relative_to(synthetic_vcm).as_posix()) for p in track.frames])
    ankles_gap = np.abs(points[:, 15, 0] - points[:, 16, 0]) + np.abs(points[:, 15, 1] - points[:, 16, 1])
    assert ankles_gap.max() - ankles_gap.min() > 2  # legs swing: the ankles move relative to each other
    head_above_feet = points[:, 0, 1] < points[:, 15, 1]
    assert head_above_feet.all()


def test_vcm_variants_give_the_same_split(tmp_path: Path) -> None:
    config = SyntheticConfig(ids=6, seed=1)
    write_vcm(tmp_path / "merged", config)
    write_vcm(tmp_path / "split", config, tree="split", info="root")
    assert (tmp_path / "split/Train").is_dir() and (tmp_path / "split/track_test_info.txt").is_file()
    a = HITSZVCM(tmp_path / "merged").split("rgb2ir")
    b = HITSZVCM(tmp_path / "split").split("rgb2ir")
    assert [(r.row, r.pid, r.camid, len(r)) for r in a.query] == [(r.row, r.pid, r.camid, len(r)) for r in b.query]
    assert [r.frames[0].relative_to(tmp_path / "merged") for r in a.gallery] == \
           [r.frames[0].relative_to(tmp_path / "split/Test") for r in b.gallery]


def test_generation_is_deterministic(tmp_path: Path) -> None:
    config = SyntheticConfig(ids=5, seed=7)
    write_vcm(tmp_path / "a", config)
    write_vcm(tmp_path / "b", config)
    for name in ("info/train_name.txt", "info/track_test_info.txt", "info/query_IDX.txt"):
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()
    first = sorted((tmp_path / "a").glob("0001/rgb/*/*.jpg"))[0]
    assert first.read_bytes() == (tmp_path / "b" / first.relative_to(tmp_path / "a")).read_bytes()


def test_ensure_synthetic_generates_once_and_refuses_foreign_folders(tmp_path: Path) -> None:
    config = SyntheticConfig(ids=6, seed=2)
    root = ensure_synthetic("regdb", tmp_path / "regdb", config)
    assert is_synthetic(root) and RegDB(root).split(1)
    stamp = (root / "idx/train_visible_1.txt").stat().st_mtime_ns
    assert ensure_synthetic("regdb", root, config) == root
    assert (root / "idx/train_visible_1.txt").stat().st_mtime_ns == stamp
    foreign = tmp_path / "mine"
    (foreign / "notes").mkdir(parents=True)
    with pytest.raises(ValueError, match="not a synthetic dataset"):
        ensure_synthetic("regdb", foreign, config)
    with pytest.raises(ValueError, match="kind='market'"):
        ensure_synthetic("market", tmp_path / "x")


def test_generator_command_writes_every_dataset(tmp_path: Path) -> None:
    out = tmp_path / "all"
    done = subprocess.run([sys.executable, "-m", "vireid_lib.data.synthetic", "all", str(out), "--ids", "6"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert {"sysu:", "regdb:", "vcm:", "llcm:", "bupt:"} <= {line.split()[0] for line in done.stdout.splitlines()}
    SYSUMM01(out / "sysu"), RegDB(out / "regdb"), HITSZVCM(out / "vcm"), LLCM(out / "llcm"), BUPTCampus(out / "bupt")
    again = subprocess.run([sys.executable, "-m", "vireid_lib.data.synthetic", "sysu", str(out / "sysu")],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "is not empty" in again.stderr
