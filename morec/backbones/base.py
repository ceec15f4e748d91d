"""The user backbone interface, shared by sequence models (SASRec) and two-tower models (DSSM)."""
from __future__ import annotations

import torch
from torch import nn

from ..data.batches import Batch, NegativeSampler, next_item_batches


class Backbone(nn.Module):
    """Turns a user (an item sequence or a user id) into one state per predicted position.

    ``uses_history``: True for sequence models, whose input is the vectors of the user's items;
    False for user-id models (DSSM), which read only ``users``.
    ``forward`` returns (B, T, d): T = sequence length (each position predicts the next item) or 1.
    ``item_output`` maps item-encoder vectors to the vectors scored against user states (DSSM's
    item tower; identity for SASRec, whose input and output item vectors are shared).

    A backbone brings its training scheme with it: ``training_batches`` (what a batch holds: next-item
    windows or (user, item) pairs by default) and ``batch_states`` (how it reads such a batch), while
    ``user_vectors`` is its prediction, used by evaluation and serving alike. BERT4Rec overrides the first
    two (masked items); nothing generic branches on a backbone's kind.
    """

    uses_history: bool = True

    def forward(self, history: torch.Tensor | None, mask: torch.Tensor | None, users: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def item_output(self, item_vectors: torch.Tensor) -> torch.Tensor:
        return item_vectors

    def training_batches(self, dataset, max_len: int, batch_size: int, n_negatives: int, stride: int,
                         last_only: bool, sampler: NegativeSampler, fraction: float, shared: bool):
        """This backbone's training batches (see morec.data.batches.make_batches for the arguments)."""
        return next_item_batches(dataset, self.uses_history, max_len, batch_size, n_negatives, stride, last_only,
                                 sampler, fraction, shared)

    def batch_states(self, batch: Batch, history_vectors: torch.Tensor | None) -> torch.Tensor:
        """The states (B, T, d) aligned with ``batch.targets``; ``history_vectors`` (B, L, d) encode batch.history."""
        if not self.uses_history:
            return self(None, None, batch.users)
        return self(history_vectors, batch.history > 0, batch.users)

    def user_vectors(self, history_vectors: torch.Tensor | None, mask: torch.Tensor | None,
                     users: torch.Tensor) -> torch.Tensor:
        """Each user's vector for prediction (B, d): the last state after the history (or of the user id)."""
        return self(history_vectors, mask, users)[:, -1]
