"""NextItNet (Yuan et al. 2019): stacked residual blocks of dilated causal 1-D convolutions over the
item vectors; each position's state predicts the next item. Dilations (1, 2, 4, 8 by default) are
repeated ``n_layers`` times. Padding positions are zeroed after every convolution, so a user's state does
not depend on how much left padding its batch has."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import FastDropout
from .base import Backbone


class CausalConv(nn.Module):
    def __init__(self, dim: int, kernel_size: int, dilation: int):
        super().__init__()
        self.pad = (kernel_size - 1) * dilation
        self.conv = nn.Conv1d(dim, dim, kernel_size, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, d, L) -> (B, d, L), position t sees <= t
        return self.conv(F.pad(x, (self.pad, 0)))


class ResidualBlock(nn.Module):
    """The paper's block b: conv(dilation) -> LN -> ReLU -> conv(2 x dilation) -> LN -> ReLU, plus the input."""

    def __init__(self, dim: int, kernel_size: int, dilation: int, dropout: float):
        super().__init__()
        self.conv1 = CausalConv(dim, kernel_size, dilation)
        self.conv2 = CausalConv(dim, kernel_size, 2 * dilation)
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.drop = FastDropout(dropout)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:  # (B, L, d), keep (B, L, 1)
        y = F.relu(self.ln1(self.conv1(x.transpose(1, 2)).transpose(1, 2))) * keep
        y = F.relu(self.ln2(self.conv2(y.transpose(1, 2)).transpose(1, 2))) * keep
        return x + self.drop(y)


class NextItNet(Backbone):
    uses_history = True

    def __init__(self, dim: int, dilations: list[int], n_repeats: int = 1, kernel_size: int = 3, dropout: float = 0.1):
        super().__init__()
        self.drop = FastDropout(dropout)
        self.blocks = nn.ModuleList(ResidualBlock(dim, kernel_size, d, dropout)
                                    for _ in range(max(1, n_repeats)) for d in dilations)
        self.ln_out = nn.LayerNorm(dim)

    def forward(self, history: torch.Tensor, mask: torch.Tensor, users: torch.Tensor | None = None) -> torch.Tensor:
        # history: (B, L, d) item vectors, left-padded; mask: (B, L) True where a real item stands
        keep = mask[..., None].to(history.dtype)
        x = self.drop(history) * keep
        for block in self.blocks:
            x = block(x, keep)  # padding stays zero, exactly like the convolution's own zero padding
        return self.ln_out(x)  # (B, L, d)


def build(cfg, dataset) -> NextItNet:
    return NextItNet(cfg.dim, cfg.dilations, cfg.n_layers, cfg.kernel_size, cfg.dropout)
