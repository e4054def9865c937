"""The RTMPose wrapper against rtmlib's own per-image call, on a tiny random ONNX model.

No RTMPose weights are downloaded: a small network with RTMPose's input (1x3x256x192) and
SimCC outputs (17x384, 17x512) is exported here, so the batching, the whole-image person box
and the pixel coordinates are checked, not the model's accuracy. The ``[test]`` extra installs rtmlib,
onnxruntime and onnx (for the export); without them these tests are skipped, and say so.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

rtmlib = pytest.importorskip("rtmlib")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
torch = pytest.importorskip("torch")

from vireid_lib.skeletons import EstimatorError, RTMPoseEstimator, load_estimator  # noqa: E402


class SimCCStub(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.joints = torch.nn.Conv2d(3, 17, kernel_size=8, stride=8)
        self.x = torch.nn.Linear(32 * 24, 384)
        self.y = torch.nn.Linear(32 * 24, 512)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.joints(image).flatten(2)
        return self.x(features), self.y(features)


@pytest.fixture(scope="module")
def stub_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rtmpose") / "stub.onnx"
    torch.manual_seed(0)
    axes = {name: {0: "batch"} for name in ("input", "simcc_x", "simcc_y")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(SimCCStub(), torch.zeros(1, 3, 256, 192), str(path), input_names=["input"],
                          output_names=["simcc_x", "simcc_y"], dynamic_axes=axes, dynamo=False)
    return path


def test_batched_wrapper_matches_rtmlib_frame_by_frame(stub_model: Path) -> None:
    estimator = load_estimator("rtmpose", str(stub_model), "cpu")
    assert isinstance(estimator, RTMPoseEstimator)
    assert (estimator.name, estimator.device) == ("rtmpose stub", "cpu")
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((128, 64), (256, 128), (200, 90))]
    keypoints = estimator(images)
    assert keypoints.shape == (3, 17, 3) and keypoints.dtype == np.float32
    reference = rtmlib.RTMPose(str(stub_model), model_input_size=(192, 256), backend="onnxruntime", device="cpu")
    for image, result in zip(images, keypoints):
        points, scores = reference(image, bboxes=[[0, 0, image.shape[1], image.shape[0]]])
        np.testing.assert_allclose(result[:, :2], points[0], atol=1e-3)
        np.testing.assert_allclose(result[:, 2], np.clip(scores[0], 0, 1), atol=1e-5)
    assert ((keypoints[:, :, 2] >= 0) & (keypoints[:, :, 2] <= 1)).all()


def test_a_file_that_is_no_onnx_model_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "end2end.onnx"
    bad.write_bytes(b"junk")
    with pytest.raises(EstimatorError, match="cannot load RTMPose model .*end2end.onnx"):
        RTMPoseEstimator(bad, "cpu")
