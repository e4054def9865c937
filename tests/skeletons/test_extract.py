"""``python -m vireid_lib.skeletons extract vcm`` on the synthetic HITSZ-VCM, with a stand-in estimator.

The stand-in computes keypoints from the image itself (a fixed figure scaled to the image and
shifted by its mean colour, scores from its brightness), so a frame stored under the wrong key
or twice shows up. The expected frame list is rebuilt from the name lists on disk.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests import helpers
from vireid_lib.data.errors import DatasetError
from vireid_lib.data.io import read_image
from vireid_lib.data.skeletons import FILE_NAME, SkeletonStore, SkeletonWriter, write_skeletons
from vireid_lib.data.vcm import HITSZVCM, decode_frame_name
from vireid_lib.skeletons import EstimatorError, ExtractConfig, extract
from vireid_lib.skeletons.__main__ import main

REPO = Path(__file__).resolve().parents[2]
STAND_IN = "tests.skeletons.test_extract:StandIn"
# A standing figure in image fractions (x, y), COCO-17 order.
FIGURE = np.array([
    (0.50, 0.10), (0.47, 0.08), (0.53, 0.08), (0.44, 0.09), (0.56, 0.09), (0.38, 0.22), (0.62, 0.22),
    (0.34, 0.38), (0.66, 0.38), (0.32, 0.52), (0.68, 0.52), (0.42, 0.55), (0.58, 0.55), (0.42, 0.74),
    (0.58, 0.74), (0.42, 0.93), (0.58, 0.93),
])


class StandIn:
    """Deterministic keypoints from the image: the figure shifted by the mean colour, scores by brightness."""

    name = "stand-in"
    device = "cpu"

    def __init__(self, model: str | None = None, device: str | None = None) -> None:
        self.model = model
        self.calls = 0

    def __call__(self, images: list[np.ndarray]) -> np.ndarray:
        self.calls += 1
        out = []
        for image in images:
            height, width = image.shape[:2]
            mean = image.reshape(-1, 3).mean(axis=0) / 255.0
            points = FIGURE * 0.8 + 0.1 * mean[:2]
            # max score 1.2 x brightness: darker infrared frames fall under the 0.3 threshold
            scores = np.clip(mean.mean() * 1.2 * np.arange(1, 18) / 17, 0.0, 1.0)
            out.append(np.column_stack([points[:, 0] * width, points[:, 1] * height, scores]))
        return np.stack(out).astype(np.float32)


class StopsAfterThreeBatches(StandIn):
    """Fails on the fourth batch, as a crash in the middle of a run would."""

    def __call__(self, images: list[np.ndarray]) -> np.ndarray:
        if self.calls == 3:
            raise RuntimeError("stand-in stops here")
        return super().__call__(images)


class HangsAfterTwoBatches(StandIn):
    """On the third batch, touches the file ``model`` names and waits to be killed."""

    def __call__(self, images: list[np.ndarray]) -> np.ndarray:
        if self.calls == 2:
            Path(self.model).touch()
            time.sleep(120)
        return super().__call__(images)


def expected_frames(root: Path) -> list[str]:
    keys = []
    for subset in ("train", "test"):
        keys += [decode_frame_name(n) for n in (root / f"info/{subset}_name.txt").read_text().split()]
    return keys


def store_contents(path: Path) -> dict[str, tuple[list[str], np.ndarray]]:
    with SkeletonStore(path) as store:
        return {folder: store.read_folder(folder) for folder in store.folders()}


def assert_same_store(a: Path, b: Path) -> None:
    left, right = store_contents(a), store_contents(b)
    assert left.keys() == right.keys()
    for folder in left:
        assert left[folder][0] == right[folder][0], folder  # same frames in the same order
        np.testing.assert_array_equal(left[folder][1], right[folder][1])


def run(root: Path, out: Path, *extra: str) -> int:
    return main(["extract", "vcm", str(root), str(out), "--estimator", STAND_IN, "--no-progress", *extra])


@pytest.fixture(scope="module")
def full_store(synthetic_vcm: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("skeletons") / "full.h5"
    assert run(synthetic_vcm, out) == 0
    return out


def test_store_holds_every_frame_once_with_the_estimators_keypoints(synthetic_vcm: Path, full_store: Path) -> None:
    expected = expected_frames(synthetic_vcm)
    contents = store_contents(full_store)
    stored = [f"{folder}/{name}" for folder, (names, _) in contents.items() for name in names]
    assert len(stored) == len(set(stored)) == len(expected)
    assert set(stored) == set(expected)
    reader = HITSZVCM(synthetic_vcm)
    tracklets = [*sum(reader.train(), []), *reader.split("ir2rgb").query, *reader.split("ir2rgb").gallery]
    short = [line.split() for line in (synthetic_vcm / "info/track_train_info.txt").read_text().splitlines()]
    assert any(int(end) - int(start) + 1 < 12 for _, start, end, _, _ in short)  # the reader drops these...
    with SkeletonStore(full_store) as store:
        assert (store.dataset, store.estimator) == ("vcm", "stand-in")
        assert len(store) == len(expected)
        assert all(p.relative_to(synthetic_vcm).as_posix() in store for t in tracklets for p in t.frames)
        for key in expected[::97]:  # ...but their frames are stored too
            image = np.asarray(read_image(synthetic_vcm / key))
            np.testing.assert_allclose(store.get(key), StandIn()([image])[0], rtol=0, atol=1e-6)


def test_help_documents_model_root_out_resumption_and_gpu(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as done:
        main(["extract", "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for phrase in ("HITSZ-VCM", "RTMPose-m", "256x192", "--model", ".onnx", "rtmpose-m_simcc", "internet",
                   f"ROOT/{FILE_NAME}", "Rerun the same command to continue", "frames already in OUT are skipped",
                   "onnxruntime-gpu", "CUDA", 'pip install "vireid[skeletons]"', "package.module:ClassName",
                   "fingerprint of the frames", "another copy of the dataset", "--overwrite deletes OUT"):
        assert phrase in text, phrase


def test_an_interrupted_run_resumes_to_the_same_store(synthetic_vcm: Path, full_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "resumed.h5"
    with pytest.raises(RuntimeError, match="stand-in stops here"):
        main(["extract", "vcm", str(synthetic_vcm), str(out), "--estimator",
              "tests.skeletons.test_extract:StopsAfterThreeBatches", "--batch-size", "16", "--no-progress"])
    with SkeletonStore(out) as store:
        assert len(store) == 3 * 16  # every finished batch was kept
    assert run(synthetic_vcm, out, "--batch-size", "16") == 0
    assert_same_store(out, full_store)
    assert run(synthetic_vcm, out) == 0  # a finished store: nothing to do, nothing duplicated
    assert_same_store(out, full_store)


def test_a_killed_command_loses_only_the_batch_in_flight(synthetic_vcm: Path, full_store: Path, tmp_path: Path) -> None:
    out, marker = tmp_path / "killed.h5", tmp_path / "third-batch-started"
    command = [sys.executable, "-m", "vireid_lib.skeletons", "extract", "vcm", str(synthetic_vcm), str(out),
               "--batch-size", "16", "--no-progress"]
    with helpers.process_tree([*command, "--estimator", "tests.skeletons.test_extract:HangsAfterTwoBatches",
                               "--model", str(marker)], cwd=REPO) as proc:  # killed on leaving, had the test failed
        deadline = time.monotonic() + 60
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), "the stand-in never reached its third batch"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    with SkeletonStore(out) as store:
        assert len(store) == 2 * 16
    done = helpers.run([*command, "--estimator", STAND_IN], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    frames = len(expected_frames(synthetic_vcm))
    assert f"{frames - 32} now; {frames} in the store of the dataset's {frames}" in done.stdout
    assert_same_store(out, full_store)


def test_summary_counts_frames_scores_and_unconfident_frames(synthetic_vcm: Path, tmp_path: Path) -> None:
    config = ExtractConfig(batch_size=64, min_score=0.3, show_progress=False)
    summary = extract("vcm", synthetic_vcm, tmp_path / "s.h5", StandIn(), config)
    scores: dict[str, list[np.ndarray]] = {"ir": [], "rgb": []}
    for key in expected_frames(synthetic_vcm):
        scores[key.split("/")[1]].append(StandIn()([np.asarray(read_image(synthetic_vcm / key))])[0, :, 2])
    total = sum(map(len, scores.values()))
    assert summary["frames_written"] == summary["frames_in_store"] == summary["dataset_frames"] == total
    assert summary["frames_per_modality"] == {m: len(s) for m, s in scores.items()}
    for modality, rows in scores.items():
        rows = np.stack(rows)
        assert summary["mean_score"][modality] == pytest.approx(rows.mean(), abs=1e-6)
        assert summary["no_confident_joint"][modality] == int((rows.max(axis=1) < 0.3).sum())
    assert summary["no_confident_joint"]["ir"] > 0  # the check above is not vacuous
    assert summary["seconds"] > 0 and summary["frames_per_second"] > 0
    again = extract("vcm", synthetic_vcm, tmp_path / "s.h5", StandIn(), config)
    assert again["frames_written"] == 0 and again["frames_in_store"] == total
    assert again["mean_score"] == summary["mean_score"]


def test_a_missing_model_file_is_reported_before_anything_runs(synthetic_vcm: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "rtmlib", None)  # the check must not need rtmlib installed
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    out = tmp_path / "never.h5"
    assert main(["extract", "vcm", str(synthetic_vcm), str(out), "--estimator", "rtmpose",
                 "--model", "/nonexistent.onnx"]) == 2
    err = capsys.readouterr().err
    assert "/nonexistent.onnx does not exist" in err and "local .onnx file" in err and "URL" in err
    assert not out.exists()
    zipped = tmp_path / "rtmpose-m.zip"
    zipped.write_bytes(b"a zip, not the model inside it")
    assert main(["extract", "vcm", str(synthetic_vcm), str(out), "--model", str(zipped)]) == 2
    assert "not an .onnx file. Unzip it" in capsys.readouterr().err
    model = tmp_path / "end2end.onnx"
    model.write_bytes(b"not read: rtmlib is missing")
    assert main(["extract", "vcm", str(synthetic_vcm), str(out), "--model", str(model)]) == 2
    assert 'pip install "vireid[skeletons]"' in capsys.readouterr().err


def test_a_store_of_another_dataset_or_estimator_is_refused(synthetic_vcm: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    ground_truth = synthetic_vcm / FILE_NAME
    before = ground_truth.stat().st_mtime_ns
    assert main(["extract", "vcm", str(synthetic_vcm), "--estimator", STAND_IN, "--no-progress"]) == 2  # OUT = ROOT/FILE_NAME
    err = capsys.readouterr().err
    assert str(ground_truth) in err and "estimator='ground truth'" in err and "estimator='stand-in'" in err
    assert ground_truth.stat().st_mtime_ns == before
    with SkeletonWriter(tmp_path / "sysu.h5", "sysu", "stand-in"):
        pass
    assert run(synthetic_vcm, tmp_path / "sysu.h5") == 2
    assert "dataset='sysu'" in capsys.readouterr().err
    write_skeletons(tmp_path / "old.h5", {"0001/ir/D1": [("0001.jpg", np.zeros((17, 3)))]})  # no dataset recorded
    assert run(synthetic_vcm, tmp_path / "old.h5") == 2
    assert "dataset=None" in capsys.readouterr().err


def test_a_corrupt_image_is_named_and_earlier_batches_kept(synthetic_vcm: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "vcm"
    shutil.copytree(synthetic_vcm, root, ignore=shutil.ignore_patterns(FILE_NAME))
    broken = expected_frames(root)[100]
    (root / broken).write_bytes(b"\xff\xd8 truncated")
    assert run(root, tmp_path / "s.h5", "--batch-size", "32", "--read-threads", "2") == 2
    assert str(root / broken) in capsys.readouterr().err
    with SkeletonStore(tmp_path / "s.h5") as store:
        assert len(store) == 96 and broken not in store  # the three batches before the broken one


def test_a_bad_estimator_spec_or_output_is_reported(synthetic_vcm: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    assert run(synthetic_vcm, tmp_path / "a.h5", "--estimator", "tests.skeletons.nowhere:StandIn") == 2
    assert "cannot be imported" in capsys.readouterr().err
    with pytest.raises(DatasetError, match="batch_size=0"):
        ExtractConfig(batch_size=0)

    class Flat(StandIn):
        def __call__(self, images: list[np.ndarray]) -> np.ndarray:
            return super().__call__(images)[:, :, :2]

    with pytest.raises(EstimatorError, match=r"shape \(8, 17, 2\)"):
        extract("vcm", synthetic_vcm, tmp_path / "b.h5", Flat(), ExtractConfig(batch_size=8, show_progress=False))
