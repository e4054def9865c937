"""Consistency losses between paired features: CST's diversity-consistency (DC) loss and MMN's projected distance.

CST's DC loss (``FYJ112233/CST`` ``loss.py``, class ``DC``) is VICReg's (Bardes et al., ICLR 2022)
between the two halves of a batch, ``x`` and ``y`` paired by position (in the workbook: the
visible and the infrared features of the same identities):

* **invariance**: ``mse(x, y)`` over every element;
* **variance**: per half, each dimension centred, ``std = sqrt(var + 1e-4)`` (unbiased), and
  ``mean relu(1 - std)``; the two halves averaged;
* **covariance**: per half, the off-diagonal entries of ``x^T x / rows`` squared, summed and
  divided by ``features``; the two halves added.

The released code divides the covariance by ``rows = args.batch_size - 1 = 3`` (the script's
identities per batch minus one, whatever the real number of rows) and by ``features =
8192^3`` (a width of 8192 cubed, not the feature width): the term is practically zero. That is
the default (``official=True``, it produced the numbers); ``official=False`` divides by
``N - 1`` and by the width ``D``, as VICReg does. The weights are ``test.py``'s ``--inv-coeff 25
--var-coeff 25 --cov-coeff 1``.
"""

from __future__ import annotations

import torch
from torch import nn

OFFICIAL_COVARIANCE_ROWS = 3  # loss.py: (args.batch_size - 1) with test.py's --batch-size 4
OFFICIAL_COVARIANCE_FEATURES = 8192 ** 3  # loss.py: num_features = 8192 * 8192 * 8192


def off_diagonal_square_sum(matrix: torch.Tensor) -> torch.Tensor:
    return matrix.pow(2).sum() - torch.diagonal(matrix).pow(2).sum()


class PairedDiversityConsistency(nn.Module):
    """``forward(x [N, D], y [N, D]) -> {"dc", "dc_invariance", "dc_variance", "dc_covariance"}``: the weighted sum
    and the unweighted terms (see the module doc), computed in float32."""

    def __init__(self, invariance: float = 25.0, variance: float = 25.0, covariance: float = 1.0,
                 official: bool = True, eps: float = 1e-4) -> None:
        super().__init__()
        for name, value in (("invariance", invariance), ("variance", variance), ("covariance", covariance)):
            if value < 0:
                raise ValueError(f"the DC loss's {name} weight must be >= 0, got {value}.")
        self.weights = (invariance, variance, covariance)
        self.official, self.eps = official, eps

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.dim() != 2 or x.shape != y.shape or x.shape[0] < 2:
            raise ValueError(f"the DC loss pairs two [N >= 2, D] halves of one shape, got {tuple(x.shape)} and "
                             f"{tuple(y.shape)}: the batch needs as many visible as infrared clips.")
        x, y = x.float(), y.float()
        invariance = nn.functional.mse_loss(x, y)
        x, y = x - x.mean(dim=0), y - y.mean(dim=0)
        std_x, std_y = (torch.sqrt(h.var(dim=0) + self.eps) for h in (x, y))
        variance = torch.relu(1 - std_x).mean() / 2 + torch.relu(1 - std_y).mean() / 2
        rows = OFFICIAL_COVARIANCE_ROWS if self.official else x.shape[0] - 1
        features = OFFICIAL_COVARIANCE_FEATURES if self.official else x.shape[1]
        covariance = sum(off_diagonal_square_sum(h.T @ h / rows) for h in (x, y)) / features
        a, b, c = self.weights
        return {"dc": a * invariance + b * variance + c * covariance, "dc_invariance": invariance.detach(),
                "dc_variance": variance.detach(), "dc_covariance": covariance.detach()}


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
