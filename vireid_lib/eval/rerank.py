"""k-reciprocal re-ranking (Zhong et al., "Re-ranking Person Re-identification with
k-reciprocal Encoding", CVPR 2017).

An opt-in extra: **no paper reproduced in this workbook uses it**, and a table that does must
say so. It is here because researchers routinely report it beside the plain numbers.

The method, as in the paper's Section 3: on the joint set of probes and gallery items,
(1) each item's k-reciprocal neighbours R(p, k1) are the k1-nearest neighbours that also have
p among their own k1-nearest; (2) R is enlarged with R(q, k1/2) of each member q that shares
more than two thirds of its own set with it; (3) the set is encoded as a vector V_p of
Gaussian-kernel weights exp(-d(p, q)) over its members, normalised to sum 1; (4) local query
expansion averages V over the k2 nearest neighbours; (5) the Jaccard distance
1 - sum(min(V_p, V_g)) / sum(max(V_p, V_g)) is blended with the original distance:
d* = (1 - lambda) d_J + lambda d.
"""

from __future__ import annotations

import numpy as np
import torch

from .distance import check_features
from .scoring import EvaluationError


def k_reciprocal_rerank(
    query: object, gallery: object, k1: int = 20, k2: int = 6, lambda_value: float = 0.3
) -> np.ndarray:
    """Re-ranked query x gallery distances from L2-normalised features.

    Memory and time grow with (N_query + N_gallery)^2: fine for SYSU-MM01 and RegDB, heavy
    for the whole HITSZ-VCM test set on a small machine.
    """
    if not (isinstance(k1, int) and isinstance(k2, int) and k1 >= 1 and k2 >= 1):
        raise EvaluationError(f"k1={k1!r} and k2={k2!r} must be positive integers (the paper uses 20 and 6).")
    if not 0.0 <= lambda_value <= 1.0:
        raise EvaluationError(f"lambda_value={lambda_value!r} must lie in [0, 1] (the paper uses 0.3).")
    q = torch.nn.functional.normalize(check_features("query features", query).double(), dim=1)
    g = torch.nn.functional.normalize(check_features("gallery features", gallery).double().to(q.device), dim=1)
    num_q = q.shape[0]
    features = torch.cat([q, g]).cpu()
    n = features.shape[0]
    # Squared Euclidean distances on unit vectors, scaled per column to [0, 1] as in the paper's code base.
    dist = (2 - 2 * features @ features.T).clamp(min=0).numpy()
    dist = dist / np.maximum(dist.max(axis=0, keepdims=True), 1e-12)
    rank = np.argsort(dist, axis=1, kind="stable")
    k1 = min(k1, n - 1)
    half = max(1, int(round(k1 / 2)))

    def reciprocal(p: int, k: int) -> np.ndarray:
        forward = rank[p, : k + 1]
        back = rank[forward, : k + 1]
        return forward[(back == p).any(axis=1)]

    weights = np.zeros((n, n), dtype=np.float64)
    for p in range(n):
        members = reciprocal(p, k1)
        expanded = members
        for candidate in members:
            near = reciprocal(int(candidate), half)
            if len(np.intersect1d(near, members)) > 2 / 3 * len(near):
                expanded = np.union1d(expanded, near)
        kernel = np.exp(-dist[p, expanded])
        weights[p, expanded] = kernel / kernel.sum()
    if k2 > 1:
        weights = weights[rank[:, :k2]].mean(axis=1)
    # Rows sum to one, so sum(max) = 2 - sum(min): the Jaccard distance needs only the minima.
    # Blocks of queries keep the query x gallery x items temporary near 2^24 entries.
    gallery_weights = weights[num_q:]
    shared = np.empty((num_q, n - num_q))
    block = max(1, (1 << 24) // max(1, gallery_weights.size))
    for start in range(0, num_q, block):
        stop = min(num_q, start + block)
        shared[start:stop] = np.minimum(weights[start:stop, None, :], gallery_weights[None]).sum(axis=2)
    jaccard = 1 - shared / (2 - shared)
    return (1 - lambda_value) * jaccard + lambda_value * dist[:num_q, num_q:]
