"""compute_loss's wiring and the losses' edges on a five-item toy: item 1 is a real item (only 0 pads), logQ off
means no correction, no LossContext means no masking, a DDP gather sees every positive, shared negatives keep the
context; LossContext's dtypes and which items count as known (fast: a table of item vectors stands in for the
encoder, the model's interface is two calls)."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from morec.data.batches import Batch
from morec.losses import (LossContext, bce, compute_loss, full_softmax, inbatch_softmax, sampled_softmax,
                          shared_negative_loss)

D = 3


class TableModel:
    """Item vectors from a fixed table, user states fixed: what compute_loss reads of a Recommender."""

    def __init__(self, n_items=5, b=2, t=2, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.table = torch.randn(n_items + 1, D, generator=g)
        self.states = torch.randn(b, t, D, generator=g)
        self.backbone = SimpleNamespace(item_output=lambda v: v * 1.0)

    def __call__(self, batch, *items):
        return tuple(self.table[i] for i in items), self.states

    def item_table(self):
        return self.table


def toy_ctx(**cfg):
    # users 0 and 1 trained on items (1, 3) and (2, 3, 4); item 5 has one training interaction
    ds = SimpleNamespace(n_items=5, train_item_counts=np.array([0, 1, 1, 2, 1, 1]),
                         train_offsets=np.array([0, 2, 5], dtype=np.int32),
                         train_items=np.array([1, 3, 2, 3, 4], dtype=np.int32))
    return LossContext.build(ds, SimpleNamespace(**{"negative_sampler": "popularity", "negatives_from": "train",
                                                    "n_negatives": 2, "gbce_t": 0.5, **cfg}))


def batch(negatives=None):
    return Batch(torch.tensor([0, 1]), None, torch.tensor([[1, 2], [0, 1]]), negatives)


def test_item_one_is_an_item_in_every_loss():
    model, targets = TableModel(), batch().targets
    s, tab = model.states, model.table
    valid = [(0, 0), (0, 1), (1, 1)]  # targets 1, 2, 1
    pos = tab[targets]
    neg = tab[torch.tensor([[[4, 5], [3, 5]], [[2, 3], [4, 4]]])]
    want = np.mean([F.softplus(-(s[i, j] @ pos[i, j])).item() + F.softplus(s[i, j] @ neg[i, j].T).sum().item()
                    for i, j in valid])
    assert bce(s, pos, neg, targets).item() == pytest.approx(want, rel=1e-5)
    logits = torch.stack([s[i, j] @ tab.T for i, j in valid])
    logits[:, 0] = -torch.inf
    assert full_softmax(s, tab, targets).item() == pytest.approx(
        F.cross_entropy(logits, torch.tensor([1, 2, 1])).item(), rel=1e-5)
    cands = torch.tensor([1, 2])
    logits = torch.stack([s[i, j] @ tab[cands].T for i, j in valid])
    assert inbatch_softmax(s, tab[cands], targets, cands).item() == pytest.approx(
        F.cross_entropy(logits, torch.tensor([0, 1, 0])).item(), rel=1e-5)
    logits = torch.stack([torch.cat([(s[i, j] @ pos[i, j])[None], s[i, j] @ neg[i, j].T]) for i, j in valid])
    assert sampled_softmax(s, pos, neg, targets).item() == pytest.approx(
        F.cross_entropy(logits, torch.zeros(3, dtype=torch.long)).item(), rel=1e-5)
    shared = torch.tensor([4, 5])
    logits = torch.stack([torch.cat([(s[i, j] @ pos[i, j])[None], s[i, j] @ tab[shared].T]) for i, j in valid])
    got = shared_negative_loss("sampled", s, pos, tab[shared], targets, shared, None, torch.tensor([0, 1]))
    assert got.item() == pytest.approx(F.cross_entropy(logits, torch.zeros(3, dtype=torch.long)).item(), rel=1e-5)


def test_inbatch_through_compute_loss_with_and_without_logq_and_context():
    model, b = TableModel(), batch()
    cands = torch.tensor([1, 2])  # every distinct positive, item 1 included
    ctx = toy_ctx(logq=True)
    seen = ctx.seen(b.users, cands)
    assert seen.tolist() == [[True, False], [False, True]]
    want = inbatch_softmax(model.states, model.table[cands], b.targets, cands, ctx.popularity_log_prob[cands], seen)
    assert compute_loss(model, b, "inbatch", ctx).item() == pytest.approx(want.item(), rel=1e-6)
    off = toy_ctx(logq=False)
    want = inbatch_softmax(model.states, model.table[cands], b.targets, cands, None, seen)
    assert compute_loss(model, b, "inbatch", off).item() == pytest.approx(want.item(), rel=1e-6)
    want = inbatch_softmax(model.states, model.table[cands], b.targets, cands)
    assert compute_loss(model, b, "inbatch", None).item() == pytest.approx(want.item(), rel=1e-6)


def test_inbatch_gathers_every_positive_under_ddp():
    model, b = TableModel(), batch()
    calls = []

    def gather(candidates, vectors):  # another process adds item 5
        calls.append((candidates.tolist(), vectors.clone()))
        return torch.cat([candidates, torch.tensor([5])]), torch.cat([vectors, model.table[5:6]])

    ctx = toy_ctx(logq=True)
    ctx.gather = gather
    got = compute_loss(model, b, "inbatch", ctx).item()
    assert len(calls) == 1 and calls[0][0] == [1, 2] and torch.equal(calls[0][1], model.table[[1, 2]])
    cands = torch.tensor([1, 2, 5])
    want = inbatch_softmax(model.states, model.table[cands], b.targets, cands, ctx.popularity_log_prob[cands],
                           ctx.seen(b.users, cands))
    assert got == pytest.approx(want.item(), rel=1e-6)


def test_sampled_is_corrected_only_with_logq_and_a_popularity_context():
    model = TableModel()
    negs = torch.tensor([[[4, 5], [3, 5]], [[2, 3], [4, 4]]])
    b = batch(negs)
    s, tab = model.states, model.table
    plain = sampled_softmax(s, tab[b.targets], tab[negs], b.targets).item()
    assert compute_loss(model, b, "sampled", None).item() == pytest.approx(plain, rel=1e-6)
    assert compute_loss(model, b, "sampled", toy_ctx(logq=False)).item() == pytest.approx(plain, rel=1e-6)
    ctx = toy_ctx(logq=True)
    lq = ctx.sampler_log_prob
    corrected = sampled_softmax(s, tab[b.targets], tab[negs], b.targets, lq[b.targets], lq[negs]).item()
    assert corrected != pytest.approx(plain) and compute_loss(model, b, "sampled", ctx).item() == pytest.approx(
        corrected, rel=1e-6)
    with pytest.raises(ValueError, match=r"^loss 'gbce' needs a LossContext \(its beta depends on n_items, K and "
                                         r"train.gbce_t\)$"):
        compute_loss(model, b, "gbce", None)


def test_shared_negatives_keep_the_context():
    model = TableModel()
    b = batch(torch.tensor([3, 4]))  # item 3 is both users' training item, 4 user 1's
    ctx = toy_ctx(logq=True)
    s, tab = model.states, model.table
    for loss in ("bce", "sampled"):
        want = shared_negative_loss(loss, s, tab[b.targets], tab[[3, 4]], b.targets, b.negatives, ctx, b.users)
        free = shared_negative_loss(loss, s, tab[b.targets], tab[[3, 4]], b.targets, b.negatives, None, b.users)
        got = compute_loss(model, b, loss, ctx).item()
        assert got == pytest.approx(want.item(), rel=1e-6) and got != pytest.approx(free.item())


def test_seen_with_one_user_and_the_contexts_types():
    ctx = toy_ctx(logq=True)
    assert ctx.seen(torch.tensor([1]), torch.tensor([1, 2, 4])).tolist() == [[False, True, True]]
    assert ctx.seen(torch.tensor([0]), torch.tensor([], dtype=torch.long)).shape == (1, 0)
    assert ctx.popularity_log_prob.dtype == ctx.sampler_log_prob.dtype == torch.float32
    assert ctx.train_offsets.dtype == ctx.train_items.dtype == torch.int64 and ctx.known.dtype == torch.bool
    assert ctx.known.tolist() == [False, True, True, True, True, True]  # one training interaction is known
