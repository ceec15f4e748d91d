"""GRU4Rec (Hidasi et al. 2016, in its seq2seq form): a GRU over the item vectors, each position's
state predicts the next item. Left padding never reaches the GRU: rows are rolled so their real items
come first, the GRU runs causally, and the states are rolled back (a user's state does not depend on
how much padding its batch has)."""
from __future__ import annotations

import torch
from torch import nn

from ..layers import FastDropout
from .base import Backbone


def roll_rows(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Row b of ``x`` (B, L, d) rolled left by ``shift[b]``: out[b, j] = x[b, (j + shift[b]) % L]."""
    L = x.shape[1]
    idx = (torch.arange(L, device=x.device)[None, :] + shift[:, None]) % L  # (B, L)
    return x.gather(1, idx[..., None].expand(-1, -1, x.shape[-1]))


class GRU4Rec(Backbone):
    uses_history = True

    def __init__(self, dim: int, n_layers: int = 1, dropout: float = 0.1):
        super().__init__()
        self.drop_in = FastDropout(dropout)
        self.gru = nn.GRU(dim, dim, num_layers=max(1, n_layers), batch_first=True,
                          dropout=dropout if n_layers > 1 else 0.0)
        self.drop_out = FastDropout(dropout)
        self.proj = nn.Linear(dim, dim)

    def forward(self, history: torch.Tensor, mask: torch.Tensor, users: torch.Tensor | None = None) -> torch.Tensor:
        # history: (B, L, d) item vectors, left-padded; mask: (B, L) True where a real item stands
        L = history.shape[1]
        n_pad = L - mask.sum(1)  # (B,) left-padding columns per row
        x = roll_rows(self.drop_in(history), n_pad)  # real items first, padding (zeros) after
        y, _ = self.gru(x)  # causal: the padding at the end never reaches a real position
        y = roll_rows(y, (L - n_pad) % L)  # back to left-padded order
        return self.proj(self.drop_out(y))  # (B, L, d)


def build(cfg, dataset) -> GRU4Rec:
    return GRU4Rec(cfg.dim, cfg.n_layers, cfg.dropout)
