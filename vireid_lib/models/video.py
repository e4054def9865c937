"""The clip helpers the video networks share (MITML's training recipe, which CST and STAR build on, is
:class:`vireid_lib.papers.mitml.VideoRecipe`).

Inputs are clips ``[B, S, 3, H, W]``; in training a model's ``forward(visible, infrared)`` takes both halves of a
batch, in evaluation one of them (see :mod:`vireid_lib.models.contract`). The workbook's earlier light video network
(a frame mean plus an LSTM, "not MITML") is gone: MITML, CST and STAR are now each their authors' network.
"""

from __future__ import annotations

import torch


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
