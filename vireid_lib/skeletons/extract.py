"""Run a pose estimator over every frame of a dataset and append the keypoints to a skeleton store.

STAR reads COCO-17 keypoints beside every frame (:mod:`vireid_lib.data.skeletons`); on the real
HITSZ-VCM that is ~460k frames, hours of pose estimation, so the extraction is built to be
stopped and resumed: each batch is appended to the store and flushed as soon as it is computed,
and a rerun skips every frame the store already holds, once it has checked that the store was
started on this copy of the data (its recorded fingerprint of the frame list, see
:mod:`vireid_lib.data.skeletons`): a store of another copy is refused, never continued. Images
are decoded by a few threads while the estimator works on the previous batch (PIL releases the
GIL while decoding).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..data.bupt import BUPTCampus
from ..data.datasets import skeleton_key
from ..data.errors import DatasetError
from ..data.io import read_image
from ..data.skeletons import COCO17_NAMES, SkeletonStore, SkeletonWriter
from ..data.vcm import HITSZVCM
from ..progress import progress
from .estimators import EstimatorError, PoseEstimator


@dataclass(frozen=True)
class ExtractConfig:
    """Knobs of one extraction run; none changes the keypoints, only speed and the summary."""

    batch_size: int = 32
    min_score: float = 0.3  # a frame none of whose joints reaches this counts as "no confident joint"
    read_threads: int = 4
    show_progress: bool = True

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise DatasetError(f"batch_size={self.batch_size!r} must be a positive integer (e.g. 32).")
        if self.read_threads < 0:
            raise DatasetError(f"read_threads={self.read_threads!r} must be 0 (decode in the main thread) or more.")
        if not 0.0 <= self.min_score <= 1.0:
            raise DatasetError(f"min_score={self.min_score!r} must lie in [0, 1] (scores are in [0, 1]).")


def vcm_frames(root: Path | str) -> list[tuple[str, Path]]:
    """Every HITSZ-VCM frame, train then test, as ``(pid/mod/cam/file, image path)`` in list order.

    Read from the name lists, not the tracklets, so frames of tracklets the reader drops for
    being short (under 12 frames) are covered too: a shorter ``min_seq_len`` needs them.
    """
    reader = HITSZVCM(root)
    frames: dict[str, Path] = {}
    for subset, images in (("train", reader.train_images), ("test", reader.test_images)):
        for key in reader.frame_names(subset):
            frames.setdefault(key, images / key)
    return list(frames.items())


def bupt_frames(root: Path | str) -> list[tuple[str, Path]]:
    """Every BUPTCampus frame of the four lists (training, auxiliary, query, gallery; both modalities of each
    tracklet, the visible remainder the test sampler drops included), as ``(pid/mod/cam/file, image path)``."""
    reader = BUPTCampus(root)
    frames: dict[str, Path] = {}
    for record in reader.used_records():
        for frame in record.frames:
            frames.setdefault(skeleton_key(frame), Path(frame))
    return list(frames.items())


FRAME_LISTS: dict[str, Callable[[Path | str], list[tuple[str, Path]]]] = {"vcm": vcm_frames, "bupt": bupt_frames}


def read_rgb(path: Path) -> np.ndarray:
    """An image as an HxWx3 uint8 RGB array; a missing or corrupt file is a DatasetError naming it."""
    return np.asarray(read_image(path), dtype=np.uint8)


def _batches(frames: Sequence[tuple[str, Path]], batch_size: int,
             pool: ThreadPoolExecutor | None) -> Iterator[tuple[list[str], list[np.ndarray]]]:
    """Decoded batches, the next one being read (by ``pool``) while the caller works on this one."""
    chunks = [frames[i:i + batch_size] for i in range(0, len(frames), batch_size)]
    if pool is None:
        for chunk in chunks:
            yield [key for key, _ in chunk], [read_rgb(path) for _, path in chunk]
        return
    pending: list[Future] = []
    for index, chunk in enumerate(chunks):
        if index == 0:
            pending = [pool.submit(read_rgb, path) for _, path in chunk]
        current = pending
        if index + 1 < len(chunks):
            pending = [pool.submit(read_rgb, path) for _, path in chunks[index + 1]]
        yield [key for key, _ in chunk], [future.result() for future in current]


def _check_output(estimator: PoseEstimator, keypoints: np.ndarray, images: list[np.ndarray]) -> np.ndarray:
    keypoints = np.asarray(keypoints, dtype=np.float32)
    expected = (len(images), len(COCO17_NAMES), 3)
    if keypoints.shape != expected:
        raise EstimatorError(
            f"estimator {estimator.name!r} returned keypoints of shape {keypoints.shape} for {len(images)} "
            f"images; it must return {expected} (COCO-17 x, y, score per image)."
        )
    return keypoints


def summarise_store(path: Path | str, min_score: float) -> dict:
    """Frames, mean score and frames without a joint scoring ``min_score`` or more, per modality."""
    totals: dict[str, list[float]] = {}
    with SkeletonStore(path) as store:
        for folder in store.folders():
            modality = folder.split("/")[1] if folder.count("/") >= 1 else folder
            _, keypoints = store.read_folder(folder)
            scores = keypoints[:, :, 2]
            frames, score_sum, unconfident = totals.setdefault(modality, [0, 0.0, 0])
            totals[modality] = [frames + len(scores), score_sum + float(scores.sum()),
                                unconfident + int((scores.max(axis=1, initial=0.0) < min_score).sum())]
    joints = len(COCO17_NAMES)
    return {
        "frames": {m: int(t[0]) for m, t in sorted(totals.items())},
        "mean_score": {m: t[1] / (t[0] * joints) if t[0] else float("nan") for m, t in sorted(totals.items())},
        "no_confident_joint": {m: int(t[2]) for m, t in sorted(totals.items())},
    }


def extract(dataset: str, root: Path | str, out: Path | str, estimator: PoseEstimator,
            config: ExtractConfig = ExtractConfig(), overwrite: bool = False) -> dict:
    """Append ``estimator``'s keypoints for every frame of ``dataset`` at ``root`` missing from ``out``.

    ``out`` must be new or a store started on the same copy of the dataset with the same estimator;
    ``overwrite`` deletes it first and starts again.

    Returns the summary: frames written now and in the store, the dataset's frame count,
    mean score and frames with no confident joint per modality (over the whole store, so a
    resumed run reports what an uninterrupted one would), the run's seconds and frames/s.
    """
    if dataset not in FRAME_LISTS:
        raise DatasetError(f"dataset={dataset!r} has no frame list for skeleton extraction; use one of {sorted(FRAME_LISTS)}.")
    out = Path(out)
    frames = FRAME_LISTS[dataset](root)
    start = time.perf_counter()
    written = 0
    with SkeletonWriter(out, dataset, estimator.name, frames=dict(frames), overwrite=overwrite) as writer:
        todo = [(key, path) for key, path in frames if not writer.done(key)]
        already = len(frames) - len(todo)
        pool = ThreadPoolExecutor(config.read_threads) if config.read_threads else None
        bar = progress(total=len(todo), desc=f"skeletons {dataset} ({already} already stored)",
                       enabled=config.show_progress, unit="frame")
        try:
            for keys, images in _batches(todo, config.batch_size, pool):
                keypoints = _check_output(estimator, estimator(images), images)
                written += writer.add(keys, keypoints)
                bar.update(len(keys))
        finally:
            bar.close()
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
    seconds = time.perf_counter() - start
    stats = summarise_store(out, config.min_score)
    return {
        "dataset": dataset,
        "store": str(out),
        "estimator": estimator.name,
        "device": estimator.device,
        "dataset_frames": len(frames),
        "frames_written": written,
        "frames_in_store": sum(stats["frames"].values()),
        "frames_per_modality": stats["frames"],
        "mean_score": stats["mean_score"],
        "min_score": config.min_score,
        "no_confident_joint": stats["no_confident_joint"],
        "seconds": seconds,
        "frames_per_second": written / seconds if seconds > 0 else 0.0,
        "config": asdict(config),
    }


def format_summary(summary: dict) -> str:
    """The summary as the lines the command prints."""
    per_modality = ", ".join(
        f"{m} {summary['mean_score'][m]:.3f} ({summary['frames_per_modality'][m]} frames)" for m in summary["mean_score"]
    )
    unconfident = ", ".join(f"{m} {n}" for m, n in summary["no_confident_joint"].items())
    return "\n".join([
        f"skeleton store   {summary['store']} (dataset {summary['dataset']}, estimator {summary['estimator']!r} on {summary['device']})",
        f"frames written   {summary['frames_written']} now; {summary['frames_in_store']} in the store "
        f"of the dataset's {summary['dataset_frames']}",
        f"mean score       {per_modality or 'no frames'}",
        f"no joint >= {summary['min_score']:g}  {unconfident or 'no frames'}",
        f"time             {summary['seconds']:.1f} s, {summary['frames_per_second']:.1f} frames/s",
    ])
