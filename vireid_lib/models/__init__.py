"""Per-paper models (one file each) and the layers and backbone they share.

Every model follows :mod:`vireid_lib.models.contract`: ``forward(visible, infrared)`` returns a
dict of tensors (training: over ``[visible; infrared]``; evaluation: at least ``"embedding"``)
and ``param_groups(base_lr)`` gives the optimiser groups with their own learning rates.
"""

from .agw import AGW, AGWCriterion, AGWRecipe, build_agw
from .base import GlobalFeatureReID
from .backbone import AGW_NON_LOCAL_COUNTS, ResNetStem, TwoStreamResNet50, WeightsError
from .contract import Criterion, Outputs, ParamGroups
from .cst import CST, CSTAttention, CSTCriterion, CSTRecipe, build_cst
from .ivreid import IVReID, IVReIDCriterion, IVReIDRecipe, ModalityHead, build_ivreid
from .layers import BNNeck, GeM, NonLocal
from .mitml import MITML, MITMLCriterion, MITMLRecipe, ModalityClassifier, build_mitml
from .video import VideoRecipe

__all__ = [
    "AGW",
    "AGWCriterion",
    "AGWRecipe",
    "AGW_NON_LOCAL_COUNTS",
    "BNNeck",
    "CST",
    "CSTAttention",
    "CSTCriterion",
    "CSTRecipe",
    "Criterion",
    "GeM",
    "GlobalFeatureReID",
    "IVReID",
    "IVReIDCriterion",
    "IVReIDRecipe",
    "MITML",
    "MITMLCriterion",
    "MITMLRecipe",
    "ModalityClassifier",
    "ModalityHead",
    "NonLocal",
    "Outputs",
    "ParamGroups",
    "ResNetStem",
    "TwoStreamResNet50",
    "VideoRecipe",
    "WeightsError",
    "build_agw",
    "build_cst",
    "build_ivreid",
    "build_mitml",
]
