"""Checkpoints: written atomically, read with ``weights_only=True``, loaded strictly."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from torch import nn


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable or does not fit the model; the message says which."""


def save_atomic(obj: object, path: Path | str) -> Path:
    """Write with ``torch.save`` to a temporary file beside ``path``, then rename it into place.

    A crash while writing leaves the previous file untouched: readers only ever see a
    complete checkpoint.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        torch.save(obj, tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_checkpoint(path: Path | str) -> dict:
    """A checkpoint dict, read without executing code (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; check the path (or train first).")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for corrupt or foreign files
        raise CheckpointError(f"cannot read checkpoint {path}: {err}. The file is corrupt or not a vireid checkpoint.") from err
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, not a dict of states.")
    return state


def load_model_state(model: nn.Module, state_dict: dict, source: str) -> None:
    """Load strictly; any missing or unexpected key is an error that names the keys and the file."""
    own = set(model.state_dict())
    given = set(state_dict)
    missing, unexpected = sorted(own - given), sorted(given - own)
    if missing or unexpected:
        raise CheckpointError(
            f"{source} does not fit {type(model).__name__}: missing keys {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}, unexpected keys {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}. "
            "It was saved from a different model or configuration (e.g. another number of classes or method); "
            "build the model with the checkpoint's configuration."
        )
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as err:  # shapes differ
        raise CheckpointError(f"{source} does not fit {type(model).__name__}: {err}") from err


def sha256(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
