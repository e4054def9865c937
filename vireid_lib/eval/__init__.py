"""One evaluator for every protocol: the official scoring rules, vectorised, and their runners."""

from .distance import METRICS, pairwise_distance
from .protocols import Evaluation, run_bupt, run_llcm, run_regdb, run_sysu, run_vcm, score, summarise
from .rerank import k_reciprocal_rerank
from .scoring import RULES, EvaluationError, evaluate

__all__ = [
    "METRICS", "RULES", "Evaluation", "EvaluationError", "evaluate", "k_reciprocal_rerank", "pairwise_distance",
    "run_bupt", "run_llcm", "run_regdb", "run_sysu", "run_vcm", "score", "summarise",
]
