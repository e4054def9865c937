"""Transformer pieces whose attention weights are part of their output (no hooks needed).

:class:`SelfAttention` and :class:`TransformerBlock` are the ViT-style blocks CST's released code
uses (its ``Attention``, ``FeedForward`` and ``PreNorm``: a bias-free ``to_qkv`` projection to
``heads x dim_head`` channels, softmax attention with dropout on the weights, an output projection
followed by dropout, a GELU feed-forward network, pre-norm residuals and no final norm); they
compute the softmax explicitly and return it beside the result, so a model hands its maps to the
notebook by collecting them. Token counts in the video models are small (tens), so the explicit
``[B, heads, N, N]`` matrix costs little.
"""

from __future__ import annotations

import torch
from torch import nn


class SelfAttention(nn.Module):
    """Multi-head self-attention ``[B, N, D] -> ([B, N, D], weights [B, heads, N, N])`` over ``heads x dim_head``
    inner channels. Rows of ``weights`` sum to one (before the dropout, which only training applies)."""

    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads, self.dim_head = heads, dim_head
        self.scale = dim_head ** -0.5
        inner = heads * dim_head
        self.to_qkv = nn.Linear(dim, 3 * inner, bias=False)
        self.drop = nn.Dropout(dropout)
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, n, _ = x.shape
        # the projection's channels are q | k | v, each head-major: (h d), as the released code splits them
        q, k, v = self.to_qkv(x).reshape(b, n, 3, self.heads, self.dim_head).permute(2, 0, 3, 1, 4)
        weights = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        mixed = (self.drop(weights) @ v).transpose(1, 2).reshape(b, n, self.heads * self.dim_head)
        return self.to_out(mixed), weights


class TransformerBlock(nn.Module):
    """Pre-norm encoder block: ``x + attn(LN x)``, then ``x + FF(LN x)`` with ``FF = Linear -> GELU -> Dropout ->
    Linear -> Dropout``; returns ``(x, weights)``."""

    def __init__(self, dim: int, heads: int, dim_head: int, mlp_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, dim_head, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(mlp_dim, dim),
                                 nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        attended, weights = self.attn(self.norm1(x))
        x = x + attended
        return x + self.mlp(self.norm2(x)), weights


class QuickGELU(nn.Module):
    """``x * sigmoid(1.702 x)``, CLIP's fast GELU approximation (CST's message block uses it)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


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
