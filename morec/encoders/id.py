"""IDRec's item encoder: one learned vector per item."""
from __future__ import annotations

import torch
from torch import nn

from .base import ItemEncoder


class IDEncoder(ItemEncoder):
    def __init__(self, n_items: int, dim: int):
        super().__init__()
        self.dim = dim
        self.embedding = nn.Embedding(n_items + 1, dim, padding_idx=0)
        nn.init.normal_(self.embedding.weight, std=dim ** -0.5)
        with torch.no_grad():
            self.embedding.weight[0].zero_()

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        return self.embedding(items)


def build(cfg, dataset, dim: int) -> IDEncoder:
    return IDEncoder(dataset.n_items, dim)
