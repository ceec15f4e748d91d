"""DSSM two-tower model: a user-ID tower and an item tower, each an MLP (the paper's best: 0 hidden
layers, i.e. the towers are the embeddings themselves), scored by dot product."""
from __future__ import annotations

import torch
from torch import nn

from .base import Backbone


def tower(dim: int, n_layers: int, dropout: float) -> nn.Module:
    layers: list[nn.Module] = [nn.Dropout(dropout)]
    for _ in range(n_layers):
        layers += [nn.Linear(dim, dim), nn.GELU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


class DSSM(Backbone):
    uses_history = False

    def __init__(self, n_users: int, dim: int, n_layers: int = 0, dropout: float = 0.1):
        super().__init__()
        self.user_embedding = nn.Embedding(n_users, dim)
        nn.init.normal_(self.user_embedding.weight, std=dim ** -0.5)
        self.user_tower = tower(dim, n_layers, dropout)
        self.item_tower = tower(dim, n_layers, dropout)

    def forward(self, history, mask, users: torch.Tensor) -> torch.Tensor:
        return self.user_tower(self.user_embedding(users))[:, None, :]  # (B, 1, d)

    def item_output(self, item_vectors: torch.Tensor) -> torch.Tensor:
        return self.item_tower(item_vectors)


def build(cfg, dataset) -> DSSM:
    return DSSM(dataset.n_users, cfg.dim, cfg.tower_layers, cfg.dropout)
