"""The networks' building blocks every paper shares: backbones, heads, layers, attention, the model contract and
the authors' checkpoint layouts. A whole paper (network, criterion, recipe, declaration) lives in
:mod:`vireid_lib.papers`.

Every model follows :mod:`vireid_lib.models.contract`: ``forward(visible, infrared)`` returns a
dict of tensors (training: over ``[visible; infrared]``; evaluation: at least ``"embedding"``)
and ``param_groups(base_lr)`` gives the optimiser groups with their own learning rates.
"""

from .base import GlobalFeatureReID
from .backbone import AGW_NON_LOCAL_COUNTS, ResNetStem, TwoStreamResNet50, WeightsError
from .contract import Criterion, Outputs, ParamGroups
from .layers import BNNeck, GeM, NonLocal

__all__ = [
    "AGW_NON_LOCAL_COUNTS",
    "BNNeck",
    "Criterion",
    "GeM",
    "GlobalFeatureReID",
    "NonLocal",
    "Outputs",
    "ParamGroups",
    "ResNetStem",
    "TwoStreamResNet50",
    "WeightsError",
]
