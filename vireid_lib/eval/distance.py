"""Distances between query and gallery features (smaller = closer)."""

from __future__ import annotations

import numpy as np
import torch

from .scoring import EvaluationError

METRICS = ("cosine", "dot", "euclidean", "sqeuclidean")


def check_features(name: str, features: object) -> torch.Tensor:
    """Features as a 2-D float tensor; empty, NaN or infinite features are an error."""
    f = features if isinstance(features, torch.Tensor) else torch.as_tensor(np.asarray(features))
    if f.ndim != 2 or f.shape[0] == 0 or f.shape[1] == 0:
        raise EvaluationError(f"{name} must be a non-empty N x D feature matrix, got shape {tuple(f.shape)}.")
    if not f.dtype.is_floating_point:
        f = f.float()
    bad = ~torch.isfinite(f)
    if bad.any():
        row = int(bad.any(1).nonzero()[0])
        raise EvaluationError(
            f"{name} holds NaN or infinite values ({int(bad.any(1).sum())} rows, first row {row}); the model "
            "producing them diverged: check the training log for a NaN loss."
        )
    return f


def pairwise_distance(query: object, gallery: object, metric: str = "cosine") -> torch.Tensor:
    """Query x gallery distances.

    ``cosine`` is the official choice of every paper here: the negative dot product of
    L2-normalised features (Cross-Modal-Re-ID-baseline and MITML rank by ``-q @ g.T``; any
    monotone rewrite such as ``1 - cos`` could merge near-ties in float32). ``sqeuclidean``
    is the IV-ReID baseline's squared distance on the features as given (normalise first
    to reproduce it: on unit vectors it ranks exactly like cosine); ``euclidean`` its root.
    ``dot`` is the negative dot product of the features as given, for features that are sums of
    normalised parts (MMN's summed similarity matrices: ``(q1 + q2) . (g1 + g2)``).
    """
    if metric not in METRICS:
        raise EvaluationError(f"metric={metric!r} is not known; use one of {METRICS}.")
    q = check_features("query features", query)
    g = check_features("gallery features", gallery).to(q.device)
    if q.shape[1] != g.shape[1]:
        raise EvaluationError(
            f"query features have {q.shape[1]} dimensions and gallery features {g.shape[1]}; "
            "extract both with the same model."
        )
    if metric == "cosine":
        return -(torch.nn.functional.normalize(q, dim=1) @ torch.nn.functional.normalize(g, dim=1).T)
    if metric == "dot":
        return -(q @ g.T)
    squared = (q * q).sum(1, keepdim=True) + (g * g).sum(1)[None, :] - 2 * (q @ g.T)
    squared = squared.clamp(min=0)
    return squared if metric == "sqeuclidean" else squared.sqrt()
