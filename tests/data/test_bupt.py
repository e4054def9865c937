"""BUPTCampus: the reader against dataloader.py's and sampler.py's rules written out by hand (string-sorted training
labels, paired training tracklets, the test order and the visible remainder the 64-batch sampler drops, the frame
sampling modes), evaluation.py's plain rule, and the runner's pairings on the twin."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from vireid_lib.data import DatasetError, open_dataset, provenance
from vireid_lib.data.bupt import CAMERAS, BUPTCampus, clip_frames, sample_frames
from vireid_lib.data.records import INFRARED, VISIBLE
from vireid_lib.data.synthetic import SyntheticConfig, write_bupt
from vireid_lib.eval import evaluate, run_bupt


@pytest.fixture(scope="module")
def bupt_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bupt") / "BUPTCampus"
    write_bupt(root, SyntheticConfig(ids=14, seed=5))
    return root


def test_training_labels_sort_identities_as_strings_and_pair_the_modalities(bupt_root: Path) -> None:
    reader = BUPTCampus(bupt_root)
    lines = [line.split(" ") for line in (bupt_root / "train.txt").read_text().split("\n") if line]
    visible, infrared = reader.train()
    assert len(visible) == len(infrared) == len(lines)
    by_string = sorted({pid for pid, *_ in lines})  # dataloader.py: sorted(set(...)) of the strings
    assert by_string != sorted(by_string, key=int)  # the twin has identities where the two orders differ
    for record, (pid, _, camera, tracklet) in zip(visible, lines):
        assert record.pid == by_string.index(pid) and record.camid == CAMERAS[camera]
    paths = json.loads((bupt_root / "data_paths.json").read_text())
    pid, _, camera, tracklet = lines[0]
    assert [p.relative_to(bupt_root / "DATA").as_posix() for p in visible[0].frames] == paths[pid]["RGB"][camera][tracklet]
    assert [p.relative_to(bupt_root / "DATA").as_posix() for p in infrared[0].frames] == paths[pid]["IR"][camera][tracklet]
    assert reader.train("auxiliary")[0][0].pid == 0  # the auxiliary list has its own labels


def test_the_test_order_puts_visible_first_and_drops_the_remainder_the_sampler_drops(bupt_root: Path) -> None:
    reader = BUPTCampus(bupt_root)
    lines = [line.split(" ") for line in (bupt_root / "gallery.txt").read_text().split("\n") if line]
    visible_lines = [line for line in lines if line[1] == "RGB"]
    kept = reader.test("gallery")
    everything = reader.test("gallery", drop_visible_remainder=False)
    assert len(visible_lines) < 64  # the twin is smaller than one batch: the official cut would leave none, so none is cut
    assert len(everything) == len(lines) and len(kept) == len(lines)
    assert [r.modality for r in kept] == sorted(r.modality for r in kept)  # visible (0) before infrared (1)
    assert [r.row for r in everything if r.modality == VISIBLE] == [i for i, line in enumerate(lines) if line[1] == "RGB"]
    split = reader.split("ir2rgb")
    assert {r.modality for r in split.query} == {INFRARED} and {r.modality for r in split.gallery} == {VISIBLE}
    assert len(reader.split("all").gallery) == len(kept)


def test_past_one_batch_the_last_visible_remainder_is_dropped_in_list_order(bupt_root: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "BUPTCampus"
    shutil.copytree(bupt_root, copy)
    lines = [line for line in (bupt_root / "gallery.txt").read_text().split("\n") if line]
    visible = [line for line in lines if " RGB " in line]
    infrared = [line for line in lines if " IR " in line]
    many = (visible * (70 // len(visible) + 1))[:70]  # 70 visible lines: 64 kept, the last 6 dropped
    (copy / "gallery.txt").write_text("\n".join(many + infrared) + "\n")
    kept = BUPTCampus(copy).test("gallery")
    assert [r.row for r in kept if r.modality == VISIBLE] == list(range(64))
    assert sum(r.modality == INFRARED for r in kept) == len(infrared)
    assert len(BUPTCampus(copy).test("gallery", drop_visible_remainder=False)) == 70 + len(infrared)


def test_frame_sampling_follows_the_test_options() -> None:
    assert sample_frames(25, 10) == [0, 2, 5, 7, 10, 12, 15, 17, 20, 22]  # int(i * 25 / 10)
    assert sample_frames(4, 10) == [0, 0, 0, 1, 1, 2, 2, 2, 3, 3]  # repeats when shorter than the clip
    assert sample_frames(20, 5, "first_half") == [0, 2, 4, 6, 8]
    assert sample_frames(20, 5, "second_half") == [10, 12, 14, 16, 18]
    assert sample_frames(3, 10, "dense") == [0, 1, 2]
    with pytest.raises(DatasetError, match="frame sampling 'even'"):
        sample_frames(10, 5, "even")


def test_evaluation_py_filters_nothing() -> None:
    # same identity, same camera, first: a positive for BUPTCampus, removed under HITSZ-VCM's rule
    d = np.array([[0.1, 0.2, 0.3]])
    labels = ([1], [1, 2, 1], [0], [0, 1, 2])
    bupt = evaluate(d, *labels, rule="bupt", max_rank=2)
    assert bupt["cmc"].tolist() == [1.0, 1.0] and bupt["mAP"] == pytest.approx((1 + 2 / 3) / 2)
    assert evaluate(d, *labels, rule="vcm", max_rank=2)["cmc"].tolist() == [0.0, 1.0]


def test_layout_faults_name_the_file(bupt_root: Path, tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "BUPTCampus"
    shutil.copytree(bupt_root, broken)
    with open(broken / "query.txt", "a") as handle:
        handle.write("9999 IR LS3 1\n")
    with pytest.raises(DatasetError, match=r"query.txt, line \d+: data_paths.json has no IR tracklet 9999/LS3/1"):
        BUPTCampus(broken).test("query")
    (broken / "train.txt").write_text("1 RGB/IR Gate 1\n")
    with pytest.raises(DatasetError, match=r"train.txt, line 1: .* camera of"):
        BUPTCampus(broken).train()
    (broken / "data_paths.json").write_text("{not json")
    with pytest.raises(DatasetError, match="data_paths.json is not JSON"):
        open_dataset("bupt", broken)


def test_the_runner_scores_every_pairing_and_the_twin_is_synthetic(bupt_root: Path) -> None:
    reader = BUPTCampus(bupt_root)
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(100, 8))

    def extract(records):  # each identity's own centre: every pairing scores perfectly
        return centres[[r.pid for r in records]] + 1e-3 * rng.normal(size=(len(records), 8))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        evaluation = run_bupt(reader, extract)
    summary = evaluation.summary
    assert list(summary["direction"]) == ["rgb2ir", "ir2rgb", "rgb2rgb", "ir2ir", "all"]
    assert (summary["R1"] == 100.0).all()
    assert clip_frames(reader.test("query")[0])[0] == reader.test("query")[0].frames[0]
    kind, sizes = provenance.data_kind(bupt_root, reader)
    assert kind == "synthetic" and sizes["ids"] == 14
    assert provenance.is_published(BUPTCampus, {"train_ids": 1074, "ids": 3080})


def test_a_video_paper_trains_and_scores_on_the_twin_through_the_runner(tmp_path: Path) -> None:
    """MITML on the BUPTCampus twin, as the CST notebook trains it beside CST: the paper's first dataset stays its
    default, BUPTCampus is asked for by name, its test clips take test.py's frames and its rule filters nothing."""
    from vireid_lib.experiments import prepare

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = prepare("mitml", "bupt", pretrained=False, arch="resnet18", epochs=1, height=64, width=32,
                      batches_per_epoch=2, workers=0, num_ids=4, device="cpu", progress=False,
                      out_dir=str(tmp_path / "runs"))
        assert run.dataset_name == "BUPTCampus" and run.recipe.test_frames == "uniform"
        assert prepare("mitml", pretrained=False, out_dir=str(tmp_path / "other")).dataset == "vcm"
        run.train()
        summary = run.evaluate().summary
    assert list(summary["direction"]) == ["ir2rgb", "rgb2ir"] and (summary["R1"] >= 0).all()
    assert "BUPTCampus (no filter)" in run.benchmark.describe_selection(run.selection_rule)
    assert len(run.compare_with_paper()) == 1  # no reported row on BUPTCampus: this run alone
    # test.py's other pairings, which the notebooks show below the reported ones
    assert list(run.supplementary().summary["direction"]) == ["rgb2rgb", "ir2ir", "all"]


def test_the_twin_ships_true_skeletons_keyed_as_an_extraction_keys_them(bupt_root: Path) -> None:
    """STAR reads BUPTCampus keypoints from a store: the twin's covers every frame the lists use, under the keys an
    extraction over BUPTCampus writes (pid/modality/camera/file), and is refused as another dataset's store."""
    from vireid_lib.data.datasets import check_skeleton_store, skeleton_key
    from vireid_lib.data.skeletons import FILE_NAME, SkeletonStore
    from vireid_lib.skeletons.extract import FRAME_LISTS

    reader = BUPTCampus(bupt_root)
    records = reader.used_records()
    frames = FRAME_LISTS["bupt"](bupt_root)
    assert {key for key, _ in frames} == {skeleton_key(f) for r in records for f in r.frames}
    assert all(path.is_file() for _, path in frames[:20])
    store = bupt_root / FILE_NAME
    assert check_skeleton_store(store, records, "bupt") == store
    with SkeletonStore(store) as opened:
        assert opened.dataset == "bupt" and all(key in opened for key, _ in frames)
    with pytest.raises(DatasetError, match="made for dataset 'bupt', not 'vcm'"):
        check_skeleton_store(store, records, "vcm")
