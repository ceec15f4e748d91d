"""Training batches for sequence and pair backbones, with negatives drawn outside the user's training items.

All index arithmetic is vectorized numpy and done once; an epoch only shuffles rows and samples
negatives, from a generator seeded by (seed, epoch) so that any epoch can be replayed exactly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from .dataset import PreparedDataset


@dataclass
class Batch:
    users: torch.Tensor  # (B,) user indices
    history: torch.Tensor | None  # (B, L) item indices, left-padded with 0 (sequence backbones)
    targets: torch.Tensor  # (B, T) the item each position predicts; 0 = no loss here
    negatives: torch.Tensor | None = None  # (B, T, K) sampled negatives, or (K,) shared by the whole batch

    def to(self, device) -> "Batch":
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return Batch(move(self.users), move(self.history), move(self.targets), move(self.negatives))


class NegativeSampler:
    """Negatives that are not in the user's training sequence.

    ``distribution``: uniform, or popularity (proportional to training counts, so only items with a
    training interaction). ``pool``: "all" items 1..n_items (the paper's code), or "train": only items
    with a training interaction, so that held-out new items and items seen only as valid / test targets
    are never drawn. (logQ correction, morec.losses.LossContext, uses the probabilities before the
    rejection of the user's own items.)
    """

    def __init__(self, dataset: PreparedDataset, distribution: str = "uniform", pool: str = "all", rounds: int = 20):
        if distribution not in ("uniform", "popularity"):
            raise ValueError(f"negative sampler must be uniform or popularity, not {distribution!r}")
        if pool not in ("all", "train"):
            raise ValueError(f"negative pool must be all or train, not {pool!r}")
        self.n_items, self.rounds, self.distribution = dataset.n_items, rounds, distribution
        # sorted (user, item) keys; np.sort + a neighbour test, as numpy 2.4's hash-based np.unique took 100x
        # longer (30 s for 3.4M keys, minutes for a million users' 17M)
        keys = np.sort(dataset.train_users.astype(np.int64) * (self.n_items + 1) + dataset.train_items)
        self.keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])] if len(keys) else keys
        # each user's block of keys, so a probe searches ~log2(its items) keys next to each other instead of
        # ~log2(all keys) scattered over the whole array (a cache miss each with a million users)
        self.user_start = np.searchsorted(self.keys, np.arange(dataset.n_users + 1, dtype=np.int64) * (self.n_items + 1))
        self.search_steps = int(np.ceil(np.log2(np.diff(self.user_start).max(initial=0) + 1)))
        counts = dataset.train_item_counts.astype(np.float64)
        known = counts > 0 if (pool == "train" or distribution == "popularity") else np.arange(len(counts)) > 0
        self.pool = np.flatnonzero(known)  # item indices (0 = padding is never one)
        weights = counts[self.pool] if distribution == "popularity" else np.ones(len(self.pool))
        self.cdf = np.cumsum(weights) / weights.sum()

    def _seen(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Whether each (user, item) is a training interaction: a binary search inside the user's block."""
        keys = users * (self.n_items + 1) + items
        lo, hi = self.user_start[users], self.user_start[users + 1]
        end = hi
        for _ in range(self.search_steps):  # lower bound of each key in its user's block [lo, hi)
            active = lo < hi
            mid = (lo + hi) // 2
            below = active & (self.keys[np.minimum(mid, len(self.keys) - 1)] < keys)
            lo = np.where(below, mid + 1, lo)
            hi = np.where(active & ~below, mid, hi)
        return (lo < end) & (self.keys[np.minimum(lo, len(self.keys) - 1)] == keys)

    def _draw(self, size, rng: np.random.Generator) -> np.ndarray:
        if self.distribution == "uniform":
            return self.pool[rng.integers(0, len(self.pool), size=size)]
        return self.pool[np.searchsorted(self.cdf, rng.random(size=size), side="right").clip(max=len(self.pool) - 1)]

    def sample(self, users: np.ndarray, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """Negatives of ``shape`` whose leading dims match ``users`` (broadcast over the rest)."""
        users = users.astype(np.int64).reshape(users.shape + (1,) * (len(shape) - users.ndim))
        users = np.broadcast_to(users, shape)
        neg = self._draw(shape, rng)
        for _ in range(self.rounds):  # a user who has seen nearly every item may keep a collision; rare and harmless
            bad = self._seen(users, neg)
            if not bad.any():
                break
            neg[bad] = self._draw(int(bad.sum()), rng)
        return neg


def tile_windows(dataset: PreparedDataset, n_positions: np.ndarray, max_len: int, stride: int = 0,
                 last_only: bool = False) -> tuple[np.ndarray, ...]:
    """Windows of ``max_len`` over the first ``n_positions[u]`` positions of each user's training sequence,
    tiled from the end, consecutive windows ``stride`` apart (default ``max_len``).

    Returns (window user (W,), flat index into train_items (W, L), real (W, L): a position exists,
    counted (W, L): the position belongs to this window only, so each one is counted once).
    """
    stride = stride or max_len
    users = np.flatnonzero(n_positions > 0)
    n_windows = np.ones_like(users) if last_only else -(-n_positions[users] // stride)
    w_user = np.repeat(users, n_windows)
    first = np.concatenate([[0], np.cumsum(n_windows)[:-1]])
    w_rank = np.arange(len(w_user)) - np.repeat(first, n_windows)  # 0 = the latest window
    end = n_positions[w_user] - w_rank * stride  # exclusive end of the window's positions
    pos = end[:, None] - max_len + np.arange(max_len)  # (W, L) positions in the user's sequence
    real = pos >= 0
    counted = real if last_only else real & (pos >= end[:, None] - stride)
    flat = dataset.train_offsets[w_user][:, None] + pos.clip(min=0)
    return w_user, flat, real, counted


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
    code, where sequences are short enough to fit). ``fraction`` < 1: each epoch trains on a fresh random
    subset of that share of the windows.
    """

    def __init__(self, dataset: PreparedDataset, max_len: int, batch_size: int, n_negatives: int = 1,
                 stride: int = 0, last_only: bool = False, sampler: NegativeSampler | None = None,
                 fraction: float = 1.0, shared: bool = False):
        self.batch_size, self.n_negatives, self.fraction = batch_size, n_negatives, fraction
        self.shared = shared
        self.sampler = sampler or NegativeSampler(dataset)
        w_user, flat, real, counted = tile_windows(dataset, dataset.train_lengths - 1, max_len, stride, last_only)
        items = dataset.train_items
        self.users = w_user
        self.inputs = np.where(real, items[flat], 0).astype(np.int64)
        self.targets = np.where(counted, items[np.minimum(flat + 1, len(items) - 1)], 0).astype(np.int64)

    def __len__(self) -> int:
        return -(-epoch_size(len(self.users), self.fraction) // self.batch_size)

    @property
    def n_targets(self) -> int:
        return int((self.targets > 0).sum())

    def epoch(self, rng: np.random.Generator) -> Iterator[Batch]:
        order = epoch_order(len(self.users), self.fraction, rng)
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            users = self.users[rows]
            inputs, targets = trim_left_padding(self.inputs[rows], self.targets[rows])
            yield Batch(torch.from_numpy(users), torch.from_numpy(inputs), torch.from_numpy(targets),
                        sample_negatives(self.sampler, users, targets, self.n_negatives, rng, self.shared))


def epoch_size(n_windows: int, fraction: float) -> int:
    return n_windows if fraction >= 1 else max(1, round(fraction * n_windows))


def epoch_order(n_windows: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """The windows an epoch trains on, in order: all of them shuffled, or a fresh random ``fraction``."""
    return rng.permutation(n_windows)[:epoch_size(n_windows, fraction)]


def sample_negatives(sampler: NegativeSampler, users: np.ndarray, targets: np.ndarray, k: int, rng,
               shared: bool = False) -> torch.Tensor | None:
    """(B, T, k) negatives, 0 where the target is padding; None when the loss needs none (k = 0).
    ``shared``: (k,) negatives for the whole batch, not rejected per user (the loss masks a user's own items)."""
    if k == 0:
        return None
    if shared:
        return torch.from_numpy(sampler._draw(k, rng).astype(np.int64))
    return torch.from_numpy(sampler.sample(users, targets.shape + (k,), rng) * (targets > 0)[..., None])


class PairBatches:
    """(user, item) pairs of the training split, for user-id backbones (DSSM)."""

    def __init__(self, dataset: PreparedDataset, batch_size: int, n_negatives: int = 1, sampler: NegativeSampler | None = None,
                 shared: bool = False):
        self.batch_size, self.n_negatives, self.shared = batch_size, n_negatives, shared
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
            targets = self.items[rows][:, None]
            yield Batch(torch.from_numpy(users), None, torch.from_numpy(targets),
                        sample_negatives(self.sampler, users, targets, self.n_negatives, rng, self.shared))


NEEDS_NEGATIVES = ("bce", "sampled", "gbce")  # losses that read batch.negatives; the others get none


def next_item_batches(dataset: PreparedDataset, uses_history: bool, max_len: int, batch_size: int, n_negatives: int,
                      stride: int = 0, last_only: bool = False, sampler: NegativeSampler | None = None,
                      fraction: float = 1.0, shared: bool = False):
    """Every backbone's training batches unless it brings its own: (user, item) pairs for user-id backbones,
    next-item windows for sequence backbones."""
    if not uses_history:
        return PairBatches(dataset, batch_size, n_negatives, sampler, shared)
    return SequenceBatches(dataset, max_len, batch_size, n_negatives, stride, last_only=last_only, sampler=sampler,
                           fraction=fraction, shared=shared)


def make_batches(dataset: PreparedDataset, backbone, max_len: int, batch_size: int, n_negatives: int,
                 windows: str = "all", stride: int = 0, *, loss: str = "bce", negative_sampler: str = "uniform",
                 negatives_from: str = "all", window_fraction: float = 1.0, negatives_shared: bool = False):
    """The training batches a backbone needs, from the train settings.

    ``backbone``: the Backbone, whose ``training_batches`` builds them (BERT4Rec's are masked items), or just a
    ``uses_history`` bool for the default scheme (:func:`next_item_batches`).
    ``loss``: negatives are sampled only for the losses that use them (``NEEDS_NEGATIVES``);
    ``negative_sampler`` / ``negatives_from``: the NegativeSampler's distribution and pool.
    ``windows``: all | last | sample (each epoch a fresh random ``window_fraction`` of the ``all`` windows).
    ``negatives_shared``: one (K,) set of negatives per batch instead of (B, T, K).
    """
    uses_history = backbone if isinstance(backbone, bool) else backbone.uses_history
    k = n_negatives if loss in NEEDS_NEGATIVES else 0
    sampler = NegativeSampler(dataset, negative_sampler, negatives_from)
    if uses_history and windows not in ("all", "last", "sample"):
        raise ValueError(f"windows must be all, last or sample, not {windows!r}")
    fraction = window_fraction if windows == "sample" else 1.0
    args = (max_len, batch_size, k, stride, windows == "last", sampler, fraction, negatives_shared)
    if isinstance(backbone, bool):
        return next_item_batches(dataset, uses_history, *args)
    return backbone.training_batches(dataset, *args)
