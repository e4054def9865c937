"""What the engine expects of every model and criterion (one model file per paper implements it).

Training batches are cross-modality: ``visible`` and ``infrared`` image tensors of the same
length, paired by position (visible i and infrared i share an identity), and ``labels`` for
the concatenation ``[visible; infrared]``. A model's ``forward(visible, infrared)`` in
training mode returns a dict of tensors over that concatenated batch; in evaluation mode,
given one modality (the other ``None``), it returns at least ``"embedding"``: the test
feature of each image, which the evaluator L2-normalises and compares.

Keys used across papers (a model may add its own):
    "pooled"     [2B, D]  global feature before the BNNeck (triplet / WRT use it in AGW)
    "bn"         [2B, D]  feature after the BNNeck
    "logits"     [2B, C]  identity classifier output
    "embedding"  [N, D]   test feature (evaluation mode)

A criterion is an ``nn.Module`` whose ``forward(outputs, labels)`` returns a dict of scalar
tensors: ``"loss"`` (what is back-propagated) and one entry per named term for logging.
Optional: ``param_groups(lr)`` (trainable layers the main optimiser steps), ``set_epoch(epoch)``
(called by the trainer before each epoch, for terms that start later), and state of its own
(buffers, or ``get_extra_state`` for e.g. an auxiliary optimiser), which checkpoints carry.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn


class ParamGroups(Protocol):
    def param_groups(self, base_lr: float) -> list[dict]:
        """Optimiser parameter groups with each group's own ``lr`` (e.g. backbone at 0.1x) and a ``name`` saying
        what it holds (the README's recipe table lists them)."""


Outputs = dict[str, torch.Tensor]


class Criterion(nn.Module):
    """Base class of per-paper criteria; subclasses implement ``forward(outputs, labels)``."""

    def forward(self, outputs: Outputs, labels: torch.Tensor) -> Outputs:  # pragma: no cover - interface
        raise NotImplementedError
