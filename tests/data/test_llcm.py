"""LLCM: the reader against the official draw written out independently (DEEN/data_manager.py's rules), both of
test.py's directions, eval_llcm's rule on hand-computed cases, the protocol runner over trials, and the twin trained
and scored in-process through the runner (the smoke plan runs every image paper's notebook on it too)."""

from __future__ import annotations

import os
import random
import warnings
from pathlib import Path

import numpy as np
import pytest

from vireid_lib.data import DatasetError, open_dataset, provenance
from vireid_lib.data.llcm import CAMERAS, LLCM
from vireid_lib.data.records import INFRARED, VISIBLE
from vireid_lib.data.synthetic import SyntheticConfig, write_llcm
from vireid_lib.eval import evaluate, run_llcm


@pytest.fixture(scope="module")
def llcm_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("llcm") / "LLCM"
    write_llcm(root, SyntheticConfig(ids=16, seed=3))
    return root


def official_draw(root: Path, folder: str, cameras: tuple[int, ...], trial: int) -> list[str]:
    """process_gallery_llcm, written from its description: seed, identities ascending, cameras in list order, one
    random.choice over each existing folder's sorted full paths."""
    ids = sorted(int(t) for t in (root / "idx" / "test_id.txt").read_text().splitlines()[0].split(","))
    random.seed(trial)
    drawn = []
    for pid in ids:
        for cam in cameras:
            directory = root / folder / f"cam{cam}" / f"{pid:04d}"
            if directory.is_dir():
                drawn.append(random.choice(sorted(str(directory / name) for name in os.listdir(directory))))
    return drawn


@pytest.mark.parametrize("trial", [0, 1, 7])
def test_the_draws_are_the_official_ones(llcm_root: Path, trial: int) -> None:
    reader = LLCM(llcm_root)
    for modality, folder in ((VISIBLE, "test_vis"), (INFRARED, "test_nir")):
        assert [str(r.path) for r in reader.draw(modality, trial)] == official_draw(llcm_root, folder,
                                                                                     CAMERAS[modality], trial)
    assert reader.draw(VISIBLE, 0) != reader.draw(VISIBLE, 1)


def test_both_directions_score_near_infrared_queries_as_test_py_does(llcm_root: Path) -> None:
    reader = LLCM(llcm_root)
    forward = reader.split(2, "ir2rgb")  # test_mode [1, 2]: every NIR image against the visible draw
    assert forward.query == reader.test_images(INFRARED) and forward.gallery == reader.draw(VISIBLE, 2)
    backward = reader.split(2, "rgb2ir")  # [2, 1], transposed by the code: the NIR draw against every visible image
    assert backward.query == reader.draw(INFRARED, 2) and backward.gallery == reader.test_images(VISIBLE)
    per_folder = {(r.pid, r.camid) for r in backward.query}
    assert len(per_folder) == len(backward.query)  # single-shot: one image per identity and camera
    assert 3 not in {r.camid for r in reader.test_images(INFRARED)}  # no near-infrared camera 3
    visible, infrared = reader.train()
    assert sorted({r.pid for r in visible}) == list(range(len({r.pid for r in visible})))
    assert {r.pid for r in reader.test_images(VISIBLE)} <= set(reader.test_ids)


def test_layout_faults_name_the_file_and_what_to_do(llcm_root: Path, tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "LLCM"
    shutil.copytree(llcm_root, broken)
    (broken / "idx" / "test_id.txt").write_text("3,x,9\n")
    with pytest.raises(DatasetError, match=r"test_id.txt: 'x' is not an identity number"):
        LLCM(broken)
    (broken / "idx" / "test_id.txt").write_text((llcm_root / "idx" / "test_id.txt").read_text())
    pid = LLCM(broken).test_ids[0]
    folder = next((broken / "test_vis").glob(f"cam*/{pid:04d}"))
    (folder / "notes.txt").write_text("stray")
    with pytest.raises(DatasetError, match=r"holds \['notes.txt'\], which are not images"):
        LLCM(broken).draw(VISIBLE, 0)
    (folder / "notes.txt").unlink()
    lines = (broken / "idx" / "train_vis.txt").read_text().splitlines()
    (broken / "idx" / "train_vis.txt").write_text("\n".join(["vis/9999/missing.jpg 0", *lines]) + "\n")
    with pytest.raises(DatasetError, match=r"train_vis.txt, line 1 names vis/9999/missing.jpg, which does not exist"):
        LLCM(broken).train()
    shutil.rmtree(broken / "test_nir")
    with pytest.raises(DatasetError, match="LLCM folder"):
        open_dataset("llcm", broken)


def test_eval_llcm_removes_the_same_identity_at_the_same_camera_number_and_counts_identities() -> None:
    # query: identity 1 at camera 4; gallery, closest first: identity 1 at camera 4 (removed: same camera number,
    # whatever its modality), identity 2 twice, identity 1 at camera 5, identity 3
    d = np.array([[0.1, 0.2, 0.3, 0.4, 0.5]])
    labels = ([1], [1, 2, 2, 1, 3], [4], [4, 1, 3, 5, 4])
    llcm = evaluate(d, *labels, rule="llcm", max_rank=3)
    assert llcm["cmc"].tolist() == [0.0, 1.0, 1.0]  # identities ahead: {2} -> identity rank 2
    assert llcm["mAP"] == pytest.approx(1 / 3) and llcm["mINP"] == pytest.approx(1 / 3)  # 3rd of the kept list
    vcm = evaluate(d, *labels, rule="vcm", max_rank=3)  # the same removal, a plain CMC
    assert vcm["cmc"].tolist() == [0.0, 0.0, 1.0] and vcm["mAP"] == pytest.approx(1 / 3)
    sysu = evaluate(d, *labels, rule="sysu", max_rank=3)  # nothing removed for a camera-4 query
    assert sysu["cmc"].tolist() == [1.0, 1.0, 1.0]
    # ties: an item tied with the first match ranks by gallery position (the stable order), identities counted once
    tied = evaluate(np.array([[0.2, 0.2, 0.2, 0.9]]), [1], [2, 2, 1, 1], [4], [1, 1, 1, 4], rule="llcm", max_rank=2)
    assert tied["cmc"].tolist() == [0.0, 1.0] and tied["mAP"] == pytest.approx(1 / 3)
    with pytest.raises(Exception, match="no query has a true match"):  # its only match is removed
        evaluate(np.array([[0.1, 0.2]]), [1], [1, 2], [4], [4, 1], rule="llcm")


def test_the_runner_scores_every_trial_in_both_directions_on_the_drawn_rows(llcm_root: Path) -> None:
    reader = LLCM(llcm_root)
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(200, 16))

    def extract(records):  # nearly perfect features: each identity's own centre
        return centres[[r.pid for r in records]] + 1e-3 * rng.normal(size=(len(records), 16))

    evaluation = run_llcm(reader, extract, trials=range(3))
    per_trial = evaluation.per_trial
    assert sorted(zip(per_trial["direction"], per_trial["trial"])) == sorted(
        (d, t) for d in ("ir2rgb", "rgb2ir") for t in range(3))
    assert (per_trial["R1"] == 100.0).all() and (per_trial["mAP"] > 99.9).all()
    forward = per_trial[(per_trial["direction"] == "ir2rgb") & (per_trial["trial"] == 1)].iloc[0]
    assert forward["queries"] == len(reader.test_images(INFRARED)) and forward["gallery"] == len(reader.draw(VISIBLE, 1))


def test_the_twin_is_synthetic_and_the_published_sizes_decide_real(llcm_root: Path) -> None:
    kind, sizes = provenance.data_kind(llcm_root, LLCM(llcm_root))
    assert kind == "synthetic" and sizes["train_ids"] + sizes["test_ids"] == 16
    assert provenance.is_published(LLCM, {"train_ids": 713, "test_ids": 351, "images": 46767})
    assert not provenance.is_published(LLCM, {**sizes})


def test_an_image_paper_trains_and_scores_on_the_twin_through_the_runner(tmp_path: Path) -> None:
    """AGW on the LLCM twin, as its notebook runs it: both directions over the trials, its LLCM rows beside it."""
    from vireid_lib.experiments import prepare

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = prepare("agw", "llcm", pretrained=False, arch="resnet18", epochs=1, height=64, width=32,
                      batches_per_epoch=2, eval_trials=2, workers=0, num_ids=4, device="cpu", progress=False,
                      out_dir=str(tmp_path / "runs"))
        assert run.data_kind == "synthetic" and run.dataset_name == "LLCM"
        run.train()
        summary = run.evaluate().summary
    assert set(summary["direction"]) == {"ir2rgb", "rgb2ir"} and set(summary["trials"]) == {2}
    compared = run.compare_with_paper()
    assert set(compared["R1 paper"]) == {49.13, 63.72}  # the README's two column groups
    assert "the trial-0 LLCM gallery, ir2rgb" in run.benchmark.describe_selection(run.selection_rule)
