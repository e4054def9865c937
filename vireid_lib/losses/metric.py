"""Metric losses on Euclidean distances: batch-hard triplet and AGW's weighted regularised triplet.

Each loss is split into a pure mining function on a distance matrix, which returns one
anchor-positive and one anchor-negative distance per anchor, and a small ``nn.Module`` that
computes the distances and the loss. ``forward(features, labels)`` returns the scalar loss
only, so terms add up as ``ce + triplet``; ``loss_and_precision(features, labels)`` returns
``(loss, precision)`` for logging, where ``precision`` (a detached 0-d tensor, no host sync)
is the fraction of anchors whose negative distance exceeds the positive one, the quantity the
official code accumulates as ``correct`` (it counts ``>=``; this counts strictly ``>`` so that
collapsed features, where every distance ties, read as 0 rather than 100 per cent).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Official pdist floor (AGW ``pdist_torch``, reid-strong-baseline ``euclidean_dist``):
# sqrt(1e-12) = 1e-6 on the diagonal, and clamp passes no gradient below it, so the
# infinite derivative of sqrt at 0 never turns into NaN.
_SQRT_FLOOR = 1e-12

# Added to the softmax denominator by AGW's ``softmax_weights`` ("avoid division by zero").
_AGW_DENOMINATOR_EPS = 1e-6

_SAMPLER_FIX = (
    "Fix the sampler: draw at least 2 images per identity (e.g. AGW and the IV-ReID baseline draw "
    "4 visible + 4 infrared per identity) and at least 2 identities per batch (batch size at least "
    "2 x images per identity; the papers use 8 identities)."
)


def pairwise_euclidean(x: torch.Tensor, y: torch.Tensor, squared: bool = False) -> torch.Tensor:
    """Euclidean distances [M, N] between the rows of ``x`` [M, D] and ``y`` [N, D].

    Uses ``|x|^2 + |y|^2 - 2 x.y`` like the official code. Squared distances are clamped at 0
    (cancellation can make them slightly negative); the root is taken of the squared distance
    clamped at 1e-12, as in the official code, so identical rows give 1e-6 and a finite (zero)
    gradient. The computation runs in at least float32 with autocast off: in fp16/bf16 the
    cancellation would swamp the distances between nearby features.
    """
    if x.ndim != 2 or y.ndim != 2:
        raise ValueError(f"x and y must be N x D matrices, got shapes {tuple(x.shape)} and {tuple(y.shape)}.")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x has {x.shape[1]} dimensions and y {y.shape[1]}; both must come from one embedding.")
    dtype = torch.promote_types(torch.promote_types(x.dtype, y.dtype), torch.float32)
    with torch.autocast(device_type=x.device.type, enabled=False):
        x, y = x.to(dtype), y.to(dtype)
        dist = (x * x).sum(1, keepdim=True) + (y * y).sum(1)[None, :] - 2.0 * (x @ y.T)
        if squared:
            return dist.clamp(min=0.0)
        return dist.clamp(min=_SQRT_FLOOR).sqrt()


def _label_masks(dist: torch.Tensor, labels: torch.Tensor, loss: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(same-label mask with the diagonal, different-label mask); raises if an anchor lacks either."""
    if dist.ndim != 2 or dist.shape[0] != dist.shape[1]:
        raise ValueError(f"dist must be a square N x N matrix of in-batch distances, got {tuple(dist.shape)}.")
    n = dist.shape[0]
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},) to match the {n} x {n} distances, got {tuple(labels.shape)}.")
    labels = labels.to(dist.device)
    same = labels[:, None] == labels[None, :]
    other_positive = same & ~torch.eye(n, dtype=torch.bool, device=dist.device)
    negative = ~same
    lonely = ~other_positive.any(1)
    isolated = ~negative.any(1)
    # One host sync for both checks; without them the max/min below would silently mine the
    # anchor itself (distance 1e-6) or an empty set (+inf).
    if (lonely | isolated).any():
        if lonely.any():
            i = int(lonely.nonzero()[0])
            raise ValueError(
                f"{loss} needs every anchor to have another image of its identity, but anchor {i} "
                f"(label {labels[i].item()}) is the only one of its identity in this batch of {n} "
                f"({int(lonely.sum())} such anchors). {_SAMPLER_FIX}"
            )
        raise ValueError(
            f"{loss} needs every anchor to have an image of another identity, but all {n} images in this "
            f"batch share label {labels[0].item()}. {_SAMPLER_FIX}"
        )
    return same, negative


def batch_hard_mining(dist: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Hardest positive and negative distance of every anchor (Hermans et al., 2017).

    ``d_ap[i]`` is the largest distance from ``i`` to another sample with its label (the
    anchor itself is excluded; the official code includes it, which only matters, and then
    silently gives 1e-6, for an anchor without positives: that raises here) and ``d_an[i]`` the
    smallest distance to a sample of another label. Returns ``(d_ap, d_an)``, each [N].
    """
    same, negative = _label_masks(dist, labels, "batch-hard triplet")
    positive = same & ~torch.eye(dist.shape[0], dtype=torch.bool, device=dist.device)
    d_ap = dist.masked_fill(~positive, float("-inf")).amax(dim=1)
    d_an = dist.masked_fill(~negative, float("inf")).amin(dim=1)
    return d_ap, d_an


def _agw_softmax_weights(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """AGW's masked softmax, reproduced on purpose with its two numerical quirks.

    The row shift is the max of ``logits * mask``, so masked entries count as 0 in it, and the
    denominator gets ``+ 1e-6``. For positives (logits = distances >= 0) the shift is the
    largest positive distance, a proper softmax up to the 1e-6. For negatives (logits =
    -distances <= 0) every row holds masked zeros, so the shift is always 0: the weights are
    ``exp(-d) / (sum exp(-d) + 1e-6)``, which sum to well under 1 once ``sum exp(-d_an)`` is not
    much larger than 1e-6 (negatives beyond about 14 + log(#negatives) apart) and all vanish
    beyond about 100 in float32. Masked entries are zeroed before ``exp`` (as the official code
    does by passing ``dist * mask``) so they never overflow.
    """
    masked = logits.masked_fill(~mask, 0.0)
    shift = masked.amax(dim=1, keepdim=True)
    e = torch.exp(masked - shift).masked_fill(~mask, 0.0)
    return e / (e.sum(dim=1, keepdim=True) + _AGW_DENOMINATOR_EPS)


def _exact_softmax_weights(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the masked entries only (weights sum to exactly 1 on every row)."""
    return logits.masked_fill(~mask, float("-inf")).softmax(dim=1)


def weighted_mining(
    dist: torch.Tensor,
    labels: torch.Tensor,
    *,
    exclude_anchor: bool = False,
    exact_softmax: bool = False,
    scale: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """AGW's softmax-weighted positive and negative distance of every anchor (Ye et al., TPAMI 2021).

    ``furthest_positive[i] = sum_p w_p d_ip`` with ``w = softmax(d_ip)`` over the positives
    (harder, i.e. further, positives weigh more) and ``closest_negative[i] = sum_n w_n d_in`` with
    ``w = softmax(-d_in)`` over the negatives (closer negatives weigh more). The weights are not
    detached: gradients flow through them, as in the official ``TripletLoss_WRT``.

    Official behaviour is the default:
      - ``exclude_anchor=False``: the anchor is one of its own positives (the official mask is
        ``labels_i == labels_j``, diagonal included). It enters with distance 1e-6 and weight
        ``exp(-max_p d_ip) / Z``, pulling ``furthest_positive`` toward 0 (to ``e / (1 + e)`` of
        the partner's distance for a single partner at distance 1; little once the positives are
        several and spread out, as in AGW's 8-positive batches)
        ``exclude_anchor=True`` drops it, as the paper's positive set is written.
      - ``exact_softmax=False``: AGW's ``softmax_weights`` quirks (see ``_agw_softmax_weights``);
        ``exact_softmax=True`` uses a true masked softmax whose weights always sum to 1.
    The AGW negative weights sum to ``S / (S + 1e-6)`` with ``S = sum_n exp(-d_in)``, so the two
    softmax settings agree closely while the nearest negatives are within about 10 of the anchor
    and part ways beyond; the positive weights differ by at most a factor ``1 / (1 + 1e-6)``.
    Beyond that range the official ``closest_negative`` shrinks toward 0 as negatives move away,
    so the official loss stops decreasing with class separation and rises back toward
    ``softplus(furthest_positive)``; its gradient then pulls far negatives closer, which in
    effect bounds the scale of unnormalised features.

    ``scale`` multiplies the distances inside the softmaxes only (CAJ's ``TripletLoss_ADP`` ``alpha``; 1 is AGW's).
    Every anchor needs another positive and a negative either way (ValueError otherwise).
    Returns ``(furthest_positive, closest_negative)``, each [N].
    """
    same, negative = _label_masks(dist, labels, "weighted regularised triplet (WRT)")
    positive = same & ~torch.eye(dist.shape[0], dtype=torch.bool, device=dist.device) if exclude_anchor else same
    weights = _exact_softmax_weights if exact_softmax else _agw_softmax_weights
    w_p = weights(dist * scale, positive)
    w_n = weights(-dist * scale, negative)
    # masked_fill rather than relying on w == 0 there: 0 * inf would be NaN for any infinite entry.
    furthest_positive = (w_p * dist.masked_fill(~positive, 0.0)).sum(dim=1)
    closest_negative = (w_n * dist.masked_fill(~negative, 0.0)).sum(dim=1)
    return furthest_positive, closest_negative


def triplet_precision(d_ap: torch.Tensor, d_an: torch.Tensor) -> torch.Tensor:
    """Fraction of anchors with ``d_an > d_ap`` (detached 0-d tensor, for logging only)."""
    return (d_an.detach() > d_ap.detach()).float().mean()


def _embed(features: torch.Tensor, labels: torch.Tensor, normalize: bool) -> torch.Tensor:
    if features.ndim != 2:
        raise ValueError(f"features must be an N x D matrix, got shape {tuple(features.shape)}.")
    if labels.shape != features.shape[:1]:
        raise ValueError(f"labels must have shape ({features.shape[0]},) like the features, got {tuple(labels.shape)}.")
    if normalize:
        # The official ``normalize`` divides by (norm + 1e-12); F.normalize clamps the norm at 1e-12.
        # Identical for any feature with norm above 1e-12.
        features = F.normalize(features.to(torch.promote_types(features.dtype, torch.float32)), dim=1, eps=1e-12)
    return pairwise_euclidean(features, features)


class HeteroCenterTriplet(nn.Module):
    """Hetero-centre triplet (CST's ``loss.py`` ``CenterTripletLoss``, after Zhu et al.): every (modality, identity)
    group of the batch is replaced by its mean, and the batch-hard triplet with ``margin`` runs over those centres
    on Euclidean distances. ``forward(features [N, D], labels [N], modality [N])``; the released class cuts the batch
    into equal chunks in order, which is this grouping for its two-modality batch."""

    def __init__(self, margin: float = 0.3) -> None:
        super().__init__()
        self.triplet = BatchHardTriplet(margin)

    def forward(self, features: torch.Tensor, labels: torch.Tensor, modality: torch.Tensor) -> torch.Tensor:
        groups = torch.stack([modality, labels], dim=1).unique(dim=0)
        centres = torch.stack([features[(modality == m) & (labels == p)].mean(dim=0) for m, p in groups.tolist()])
        return self.triplet(centres, groups[:, 1])


class BatchHardTriplet(nn.Module):
    """Batch-hard triplet loss (Hermans et al., "In Defense of the Triplet Loss", 2017).

    ``mean_i relu(d_ap[i] - d_an[i] + margin)`` over the hardest positive and negative of each
    anchor (``batch_hard_mining``) on Euclidean (not squared) distances of the features as given;
    ``margin=None`` gives the soft margin ``mean_i softplus(d_ap[i] - d_an[i])``
    (``nn.SoftMarginLoss`` on ``d_an - d_ap``). The default margin 0.3 is the IV-ReID baseline's
    SYSU setting (RegDB: 0.2), also AGW's, MMN's and MITML's. ``normalize=True`` L2-normalises the
    features first (reid-strong-baseline's ``normalize_feature``; off in every reproduced paper).
    """

    def __init__(self, margin: float | None = 0.3, normalize: bool = False) -> None:
        super().__init__()
        if margin is not None and margin < 0:
            raise ValueError(f"margin must be non-negative or None (soft margin), got {margin}.")
        self.margin = None if margin is None else float(margin)
        self.normalize = bool(normalize)

    def loss_and_precision(self, features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loss, precision)``: the loss and the detached fraction of anchors with d_an > d_ap."""
        d_ap, d_an = batch_hard_mining(_embed(features, labels, self.normalize), labels)
        if self.margin is None:
            loss = F.softplus(d_ap - d_an).mean()
        else:
            loss = F.relu(d_ap - d_an + self.margin).mean()
        return loss, triplet_precision(d_ap, d_an)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.loss_and_precision(features, labels)[0]

    def extra_repr(self) -> str:
        return f"margin={self.margin}, normalize={self.normalize}"


class WeightedRegularizedTriplet(nn.Module):
    """AGW's weighted regularised triplet (WRT; Ye et al., "Deep Learning for Person
    Re-identification: A Survey and Outlook", TPAMI 2021; ``TripletLoss_WRT`` in
    ``mangye16/Cross-Modal-Re-ID-baseline``).

    ``mean_i softplus(furthest_positive[i] - closest_negative[i])`` (``nn.SoftMarginLoss`` on
    ``closest_negative - furthest_positive`` with target 1) over the softmax-weighted distances
    of ``weighted_mining``; no margin parameter. Distances are Euclidean on the features as
    given (AGW: the pre-BNNeck pooled feature, not normalised). The defaults reproduce the
    official code, including the anchor among its own positives and the softmax quirks;
    ``exclude_anchor`` and ``exact_softmax`` turn the fixes on (see ``weighted_mining``).
    """

    def __init__(self, normalize: bool = False, exclude_anchor: bool = False, exact_softmax: bool = False) -> None:
        super().__init__()
        self.normalize = bool(normalize)
        self.exclude_anchor = bool(exclude_anchor)
        self.exact_softmax = bool(exact_softmax)

    def loss_and_precision(self, features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loss, precision)``: the loss and the detached fraction of anchors whose weighted
        negative distance exceeds the weighted positive one."""
        furthest_positive, closest_negative = weighted_mining(
            _embed(features, labels, self.normalize),
            labels,
            exclude_anchor=self.exclude_anchor,
            exact_softmax=self.exact_softmax,
        )
        loss = F.softplus(furthest_positive - closest_negative).mean()
        return loss, triplet_precision(furthest_positive, closest_negative)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.loss_and_precision(features, labels)[0]

    def extra_repr(self) -> str:
        return f"normalize={self.normalize}, exclude_anchor={self.exclude_anchor}, exact_softmax={self.exact_softmax}"
