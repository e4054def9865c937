"""Pose keypoints for every frame of a dataset, for the skeleton-guided methods (STAR).

``python -m vireid_lib.skeletons extract vcm ROOT OUT.h5`` runs a 2-D pose estimator (RTMPose
through rtmlib by default, or any :class:`PoseEstimator`) over every frame and writes the
COCO-17 store that :class:`vireid_lib.data.skeletons.SkeletonStore` reads. The core install
does not need the estimator's packages: ``pip install "vireid[skeletons]"`` adds them.
"""

from __future__ import annotations

from .estimators import RTMPOSE_M_URL, EstimatorError, PoseEstimator, RTMPoseEstimator, load_estimator
from .extract import FRAME_LISTS, ExtractConfig, extract, format_summary, summarise_store, vcm_frames

__all__ = [
    "EstimatorError", "ExtractConfig", "FRAME_LISTS", "PoseEstimator", "RTMPOSE_M_URL", "RTMPoseEstimator",
    "extract", "format_summary", "load_estimator", "summarise_store", "vcm_frames",
]
