"""Training batches for sequence and pair backbones, with negatives drawn outside the user's training items.

All index arithmetic is vectorized numpy and done once; an epoch only shuffles rows and samples
negatives, from a generator seeded by (seed, epoch) so that any epoch can be replayed exactly.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from ..model import Batch
from .dataset import PreparedDataset


class NegativeSampler:
    """Uniform negatives from 1..n_items that are not in the user's training sequence."""

    def __init__(self, dataset: PreparedDataset, rounds: int = 20):
        self.n_items = dataset.n_items
        self.rounds = rounds
        self.keys = np.unique(dataset.train_users.astype(np.int64) * (self.n_items + 1) + dataset.train_items)

    def _seen(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        keys = users * (self.n_items + 1) + items
        pos = np.searchsorted(self.keys, keys).clip(max=len(self.keys) - 1)
        return self.keys[pos] == keys

    def sample(self, users: np.ndarray, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """Negatives of ``shape`` whose leading dims match ``users`` (broadcast over the rest)."""
        users = users.astype(np.int64).reshape(users.shape + (1,) * (len(shape) - users.ndim))
        users = np.broadcast_to(users, shape)
        neg = rng.integers(1, self.n_items + 1, size=shape)
        for _ in range(self.rounds):  # a user who has seen nearly every item may keep a collision; rare and harmless
            bad = self._seen(users, neg)
            if not bad.any():
                break
            neg[bad] = rng.integers(1, self.n_items + 1, size=int(bad.sum()))
        return neg


def trim_left_padding(inputs: np.ndarray, *aligned: np.ndarray) -> tuple[np.ndarray, ...]:
    """Drop the leading columns that are padding in every row (short sequences need no max_len compute)."""
    real = (inputs != 0).any(0)
    start = int(real.argmax()) if real.any() else inputs.shape[1] - 1
    return (inputs[:, start:], *(a[:, start:] for a in aligned))


class SequenceBatches:
    """Seq2seq windows: every position predicts the next item, over each user's whole training sequence.

    A user's input/target pairs are tiled from the end into windows of ``max_len``; consecutive
    windows start ``stride`` apart (stride < max_len gives early positions more context), and each
    target is counted in exactly one window. ``last_only`` keeps only the latest window (the paper's
    code, where sequences are short enough to fit).
    """

    def __init__(self, dataset: PreparedDataset, max_len: int, batch_size: int, n_negatives: int = 1,
                 stride: int = 0, last_only: bool = False, sampler: NegativeSampler | None = None):
        self.batch_size, self.n_negatives = batch_size, n_negatives
        self.sampler = sampler or NegativeSampler(dataset)
        stride = stride or max_len
        n_pairs = dataset.train_lengths - 1  # (input, next) pairs per user
        users = np.flatnonzero(n_pairs > 0)
        n_windows = np.ones_like(users) if last_only else -(-n_pairs[users] // stride)
        w_user = np.repeat(users, n_windows)
        first = np.concatenate([[0], np.cumsum(n_windows)[:-1]])
        w_rank = np.arange(len(w_user)) - np.repeat(first, n_windows)  # 0 = the latest window
        end = n_pairs[w_user] - w_rank * stride  # exclusive end of the input positions
        pos = end[:, None] - max_len + np.arange(max_len)  # (W, L) positions in the user's sequence
        real = pos >= 0
        counted = real & (pos >= end[:, None] - stride)
        if last_only:
            counted = real
        flat = dataset.train_offsets[w_user][:, None] + pos.clip(min=0)
        items = dataset.train_items
        self.users = w_user
        self.inputs = np.where(real, items[flat], 0).astype(np.int64)
        self.targets = np.where(counted, items[np.minimum(flat + 1, len(items) - 1)], 0).astype(np.int64)

    def __len__(self) -> int:
        return -(-len(self.users) // self.batch_size)

    @property
    def n_targets(self) -> int:
        return int((self.targets > 0).sum())

    def epoch(self, rng: np.random.Generator) -> Iterator[Batch]:
        order = rng.permutation(len(self.users))
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            users = self.users[rows]
            inputs, targets = trim_left_padding(self.inputs[rows], self.targets[rows])
            neg = self.sampler.sample(users, targets.shape + (self.n_negatives,), rng) * (targets > 0)[..., None]
            yield Batch(torch.from_numpy(users), torch.from_numpy(inputs),
                        torch.from_numpy(targets), torch.from_numpy(neg))


class PairBatches:
    """(user, item) pairs of the training split, for user-id backbones (DSSM)."""

    def __init__(self, dataset: PreparedDataset, batch_size: int, n_negatives: int = 1, sampler: NegativeSampler | None = None):
        self.batch_size, self.n_negatives = batch_size, n_negatives
        self.sampler = sampler or NegativeSampler(dataset)
        self.users = dataset.train_users.astype(np.int64)
        self.items = dataset.train_items.astype(np.int64)

    def __len__(self) -> int:
        return -(-len(self.users) // self.batch_size)

    @property
    def n_targets(self) -> int:
        return len(self.users)

    def epoch(self, rng: np.random.Generator) -> Iterator[Batch]:
        order = rng.permutation(len(self.users))
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            users = self.users[rows]
            neg = self.sampler.sample(users, (len(rows), 1, self.n_negatives), rng)
            yield Batch(torch.from_numpy(users), None, torch.from_numpy(self.items[rows][:, None]), torch.from_numpy(neg))


def make_batches(dataset: PreparedDataset, uses_history: bool, max_len: int, batch_size: int,
                 n_negatives: int, windows: str = "all", stride: int = 0):
    if uses_history:
        return SequenceBatches(dataset, max_len, batch_size, n_negatives, stride, last_only=windows == "last")
    return PairBatches(dataset, batch_size, n_negatives)
