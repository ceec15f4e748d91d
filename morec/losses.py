"""Training losses. Each is a function of user states and item vectors; padded targets (0) carry no loss.

``compute_loss(model, batch, loss_name, ctx)`` is the single entry point of the training loop:

- ``bce``: the paper's equation 1, K sampled negatives per positive (``batch.negatives``).
- ``ce``: full softmax over every item of the training split.
- ``inbatch``: softmax over the batch's distinct positives; logits minus log of each item's training
  popularity (logQ correction, Yi et al. 2019); a candidate that is one of the user's own training
  items is not a negative for that user (masked), except as the position's own positive.
- ``sampled``: softmax over the positive and its K sampled negatives; with popularity negatives each
  logit is corrected by the log of the item's sampling probability (uniform needs no correction).
- ``gbce``: gSASRec's generalised BCE (Petrov & Macdonald, RecSys 2023): ``bce`` with K negatives whose
  positive term is raised to the power beta, ``-beta log s(y_ui) - sum_j log(1 - s(y_uj))``, with
  sampling rate alpha = K / (n_items - 1) and beta = alpha (t (1 - 1/alpha) + 1/alpha) for the
  calibration t (``train.gbce_t``): t = 0 is plain BCE, t = 1 makes the sigmoid calibrated to the full
  softmax in the limit, which counters the overconfidence that many-negative BCE otherwise has.

Every loss encodes each distinct item of the batch once (``Recommender.encode_items``) and works with
every backbone: next-item sequence models, user-id models and masked-item models (BERT4Rec).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .config import LOSSES


@dataclass
class LossContext:
    """What the losses know about the training split, on the model's device (built once per run).

    ``train_offsets`` (n_users + 1,) / ``train_items``: every user's training items, CSR (in-batch masking).
    ``popularity_log_prob``: (n_items + 1,) log of each item's share of training interactions (padding and
    items with no training interaction get a finite placeholder: they are never a target or a negative).
    ``sampler_log_prob``: (n_items + 1,) log sampling probability of the negatives, None for uniform.
    ``known``: (n_items + 1,) bool, the only full-softmax classes with train.negatives_from=train (items with a
    training interaction); None: every item is a class.
    """

    n_items: int
    train_offsets: torch.Tensor
    train_items: torch.Tensor
    popularity_log_prob: torch.Tensor
    sampler_log_prob: torch.Tensor | None
    known: torch.Tensor | None
    logq: bool = True
    # Under DDP: (candidate ids (U,), their vectors (U, d)) of this process -> those of every process, distinct
    # and sorted, gradients flowing back to the process that encoded each (morec.distributed.CandidateGather),
    # so that N processes with B/N rows each compute the in-batch softmax of one process with all B rows.
    gather: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None
    gbce_beta: float = 1.0  # gbce's positive-term power, from train.n_negatives, n_items and train.gbce_t

    @classmethod
    def build(cls, dataset, train_cfg=None, device="cpu") -> "LossContext":
        sampler = getattr(train_cfg, "negative_sampler", "uniform")
        logq = getattr(train_cfg, "logq", True)
        strict = getattr(train_cfg, "negatives_from", "all") == "train"
        n = dataset.n_items
        counts = dataset.train_item_counts.astype(np.float64)
        log_pop = np.log(np.maximum(counts, 1) / counts.sum())  # items never trained on: never a candidate
        t = lambda a, dtype=torch.float32: torch.as_tensor(a, dtype=dtype, device=device)  # noqa: E731
        beta = gbce_beta(getattr(train_cfg, "n_negatives", 1), n, getattr(train_cfg, "gbce_t", 0.75))
        return cls(n, t(dataset.train_offsets, torch.int64), t(dataset.train_items, torch.int64), t(log_pop), t(log_pop) if sampler == "popularity" else None,
                   t(counts > 0, torch.bool) if strict else None, logq, gbce_beta=beta)

    def seen(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(B, U) bool: item ``items[j]`` (distinct items) is one of user ``users[b]``'s training items.

        Each user's own items are looked up among the U items (a small, cache-resident array), not each of
        the B x U pairs among all training interactions: with a million users the latter was a cache miss
        per probe and most of an in-batch training step."""
        mask = torch.zeros(len(users), len(items), dtype=torch.bool, device=items.device)
        if len(items) == 0 or len(users) == 0:
            return mask
        users = users.long()
        start = self.train_offsets[users]
        lengths = self.train_offsets[users + 1] - start  # (B,)
        row = torch.repeat_interleave(torch.arange(len(users), device=users.device), lengths)  # (S,) each own item's row
        first = torch.repeat_interleave(lengths.cumsum(0) - lengths, lengths)
        own = self.train_items[start[row] + torch.arange(len(row), device=users.device) - first]  # (S,)
        sorted_items, order = torch.sort(items.long())
        pos = torch.searchsorted(sorted_items, own).clamp(max=len(items) - 1)
        hit = sorted_items[pos] == own
        mask[row[hit], order[pos[hit]]] = True
        return mask


# --- the losses, on tensors --------------------------------------------------------------------

def binary_loss(pos_logit: torch.Tensor, neg_logit: torch.Tensor, beta: float = 1.0,
                keep: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over positives of -beta log s(pos) - sum_j log(1 - s(neg_j)); pos_logit (N,), neg_logit (N, K),
    keep (N, K) bool: the negatives that count (None: all)."""
    neg = F.softplus(neg_logit)
    if keep is not None:
        neg = neg * keep
    return (beta * F.softplus(-pos_logit) + neg.sum(-1)).mean()


def _pair_logits(states, pos, neg, targets) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-position negatives: (positive logits (N,), negative logits (N, K)) of the valid positions."""
    valid = targets > 0  # (B, T)
    pos_logit = (states * pos).sum(-1)  # (B, T)
    neg_logit = torch.einsum("btd,btkd->btk", states, neg)  # (B, T, K)
    return pos_logit[valid], neg_logit[valid]


def bce(states: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The paper's equation 1: -log s(y_ui) - log(1 - s(y_uj)) per positive, with K sampled negatives."""
    return binary_loss(*_pair_logits(states, pos, neg, targets))


def gbce_beta(n_negatives: int, n_items: int, t: float) -> float:
    """gSASRec's beta: alpha (t (1 - 1/alpha) + 1/alpha) with sampling rate alpha = K / (n_items - 1)."""
    alpha = n_negatives / max(n_items - 1, 1)
    return alpha * (t * (1 - 1 / alpha) + 1 / alpha)


def gbce(states: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, targets: torch.Tensor, beta: float) -> torch.Tensor:
    """Generalised BCE: -beta log s(y_ui) - sum_j log(1 - s(y_uj)) per positive (beta = 1 is ``bce``)."""
    return binary_loss(*_pair_logits(states, pos, neg, targets), beta)


def full_softmax(states: torch.Tensor, item_table: torch.Tensor, targets: torch.Tensor,
                 known: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy over every item; ``item_table`` is (n_items + 1, d) with row 0 = padding.
    ``known`` (n_items + 1,) bool: only those items are classes (the others were never trained on)."""
    valid = targets > 0
    logits = states[valid] @ item_table.T  # (N, n_items + 1)
    if known is not None:
        logits = logits.masked_fill(~known, float("-inf"))
    logits[:, 0] = float("-inf")
    return F.cross_entropy(logits, targets[valid])


def inbatch_softmax(states: torch.Tensor, cand_vecs: torch.Tensor, targets: torch.Tensor, candidates: torch.Tensor,
                    cand_log_q: torch.Tensor | None = None, seen: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax over the batch's distinct positives.

    states (B, T, d); cand_vecs (U, d) output vectors of ``candidates`` (U,), sorted, every target among them;
    cand_log_q (U,) log sampling probability (subtracted: logQ correction) or None;
    seen (B, U) bool: candidates that are the row's user's own items, not negatives (the position's own
    positive always stays).
    """
    valid = targets > 0  # (B, T)
    rows = valid.nonzero()[:, 0]  # (N,) the batch row of each predicted position
    tgt = targets[valid]  # (N,)
    col = torch.searchsorted(candidates, tgt)  # (N,) each positive's column
    logits = states[valid] @ cand_vecs.T  # (N, U)
    if cand_log_q is not None:
        logits = logits - cand_log_q
    if seen is not None:
        own = seen[rows] & (candidates[None, :] != tgt[:, None])
        logits = logits.masked_fill(own, float("-inf"))
    return F.cross_entropy(logits, col)


def sampled_softmax(states: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, targets: torch.Tensor,
                    pos_log_q: torch.Tensor | None = None, neg_log_q: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax over the positive (class 0) and its K sampled negatives, per predicted position.

    states, pos (B, T, d); neg (B, T, K, d); pos_log_q (B, T) / neg_log_q (B, T, K): log sampling
    probabilities subtracted from the logits (logQ correction), or None.
    """
    valid = targets > 0
    pos_logit = (states * pos).sum(-1)  # (B, T)
    neg_logit = torch.einsum("btd,btkd->btk", states, neg)  # (B, T, K)
    if pos_log_q is not None:
        pos_logit, neg_logit = pos_logit - pos_log_q, neg_logit - neg_log_q
    logits = torch.cat([pos_logit[..., None], neg_logit], -1)[valid]  # (N, 1 + K)
    return F.cross_entropy(logits, logits.new_zeros(len(logits), dtype=torch.long))


def shared_negative_loss(loss_name: str, states: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor,
                         targets: torch.Tensor, negatives: torch.Tensor, ctx: "LossContext | None",
                         users: torch.Tensor) -> torch.Tensor:
    """bce / gbce / sampled with one set of K negatives for the whole batch (train.negatives_shared).

    states, pos (B, T, d); neg (K, d) vectors of ``negatives`` (K,). A negative that is the position's own
    target, or (with ``ctx``) one of the user's training items, is left out of that position's loss.
    """
    valid = targets > 0
    rows = valid.nonzero()[:, 0]
    tgt = targets[valid]
    s = states[valid]  # (N, d)
    pos_logit = (s * pos[valid]).sum(-1)  # (N,)
    neg_logit = s @ neg.T  # (N, K)
    own = negatives[None, :] == tgt[:, None]
    if ctx is not None:
        own = own | ctx.seen(users, negatives)[rows]
    if loss_name in ("bce", "gbce"):
        return binary_loss(pos_logit, neg_logit, ctx.gbce_beta if loss_name == "gbce" else 1.0, ~own)
    log_q = ctx.sampler_log_prob if ctx is not None and ctx.logq else None
    if log_q is not None:
        pos_logit, neg_logit = pos_logit - log_q[tgt], neg_logit - log_q[negatives]
    logits = torch.cat([pos_logit[:, None], neg_logit.masked_fill(own, float("-inf"))], -1)
    return F.cross_entropy(logits, logits.new_zeros(len(logits), dtype=torch.long))


# --- the entry point ---------------------------------------------------------------------------

def compute_loss(model, batch, loss_name: str, ctx: LossContext | None = None) -> torch.Tensor:
    """The training loss of ``model`` on ``batch`` (a morec.data.batches.Batch already on the model's device).

    ``ctx`` (LossContext.build(dataset, cfg.train, device)) is needed by ``inbatch`` and by ``sampled``
    with popularity negatives; without it ``inbatch`` runs uncorrected and unmasked, which only tests want.
    """
    if loss_name not in LOSSES:
        raise ValueError(f"unknown loss {loss_name!r}; known: {', '.join(LOSSES)}")
    out = model.backbone.item_output
    if loss_name == "ce":
        _, states = model(batch)
        return full_softmax(states, model.item_table(), batch.targets, None if ctx is None else ctx.known)
    if loss_name == "inbatch":
        candidates = torch.unique(batch.targets[batch.targets > 0])  # (U,) sorted, each distinct positive once
        (cand,), states = model(batch, candidates)
        cand = out(cand)
        if ctx is not None and ctx.gather is not None:  # every process's positives are every process's candidates
            candidates, cand = ctx.gather(candidates, cand)
        # the logQ corrections and own-item masks of the gathered candidates: every process holds the whole
        # training split's popularity and keys, so it derives them for any candidate instead of receiving them
        log_q = ctx.popularity_log_prob[candidates] if ctx is not None and ctx.logq else None
        seen = ctx.seen(batch.users, candidates) if ctx is not None else None
        return inbatch_softmax(states, cand, batch.targets, candidates, log_q, seen)
    if batch.negatives is None:
        raise ValueError(f"loss {loss_name!r} needs sampled negatives: build the batches with loss={loss_name!r}")
    if loss_name == "gbce" and ctx is None:
        raise ValueError("loss 'gbce' needs a LossContext (its beta depends on n_items, K and train.gbce_t)")
    (pos, neg), states = model(batch, batch.targets, batch.negatives)
    if batch.negatives.ndim == 1:  # (K,) shared by the batch
        return shared_negative_loss(loss_name, states, out(pos), out(neg), batch.targets, batch.negatives, ctx,
                                    batch.users)
    if loss_name == "bce":
        return bce(states, out(pos), out(neg), batch.targets)
    if loss_name == "gbce":
        return gbce(states, out(pos), out(neg), batch.targets, ctx.gbce_beta)
    log_q = ctx.sampler_log_prob if ctx is not None and ctx.logq else None  # None: uniform, a constant shift
    pos_q = neg_q = None
    if log_q is not None:
        pos_q, neg_q = log_q[batch.targets], log_q[batch.negatives]
    return sampled_softmax(states, out(pos), out(neg), batch.targets, pos_q, neg_q)
