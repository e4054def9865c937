"""The training engine: configuration, the training loop, checkpoints and feature extraction."""

from .checkpoint import CheckpointError, load_checkpoint, load_model_state, save_atomic, sha256
from .config import ConfigError, Keep, TrainConfig
from .extract import embed, extract_features, make_extractor
from .trainer import TrainingDiverged, TrainResult, build_optimizer, kept_path, train

__all__ = [
    "CheckpointError", "ConfigError", "Keep", "TrainConfig", "TrainResult", "TrainingDiverged", "build_optimizer", "embed", "extract_features",
    "kept_path", "load_checkpoint", "load_model_state", "make_extractor", "save_atomic", "sha256", "train",
]
