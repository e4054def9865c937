"""2-D pose estimators for person crops: the interface, RTMPose through rtmlib, and plug-ins.

A VI-ReID frame is already a person crop, so an estimator here takes whole images as the
person box (no detector) and returns COCO-17 keypoints ``(x, y, score)`` in pixels of the
image it was given. RTMPose (Jiang et al., arXiv 2303.07399) is the default because rtmlib
runs its ONNX export on onnxruntime alone: no mmcv, no mmpose, CPU or CUDA. Any other model
can be plugged in as ``package.module:ClassName`` (see :func:`load_estimator`).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import urlparse

import numpy as np

from ..data.skeletons import COCO17_NAMES

# rtmlib's RTMPose-m, trained on seven body datasets, COCO-17 keypoints, 256x192 input (74.9 AP
# on COCO val in rtmlib's model table). The zip holds the ONNX file; rtmlib downloads and unpacks it.
RTMPOSE_M_URL = (
    "https://download.openmmlab.com/mmpose/v1/projects/rtmposev1/onnx_sdk/"
    "rtmpose-m_simcc-body7_pt-body7_420e-256x192-e48f03d0_20230504.zip"
)
RTMPOSE_INPUT_SIZE = (192, 256)  # (width, height), as rtmlib takes it
INSTALL_HINT = 'pip install "vireid[skeletons]"'


class EstimatorError(RuntimeError):
    """A pose estimator's model file, dependency, device or output is missing or wrong.

    The message names the model, package or estimator and says what to install or pass.
    """


@runtime_checkable
class PoseEstimator(Protocol):
    """What the extraction needs from a pose estimator.

    ``__call__`` takes a batch of HxWx3 uint8 RGB person crops (each whole image is the person
    box; sizes may differ) and returns ``[N, 17, 3]`` float32: COCO-17 ``x, y`` in pixels of each
    image and a score in ``[0, 1]``. ``name`` is stored in the skeleton file (two estimators never
    mix in one store); ``device`` is reported in the summary.
    """

    name: str
    device: str

    def __call__(self, images: list[np.ndarray]) -> np.ndarray: ...


def _is_url(model: str) -> bool:
    return "://" in model


class RTMPoseEstimator:
    """RTMPose (COCO-17, 256x192) on onnxruntime through rtmlib, one forward pass per batch.

    ``model`` is a local ``.onnx`` file or a URL rtmlib downloads (a zip holding the ONNX file);
    it is checked before rtmlib is imported, so a wrong path fails at once. ``device`` is
    ``"cuda"``, ``"cpu"`` or None for CUDA when onnxruntime offers its CUDA execution provider
    (the ``onnxruntime-gpu`` package), else the CPU.
    """

    def __init__(self, model: str | Path = RTMPOSE_M_URL, device: str | None = None) -> None:
        model = str(model)
        if not _is_url(model):
            path = Path(model).expanduser()
            if not path.is_file():
                state = "is a folder, not a file" if path.exists() else "does not exist"
                raise EstimatorError(
                    f"RTMPose model {path} {state}. Pass --model a local .onnx file of RTMPose-m COCO-17 "
                    f"256x192 (unzip the file at {RTMPOSE_M_URL}; it holds end2end.onnx) or that URL itself, "
                    "which rtmlib downloads once (needs internet)."
                )
            if path.suffix.lower() != ".onnx":
                raise EstimatorError(
                    f"RTMPose model {path} is not an .onnx file. Unzip it and pass the .onnx inside "
                    "(end2end.onnx), or pass the URL of the zip, which rtmlib unpacks itself."
                )
            model = str(path)
        try:
            import onnxruntime
            from rtmlib import RTMPose
        except ImportError as err:
            raise EstimatorError(
                f"the RTMPose estimator needs rtmlib and onnxruntime ({err}). Install them with "
                f"`{INSTALL_HINT}` (for a GPU, also `pip install onnxruntime-gpu` in place of onnxruntime)."
            ) from err
        has_cuda = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
        if device is None:
            device = "cuda" if has_cuda else "cpu"
        if device not in ("cpu", "cuda"):
            raise EstimatorError(f"device={device!r} is not an RTMPose device; use 'cpu' or 'cuda' (or leave it out).")
        if device == "cuda" and not has_cuda:
            raise EstimatorError(
                f"device='cuda' needs onnxruntime's CUDAExecutionProvider, but this onnxruntime has only "
                f"{onnxruntime.get_available_providers()}. `pip install onnxruntime-gpu` in place of "
                "onnxruntime, or pass --device cpu."
            )
        try:
            self._model = RTMPose(model, model_input_size=RTMPOSE_INPUT_SIZE, backend="onnxruntime", device=device)
        except Exception as err:  # rtmlib raises URLError, OSError or onnxruntime's own exception types
            where = ("downloading it needs internet: download the zip where there is, unzip it and pass "
                     "--model path/to/end2end.onnx" if _is_url(model) else
                     "it must be an RTMPose ONNX export (COCO-17, 256x192), e.g. end2end.onnx from the zip at "
                     f"{RTMPOSE_M_URL}")
            raise EstimatorError(f"cannot load RTMPose model {model} ({type(err).__name__}: {err}); {where}.") from err
        session = self._model.session
        # onnxruntime falls back to the CPU when the CUDA libraries fail to load: report what runs.
        self.device = "cuda" if "CUDAExecutionProvider" in session.get_providers() else "cpu"
        self._input = session.get_inputs()[0]
        # The OpenMMLab exports have a dynamic batch axis; a fixed one of 1 runs frame by frame.
        self._batched = not isinstance(self._input.shape[0], int) or self._input.shape[0] < 1
        # The file stem names the model: rtmlib caches a downloaded zip as <zip stem>.onnx, so the
        # URL and that cached file name the same estimator and can continue one store.
        self.name = f"rtmpose {Path(urlparse(model).path if _is_url(model) else model).stem}"

    def _forward(self, batch: np.ndarray) -> list[np.ndarray]:
        tensor = np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)
        return self._model.session.run(None, {self._input.name: tensor})

    def __call__(self, images: list[np.ndarray]) -> np.ndarray:
        if not images:
            return np.zeros((0, len(COCO17_NAMES), 3), np.float32)
        prepared, centers, scales = [], [], []
        for image in images:
            height, width = image.shape[:2]
            # RTMPose was trained on RGB (mmpose converts BGR to RGB before normalising with these
            # RGB means); rtmlib normalises whatever it is given, so the RGB crop goes in as it is.
            crop, center, scale = self._model.preprocess(image, [0, 0, width, height])
            prepared.append(crop)
            centers.append(center)
            scales.append(scale)
        if self._batched:
            simcc_x, simcc_y = self._forward(np.stack(prepared))[:2]
        else:
            outputs = [self._forward(crop[None])[:2] for crop in prepared]
            simcc_x, simcc_y = (np.concatenate([o[i] for o in outputs]) for i in (0, 1))
        result = np.empty((len(images), len(COCO17_NAMES), 3), np.float32)
        for i, (center, scale) in enumerate(zip(centers, scales)):
            points, scores = self._model.postprocess([simcc_x[i:i + 1], simcc_y[i:i + 1]], center, scale)
            result[i, :, :2] = points[0]
            # SimCC maxima can exceed 1; the store documents scores in [0, 1].
            result[i, :, 2] = np.clip(scores[0], 0.0, 1.0)
        return result


def load_estimator(spec: str = "rtmpose", model: str | None = None, device: str | None = None) -> PoseEstimator:
    """The estimator ``spec`` names: ``"rtmpose"`` or a plug-in ``"package.module:ClassName"``.

    RTMPose gets ``model`` (default: the RTMPose-m URL) and ``device``. A plug-in class is
    constructed with the keyword arguments ``model=`` and ``device=`` for those given (neither:
    no arguments) and must follow :class:`PoseEstimator`.
    """
    if spec == "rtmpose":
        return RTMPoseEstimator(RTMPOSE_M_URL if model is None else model, device)
    module_name, _, class_name = spec.partition(":")
    if not module_name or not class_name:
        raise EstimatorError(f"--estimator {spec!r} is neither 'rtmpose' nor 'package.module:ClassName'.")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as err:
        raise EstimatorError(
            f"--estimator {spec!r} cannot be imported ({err}). Give an importable module (on PYTHONPATH or "
            "installed) and a class in it, as 'package.module:ClassName'."
        ) from err
    kwargs = {key: value for key, value in (("model", model), ("device", device)) if value is not None}
    estimator = cls(**kwargs)
    missing = [attr for attr in ("name", "device") if not isinstance(getattr(estimator, attr, None), str)]
    if missing or not callable(estimator):
        raise EstimatorError(
            f"--estimator {spec!r} built {type(estimator).__name__}, which lacks "
            f"{missing or ['__call__']}: a pose estimator needs string attributes 'name' and 'device' and "
            "__call__(images) -> [N, 17, 3] (see vireid_lib.skeletons.PoseEstimator)."
        )
    return estimator
