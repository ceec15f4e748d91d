"""Training losses. Each is a function of user states and item vectors; padded targets (0) carry no loss.

``compute_loss(model, batch, loss_name, ctx)`` is the single entry point of the training loop:

- ``bce``: the paper's equation 1, K sampled negatives per positive (``batch.negatives``).
- ``ce``: full softmax over every item of the training split.
- ``inbatch``: softmax over the batch's distinct positives; logits minus log of each item's training
  popularity (logQ correction, Yi et al. 2019); a candidate that is one of the user's own training
  items is not a negative for that user (masked), except as the position's own positive.
- ``sampled``: softmax over the positive and its K sampled negatives; with popularity negatives each
  logit is corrected by the log of the item's sampling probability (uniform needs no correction).

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

    @classmethod
    def build(cls, dataset, train_cfg=None, device="cpu") -> "LossContext":
        sampler = getattr(train_cfg, "negative_sampler", "uniform")
        logq = getattr(train_cfg, "logq", True)
        strict = getattr(train_cfg, "negatives_from", "all") == "train"
        n = dataset.n_items
        counts = dataset.train_item_counts.astype(np.float64)
        log_pop = np.log(np.maximum(counts, 1) / counts.sum())  # items never trained on: never a candidate
        t = lambda a, dtype=torch.float32: torch.as_tensor(a, dtype=dtype, device=device)  # noqa: E731
        return cls(n, t(dataset.train_offsets, torch.int64), t(dataset.train_items, torch.int64), t(log_pop), t(log_pop) if sampler == "popularity" else None,
                   t(counts > 0, torch.bool) if strict else None, logq)

    def seen(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(B, U) bool: item ``items[j]`` (distinct items) is one of user ``users[b]``'s training items.

        Each user's own items are looked up among the U items (a small, cache-resident array), not each of
        the B x U pairs among all training interactions: with a million users the latter was a cache miss
        per probe and most of an in-batch training step (issue 18)."""
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

def bce(states: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The paper's equation 1: -log s(y_ui) - log(1 - s(y_uj)) per positive, with K sampled negatives."""
    valid = targets > 0  # (B, T)
    pos_logit = (states * pos).sum(-1)  # (B, T)
    neg_logit = torch.einsum("btd,btkd->btk", states, neg)  # (B, T, K)
    loss = F.softplus(-pos_logit) + F.softplus(neg_logit).sum(-1)
    return loss[valid].mean()


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


# --- the entry point ---------------------------------------------------------------------------

def batch_states(model, batch, history_vectors: torch.Tensor | None = None) -> torch.Tensor:
    """The backbone's states (B, T, d) aligned with ``batch.targets``, whatever the backbone's batch kind."""
    backbone = model.backbone
    if not backbone.uses_history:
        return backbone(None, None, batch.users)
    if history_vectors is None:
        (history_vectors,) = model.encode_items(batch.history)
    if getattr(backbone, "batch_kind", "next") == "masked":  # BERT4Rec: the targets mark the masked inputs
        return backbone(history_vectors, batch.history > 0, batch.users, masked=batch.targets > 0)
    return backbone(history_vectors, batch.history > 0, batch.users)


def _encode(model, batch, *ids: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Encoder vectors for each tensor of ``ids`` and the batch's states; every distinct item encoded once."""
    uses_history = model.backbone.uses_history
    if not ids and not uses_history:
        return [], batch_states(model, batch)
    vecs = model.encode_items(*ids, *([batch.history] if uses_history else []))
    if uses_history:
        return vecs[:-1], batch_states(model, batch, vecs[-1])
    return vecs, batch_states(model, batch)


def compute_loss(model, batch, loss_name: str, ctx: LossContext | None = None) -> torch.Tensor:
    """The training loss of ``model`` on ``batch`` (a morec.model.Batch already on the model's device).

    ``ctx`` (LossContext.build(dataset, cfg.train, device)) is needed by ``inbatch`` and by ``sampled``
    with popularity negatives; without it ``inbatch`` runs uncorrected and unmasked, which only tests want.
    """
    if loss_name not in LOSSES:
        raise ValueError(f"unknown loss {loss_name!r}; known: {', '.join(LOSSES)}")
    out = model.backbone.item_output
    if loss_name == "ce":
        (vecs, states) = _encode(model, batch)
        return full_softmax(states, model.item_table(), batch.targets, None if ctx is None else ctx.known)
    if loss_name == "inbatch":
        candidates = torch.unique(batch.targets[batch.targets > 0])  # (U,) sorted, each distinct positive once
        (cand,), states = _encode(model, batch, candidates)
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
    (pos, neg), states = _encode(model, batch, batch.targets, batch.negatives)
    if loss_name == "bce":
        return bce(states, out(pos), out(neg), batch.targets)
    log_q = ctx.sampler_log_prob if ctx is not None and ctx.logq else None  # None: uniform, a constant shift
    pos_q = neg_q = None
    if log_q is not None:
        pos_q, neg_q = log_q[batch.targets], log_q[batch.negatives]
    return sampled_softmax(states, out(pos), out(neg), batch.targets, pos_q, neg_q)
