"""Training losses: identity (cross-entropy, mutual KL) and metric (batch-hard triplet, AGW's WRT).

Every module's ``forward`` returns a scalar loss tensor; the metric losses also offer
``loss_and_precision(features, labels)`` for logging. Bad batches raise ``ValueError`` naming
the sampler setting that fixes them.
"""

from .identity import CrossEntropyLabelSmooth, MutualKL
from .metric import (
    BatchHardTriplet,
    WeightedRegularizedTriplet,
    batch_hard_mining,
    pairwise_euclidean,
    triplet_precision,
    weighted_mining,
)

__all__ = [
    "BatchHardTriplet", "CrossEntropyLabelSmooth", "MutualKL", "WeightedRegularizedTriplet", "batch_hard_mining",
    "pairwise_euclidean", "triplet_precision", "weighted_mining",
]
