"""Transformer pieces whose attention weights are part of their output (no hooks needed).

:class:`SelfAttention` computes the softmax attention explicitly and returns it beside the
result, so a model can hand its maps to the notebook (CST's tube rollout and message-token
maps) simply by collecting them. Token counts in the video models are small (tens to a few
hundred), so the explicit ``[B, heads, N, N]`` matrix costs little.
"""

from __future__ import annotations

import torch
from torch import nn


class SelfAttention(nn.Module):
    """Multi-head self-attention returning ``(output [B, N, D], weights [B, heads, N, N])``.

    ``mask`` (``[N, N]`` or ``[B, N, N]`` booleans, ``True`` = may attend) removes pairs
    before the softmax; every row must keep at least one ``True``. Rows of ``weights`` sum to one.
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"the token width dim={dim} must be divisible by heads={heads}.")
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        scores = (q @ k.transpose(-2, -1)) * self.scale
        if mask is not None:
            allowed = mask if mask.dim() == 3 else mask.unsqueeze(0)
            if not bool(allowed.any(-1).all()):
                raise ValueError("an attention mask row allows no token at all; every token must see at least one.")
            scores = scores.masked_fill(~allowed.unsqueeze(1), float("-inf"))
        weights = scores.softmax(dim=-1)
        mixed = (self.drop(weights) @ v).transpose(1, 2).reshape(b, n, d)
        return self.out(mixed), weights


class TransformerBlock(nn.Module):
    """Pre-norm encoder block: ``x + attn(LN x)``, then ``x + MLP(LN x)``; returns ``(x, weights)``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim),
                                 nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        attended, weights = self.attn(self.norm1(x), mask)
        x = x + attended
        return x + self.mlp(self.norm2(x)), weights


def attention_rollout(weights: list[torch.Tensor], residual: bool = True) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema, 2020) through a stack of layers.

    ``weights``: one ``[B, heads, N, N]`` tensor per layer, first layer first. Heads are
    averaged; with ``residual`` the identity is added and rows renormalised (the skip
    connection), then the layers' matrices are multiplied. Returns ``[B, N, N]``: row ``i``
    says how much each input token contributed to output token ``i``; rows sum to one.
    """
    if not weights:
        raise ValueError("attention_rollout needs the weights of at least one layer.")
    result = None
    for layer in weights:
        a = layer.float().mean(dim=1)
        if residual:
            a = a + torch.eye(a.shape[-1], device=a.device, dtype=a.dtype)
            a = a / a.sum(dim=-1, keepdim=True)
        result = a if result is None else a @ result
    return result
