"""CST's diversity-consistency (DC) loss, in the spirit of VICReg (Bardes et al., ICLR 2022).

CST (Feng et al., IEEE TMM 2024) adds it to cross-entropy and triplet to keep the
triplet-trained representation from collapsing. Its code is not public; this is written from
the paper's description:

* **variance** (diversity): every feature dimension keeps a standard deviation of at least
  ``gamma`` over the batch, ``mean_d relu(gamma - sqrt(var_d + eps))``: zero spread costs
  ``gamma`` per dimension;
* **invariance** (consistency across modalities): for every identity present in both
  modalities, the squared distance between its mean visible and mean infrared feature, per
  dimension, averaged over those identities: identical cross-modal features cost nothing;
* **covariance** (diversity): the squared off-diagonal entries of the batch covariance
  matrix, summed and divided by the dimension ``D``, as VICReg scales it, so dimensions
  decorrelate.

The batch-size caveat: a covariance estimated from ``N`` samples has rank at most ``N - 1``.
With ``N - 1 < D`` no feature set is fully decorrelated, and at unit variance the covariance
term cannot fall below :func:`covariance_floor` ``= D / (N - 1) - 1`` (reached when the
``N - 1`` non-zero eigenvalues are equal). At CST's recipe, 32 clips and ``D = 1024`` (two
512-d transformer features), the floor is about 32 (1.3 after the 0.04 weight); what the term
can still do is spread the batch's variance evenly over the directions it spans, and its
pull on the variance scale works against the variance term. VICReg runs with ``N = 2048``
and ``D = 8192`` (floor 3). Larger batches, or a DC loss on narrower features, lower it.

The term weights are this workbook's choice (the paper's are not known here): VICReg's
25 : 25 : 1 ratio, scaled to 1 : 1 : 0.04 so the sum sits next to cross-entropy.
"""

from __future__ import annotations

import torch
from torch import nn


def variance_term(features: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4) -> torch.Tensor:
    std = torch.sqrt(features.var(dim=0, unbiased=True) + eps)
    return torch.relu(gamma - std).mean()


def invariance_term(features: torch.Tensor, labels: torch.Tensor, modalities: torch.Tensor) -> torch.Tensor:
    """Mean over identities seen in both modalities of ``mean_d (mean_vis - mean_ir)^2``; 0 if none."""
    visible, infrared = modalities == 0, modalities == 1
    pids = [p for p in labels.unique() if bool(((labels == p) & visible).any()) and bool(((labels == p) & infrared).any())]
    if not pids:
        return features.sum() * 0.0  # keeps the graph (and the device) without contributing
    gaps = [features[(labels == p) & visible].mean(0) - features[(labels == p) & infrared].mean(0) for p in pids]
    return torch.stack(gaps).pow(2).mean()


def covariance_term(features: torch.Tensor) -> torch.Tensor:
    n, d = features.shape
    centred = features - features.mean(dim=0)
    cov = centred.T @ centred / (n - 1)
    off_diagonal = cov - torch.diag(torch.diagonal(cov))
    return off_diagonal.pow(2).sum() / d


def covariance_floor(batch: int, dim: int) -> float:
    """The least :func:`covariance_term` of ``batch`` unit-variance ``dim``-d features: ``D / (N - 1) - 1``
    when ``N - 1 < D`` (the covariance's rank is at most ``N - 1``), else 0."""
    if batch < 2 or dim < 1:
        raise ValueError(f"a covariance needs batch >= 2 and dim >= 1, got batch={batch}, dim={dim}.")
    return max(0.0, dim / (batch - 1) - 1.0)


class DiversityConsistencyLoss(nn.Module):
    """``forward(features [N, D], labels [N], modalities [N]) -> {"dc", "dc_variance", "dc_invariance", "dc_covariance"}``.

    ``modalities`` holds 0 for visible and 1 for infrared samples. ``"dc"`` is the weighted
    sum; the terms are returned unweighted for logging. Computed in float32.
    """

    def __init__(self, variance_weight: float = 1.0, invariance_weight: float = 1.0, covariance_weight: float = 0.04,
                 gamma: float = 1.0, eps: float = 1e-4) -> None:
        super().__init__()
        for name, value in (("variance_weight", variance_weight), ("invariance_weight", invariance_weight),
                            ("covariance_weight", covariance_weight), ("gamma", gamma)):
            if value < 0:
                raise ValueError(f"{name}={value} must be non-negative.")
        self.variance_weight = variance_weight
        self.invariance_weight = invariance_weight
        self.covariance_weight = covariance_weight
        self.gamma = gamma
        self.eps = eps

    def forward(self, features: torch.Tensor, labels: torch.Tensor, modalities: torch.Tensor) -> dict[str, torch.Tensor]:
        if features.dim() != 2 or features.shape[0] < 2:
            raise ValueError(f"the DC loss needs a [N >= 2, D] feature batch, got shape {tuple(features.shape)}.")
        if not (len(labels) == len(modalities) == features.shape[0]):
            raise ValueError(f"features ({features.shape[0]}), labels ({len(labels)}) and modalities "
                             f"({len(modalities)}) must have the same length.")
        x = features.float()
        terms = {"dc_variance": variance_term(x, self.gamma, self.eps),
                 "dc_invariance": invariance_term(x, labels, modalities),
                 "dc_covariance": covariance_term(x)}
        total = (self.variance_weight * terms["dc_variance"] + self.invariance_weight * terms["dc_invariance"]
                 + self.covariance_weight * terms["dc_covariance"])
        return {"dc": total, **terms}


class ProjectedPairDistance(nn.Module):
    """MMN's distribution-consistency loss (``DCLoss`` in ZYK100/MMN ``loss.py``).

    ``forward(x)`` with ``x = [A; B]`` (two halves paired by position, e.g. the visible and the
    infrared middle-modality features of the same identities): each row is L2-normalised,
    projected by ``Linear(D, 256, no bias) -> BN -> ReLU -> Linear(256, 256) -> BN``, normalised
    again, and the loss is the mean Euclidean distance between row i of A and row i of B.
    Identical halves cost nothing.
    """

    def __init__(self, in_dim: int = 2048, hidden: int = 256) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden, bias=False)
        self.fc2 = nn.Sequential(nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.dim() != 2 or features.shape[0] % 2:
            raise ValueError(f"the paired distance needs [2N, D] features (two halves), got {tuple(features.shape)}.")
        x = nn.functional.normalize(features.float(), dim=1)
        x = nn.functional.normalize(self.fc2(self.fc1(x)), dim=1)
        first, second = x.chunk(2)
        return (first - second).norm(dim=1).mean()
