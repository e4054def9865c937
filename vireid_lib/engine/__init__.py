"""The training engine: configuration, the training loop, checkpoints and feature extraction."""

from .checkpoint import CheckpointError, load_checkpoint, load_model_state, save_atomic, sha256
from .config import ConfigError, TrainConfig
from .extract import embed, extract_features, make_extractor
from .trainer import TrainingDiverged, TrainResult, build_optimizer, train

__all__ = [
    "CheckpointError", "ConfigError", "TrainConfig", "TrainResult", "TrainingDiverged", "build_optimizer", "embed", "extract_features",
    "load_checkpoint", "load_model_state", "make_extractor", "save_atomic", "sha256", "train",
]
