"""BERT4Rec (Sun et al. 2019): a bidirectional transformer trained by masked item prediction.

Training, its own scheme brought with it (``training_batches`` builds :class:`MaskedBatches`,
``batch_states`` reads them): a fraction of the input items is replaced by a learned [MASK] vector, a
parameter of this backbone, so no item encoder needs a special token; the states at masked positions predict the original items (the batch's targets are
the original items there and 0 elsewhere); the latest item is masked in a ``mask_last`` share of the
windows, which is the prediction task. Prediction: a [MASK] is appended after the history and
its state is the user vector, ``states[:, -1]``.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from torch import nn

from ..data.batches import (Batch, NegativeSampler, epoch_order, epoch_size, sample_negatives, tile_windows,
                            trim_left_padding)
from ..data.dataset import PreparedDataset
from .sasrec import SASRec


class MaskedBatches:
    """Masked item prediction (BERT4Rec): windows over each user's whole training sequence; every epoch a
    fresh ``mask_prob`` of the real input items is marked, and the targets are those items (0 elsewhere).

    The history keeps the original items: the backbone replaces the marked ones (``targets > 0``) by its
    [MASK] vector. The latest item of a window is also masked with probability ``mask_last`` (and always
    when nothing else was): that is the prediction task, a [MASK] after the history (BERT4Rec's extra
    "mask the last item" samples; on the synthetic data 1.0 learned fastest).
    """

    def __init__(self, dataset: PreparedDataset, max_len: int, batch_size: int, mask_prob: float = 0.2,
                 n_negatives: int = 1, stride: int = 0, last_only: bool = False, sampler: NegativeSampler | None = None,
                 mask_last: float = 1.0, fraction: float = 1.0, shared: bool = False):
        self.batch_size, self.n_negatives, self.mask_prob, self.mask_last = batch_size, n_negatives, mask_prob, mask_last
        self.fraction, self.shared = fraction, shared
        self.sampler = sampler or NegativeSampler(dataset)
        w_user, flat, real, counted = tile_windows(dataset, dataset.train_lengths, max_len, stride, last_only)
        self.users = w_user
        self.inputs = np.where(real, dataset.train_items[flat], 0).astype(np.int64)

    def __len__(self) -> int:
        return -(-epoch_size(len(self.users), self.fraction) // self.batch_size)

    @property
    def n_targets(self) -> int:
        """Masked items per epoch, in expectation (leaving out the rare windows that drew no mask)."""
        p, last = self.mask_prob, self.mask_last
        return int(round(p * (self.inputs[:, :-1] > 0).sum() + len(self.users) * (last + (1 - last) * p)))

    def epoch(self, rng: np.random.Generator) -> Iterator[Batch]:
        order = epoch_order(len(self.users), self.fraction, rng)
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            users = self.users[rows]
            (inputs,) = trim_left_padding(self.inputs[rows])
            masked = (rng.random(inputs.shape) < self.mask_prob) & (inputs > 0)
            # the last column is always a real item (left padding): masked in a mask_last share of the rows
            # (the prediction task: a [MASK] after the history) and in every row that drew no mask
            masked[(rng.random(len(rows)) < self.mask_last) | ~masked.any(1), -1] = True
            targets = np.where(masked, inputs, 0)
            yield Batch(torch.from_numpy(users), torch.from_numpy(inputs), torch.from_numpy(targets),
                        sample_negatives(self.sampler, users, targets, self.n_negatives, rng, self.shared))


class BERT4Rec(SASRec):
    causal = False

    def __init__(self, dim: int, max_len: int, n_layers: int = 2, n_heads: int = 2, dropout: float = 0.1,
                 ffn_mult: int = 4, mask_prob: float = 0.2, mask_last: float = 1.0):
        super().__init__(dim, max_len, n_layers, n_heads, dropout, ffn_mult)
        self.mask_prob, self.mask_last = mask_prob, mask_last  # read by training_batches
        self.mask_vector = nn.Parameter(torch.randn(dim) * dim ** -0.5)

    def forward(self, history: torch.Tensor, mask: torch.Tensor, users: torch.Tensor | None = None,
                masked: torch.Tensor | None = None) -> torch.Tensor:
        """history: (B, L, d) item vectors, left-padded; mask: (B, L) True where a real item stands.

        ``masked`` (B, L) bool: training, those inputs become [MASK]; returns (B, L, d).
        None: prediction, [MASK] appended (the oldest item dropped if the window is full); returns
        (B, L', d) whose last state is the user vector.
        """
        B, L, d = history.shape
        if masked is None:
            if L >= self.max_len:
                history, mask = history[:, L - self.max_len + 1:], mask[:, L - self.max_len + 1:]
            history = torch.cat([history, history.new_zeros(B, 1, d)], 1)
            mask = torch.cat([mask, mask.new_ones(B, 1)], 1)
            masked = torch.zeros_like(mask)
            masked[:, -1] = True
        x = torch.where(masked[..., None], self.mask_vector.to(history.dtype), history)
        return self.encode(x, mask)  # every position sees every real item, in both directions

    def training_batches(self, dataset, max_len: int, batch_size: int, n_negatives: int, stride: int,
                         last_only: bool, sampler: NegativeSampler, fraction: float, shared: bool) -> MaskedBatches:
        return MaskedBatches(dataset, max_len, batch_size, self.mask_prob, n_negatives, stride, last_only, sampler,
                             self.mask_last, fraction, shared)

    def batch_states(self, batch: Batch, history_vectors: torch.Tensor) -> torch.Tensor:
        """The states at every input; the masked inputs (``batch.targets > 0``) become [MASK]."""
        return self(history_vectors, batch.history > 0, batch.users, masked=batch.targets > 0)


def build(cfg, dataset) -> BERT4Rec:
    return BERT4Rec(cfg.dim, cfg.max_len, cfg.n_layers, cfg.n_heads, cfg.dropout, cfg.ffn_mult, cfg.mask_prob, cfg.mask_last)
