"""The user backbone interface, shared by sequence models (SASRec) and two-tower models (DSSM)."""
from __future__ import annotations

import torch
from torch import nn


class Backbone(nn.Module):
    """Turns a user (an item sequence or a user id) into one state per predicted position.

    ``uses_history``: True for sequence models, whose input is the vectors of the user's items;
    False for user-id models (DSSM), which read only ``users``.
    ``forward`` returns (B, T, d): T = sequence length (each position predicts the next item) or 1.
    The user's vector for prediction is always the last state, ``states[:, -1]``.
    ``item_output`` maps item-encoder vectors to the vectors scored against user states (DSSM's
    item tower; identity for SASRec, whose input and output item vectors are shared).
    """

    uses_history: bool = True

    def forward(self, history: torch.Tensor | None, mask: torch.Tensor | None, users: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def item_output(self, item_vectors: torch.Tensor) -> torch.Tensor:
        return item_vectors
