"""What the video papers (MITML, CST, STAR) share: MITML's training recipe, which the others build on, the four
checkpoints its script keeps, and the clip helpers.

Inputs are clips ``[B, S, 3, H, W]``; in training a model's ``forward(visible, infrared)`` takes both halves of a
batch, in evaluation one of them (see :mod:`vireid_lib.models.contract`). The workbook's earlier light video network
(a frame mean plus an LSTM, "not MITML") is gone: MITML, CST and STAR are now each their authors' network.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..papers import Keep, Recipe

# The four checkpoints MITML's train.py keeps (STAR's copies it), each by `>` on its own score: rank-1 and mAP of
# IR -> visible ("t2v", as its files are named) and of visible -> IR ("v2t").
VCM_KEEPS = (Keep("t2v_rank1", "R1", "ir2rgb"), Keep("t2v_map", "mAP", "ir2rgb"),
             Keep("v2t_rank1", "R1", "rgb2ir"), Keep("v2t_map", "mAP", "rgb2ir"))


@dataclass(frozen=True)
class VideoRecipe(Recipe):
    """MITML's training recipe (``train.py``), which the video papers here build on."""

    optimizer: str = "sgd"
    lr: float = 0.1  # head (BNNeck, classifier); the rest trains at backbone_lr_factor x lr
    backbone_lr_factor: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "warmup_step"
    warmup_epochs: int = 10
    milestones: tuple[int, ...] = (35, 80)
    gamma: float = 0.1
    epochs: int = 200
    margin: float = 0.3
    seq_len: int = 6
    height: int = 288
    width: int = 144
    num_ids: int = 8
    num_per_modality: int = 2
    replace: bool = True
    epoch_rule: str = "min"  # utils.IdentitySampler: int(min(N_v, N_i) / (8 * 2)) batches, N the tracklet counts
    seed: int = 0
    # frames are resized on the fly (bilinear), nothing cached
    train_resize: str = "bilinear"
    cache_training_images: bool = False
    test_resize: str = "bilinear"


def split_clips(visible: torch.Tensor | None, infrared: torch.Tensor | None) -> tuple[int, int]:
    """(clips, frames per clip) of the given halves, checking they are ``[B, S, 3, H, W]`` clips."""
    given = [t for t in (visible, infrared) if t is not None]
    if not given:
        raise ValueError("a video model needs a visible or an infrared clip batch (both were None).")
    for t in given:
        if t.dim() != 5:
            raise ValueError(f"video models take clips [B, S, 3, H, W]; got a tensor of shape {tuple(t.shape)}.")
    lengths = {t.shape[1] for t in given}
    if len(lengths) != 1:
        raise ValueError(f"visible and infrared clips must have the same length S, got {sorted(lengths)}.")
    return sum(t.shape[0] for t in given), given[0].shape[1]


def frames_of(clips: torch.Tensor | None) -> torch.Tensor | None:
    """``[B, S, 3, H, W]`` -> ``[B*S, 3, H, W]`` (clip-major: the S frames of clip 0 first)."""
    return None if clips is None else clips.flatten(0, 1)
