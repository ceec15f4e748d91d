"""Every loss against its definition written out in plain Python (loops over positions, math.log / math.exp), on
small random tensors with padded positions, masks and logQ corrections; and compute_loss picks the loss, the
negatives and the corrections the configuration names."""
import math

import numpy as np
import pytest
import torch

from morec.config import load_config
from morec.data.batches import make_batches
from morec.data.dataset import PreparedDataset
from morec.losses import (LossContext, binary_loss, bce, compute_loss, full_softmax, gbce, gbce_beta, inbatch_softmax,
                          sampled_softmax, shared_negative_loss)
from morec.model import build_model


def softplus(x):
    return math.log1p(math.exp(-abs(x))) + max(x, 0.0)


def ce(logits, target):
    """-log softmax(logits)[target]; -inf logits are not classes."""
    finite = [z for z in logits if z != -math.inf]
    top = max(finite)
    return -(logits[target] - top - math.log(sum(math.exp(z - top) for z in finite)))


def dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def case(seed=0, b=2, t=3, k=4, d=3):
    g = torch.Generator().manual_seed(seed)
    states, pos = torch.randn(b, t, d, generator=g), torch.randn(b, t, d, generator=g)
    neg = torch.randn(b, t, k, d, generator=g)
    targets = torch.tensor([[0, 5, 2], [3, 0, 7]])[:b, :t]
    return states, pos, neg, targets


def positions(targets):
    return [(i, j) for i in range(targets.shape[0]) for j in range(targets.shape[1]) if targets[i, j] > 0]


@pytest.mark.parametrize("beta", [1.0, 0.3])
def test_binary_losses_equal_their_definition(beta):
    states, pos, neg, targets = case()
    s, p, n = states.tolist(), pos.tolist(), neg.tolist()
    terms = [beta * softplus(-dot(s[i][j], p[i][j])) + sum(softplus(dot(s[i][j], q)) for q in n[i][j])
             for i, j in positions(targets)]
    want = sum(terms) / len(terms)
    assert gbce(states, pos, neg, targets, beta).item() == pytest.approx(want, rel=1e-5)
    if beta == 1.0:
        assert bce(states, pos, neg, targets).item() == pytest.approx(want, rel=1e-5)
    keep = torch.tensor([[True, False, True], [False, False, True]])
    pl, nl = torch.tensor([0.5, -1.0]), torch.tensor([[0.2, 3.0, -2.0], [1.0, 1.0, 0.0]])
    want = sum(beta * softplus(-pl[r].item()) + sum(softplus(nl[r, c].item()) for c in range(3) if keep[r, c])
               for r in range(2)) / 2
    assert binary_loss(pl, nl, beta, keep).item() == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("k, n, t", [(1, 100, 0.0), (4, 100, 0.75), (10, 11, 1.0), (3, 1, 0.5), (2, 51, 0.2)])
def test_gbce_beta_is_gsasrecs(k, n, t):
    alpha = k / max(n - 1, 1)
    assert gbce_beta(k, n, t) == pytest.approx(alpha * (t * (1 - 1 / alpha) + 1 / alpha), rel=1e-12)
    assert gbce_beta(k, n, 0.0) == pytest.approx(1.0) and gbce_beta(k, n, 1.0) == pytest.approx(alpha)


def test_full_softmax_is_cross_entropy_over_the_known_items():
    states, _, _, targets = case()
    table = torch.randn(9, 3, generator=torch.Generator().manual_seed(1))
    known = torch.tensor([True, True, True, True, False, True, True, True, False])
    for mask in (None, known):
        want = []
        for i, j in positions(targets):
            logits = [dot(states[i, j].tolist(), row) for row in table.tolist()]
            logits = [-math.inf if c == 0 or (mask is not None and not mask[c]) else z for c, z in enumerate(logits)]
            want.append(ce(logits, int(targets[i, j])))
        assert full_softmax(states, table, targets, mask).item() == pytest.approx(sum(want) / len(want), rel=1e-5)


def test_inbatch_softmax_with_correction_and_own_items_masked():
    states, _, _, targets = case()
    candidates = torch.tensor([2, 3, 5, 7])
    cand = torch.randn(4, 3, generator=torch.Generator().manual_seed(2))
    log_q = torch.tensor([-1.0, -2.0, -0.5, -3.0])
    seen = torch.tensor([[False, True, True, True], [True, False, False, False]])  # row 0 owns 3, 5, 7; row 1 owns 2
    for lq, sn in [(None, None), (log_q, None), (log_q, seen), (None, seen)]:
        want = []
        for i, j in positions(targets):
            tgt = int(targets[i, j])
            logits = [dot(states[i, j].tolist(), c) - (0 if lq is None else lq[u].item()) for u, c in enumerate(cand.tolist())]
            if sn is not None:
                logits = [-math.inf if sn[i, u] and candidates[u] != tgt else z for u, z in enumerate(logits)]
            want.append(ce(logits, candidates.tolist().index(tgt)))
        got = inbatch_softmax(states, cand, targets, candidates, lq, sn).item()
        assert got == pytest.approx(sum(want) / len(want), rel=1e-5), (lq is None, sn is None)


def test_sampled_softmax_on_several_positions():
    states, pos, neg, targets = case(3)
    pq = torch.rand(2, 3, generator=torch.Generator().manual_seed(4)).log()
    nq = torch.rand(2, 3, 4, generator=torch.Generator().manual_seed(5)).log()
    for corrected in (False, True):
        want = []
        for i, j in positions(targets):
            s = states[i, j].tolist()
            logits = [dot(s, pos[i, j].tolist())] + [dot(s, q) for q in neg[i, j].tolist()]
            if corrected:
                logits = [logits[0] - pq[i, j].item()] + [z - nq[i, j, c].item() for c, z in enumerate(logits[1:])]
            want.append(ce(logits, 0))
        got = sampled_softmax(states, pos, neg, targets, *((pq, nq) if corrected else (None, None))).item()
        assert got == pytest.approx(sum(want) / len(want), rel=1e-5)


def tiny_context(beta=0.4):
    """Users 0 and 1; user 0 trained on items 2, 5, user 1 on item 3; popularity over 8 items."""
    pop = torch.log(torch.tensor([1.0, 1, 2, 3, 1, 4, 1, 1, 2]) / 16)
    return LossContext(8, torch.tensor([0, 2, 3]), torch.tensor([2, 5, 3]), pop, pop.clone(), None, True,
                       gbce_beta=beta)


@pytest.mark.parametrize("loss", ["bce", "gbce", "sampled"])
@pytest.mark.parametrize("with_ctx", [False, True])
def test_shared_negatives_leave_out_the_target_and_the_users_items(loss, with_ctx):
    states, pos, _, targets = case(6)
    negatives = torch.tensor([5, 3, 6])
    neg = torch.randn(3, 3, generator=torch.Generator().manual_seed(7))
    ctx, users = (tiny_context() if with_ctx else None), torch.tensor([0, 1])
    own_items = {0: {2, 5}, 1: {3}}
    if loss == "gbce" and not with_ctx:
        return  # gbce reads its beta from the context
    want = []
    for i, j in positions(targets):
        s, tgt = states[i, j].tolist(), int(targets[i, j])
        out = [c for c, x in enumerate(negatives.tolist()) if x == tgt or (with_ctx and x in own_items[i])]
        p = dot(s, pos[i, j].tolist())
        negs = [dot(s, q) for q in neg.tolist()]
        if loss in ("bce", "gbce"):
            beta = ctx.gbce_beta if loss == "gbce" else 1.0
            want.append(beta * softplus(-p) + sum(softplus(z) for c, z in enumerate(negs) if c not in out))
        else:
            if with_ctx:
                p -= ctx.sampler_log_prob[tgt].item()
                negs = [z - ctx.sampler_log_prob[x].item() for z, x in zip(negs, negatives.tolist())]
            want.append(ce([p] + [-math.inf if c in out else z for c, z in enumerate(negs)], 0))
    got = shared_negative_loss(loss, states, pos, neg, targets, negatives, ctx, users).item()
    assert got == pytest.approx(sum(want) / len(want), rel=1e-5)


def test_context_holds_the_training_popularity_and_the_settings(synth_prepared):
    ds = PreparedDataset(synth_prepared)
    counts = ds.train_item_counts
    total = counts.sum()
    cfg = load_config(None, ["--data=d", "--train.negative_sampler=popularity", "--train.negatives_from=train",
                             "--train.n_negatives=5", "--train.gbce_t=0.5", "--train.logq=false"]).train
    ctx = LossContext.build(ds, cfg)
    want = [math.log(max(c, 1) / total) for c in counts]
    assert ctx.popularity_log_prob.tolist() == pytest.approx(want, rel=1e-5)
    assert ctx.sampler_log_prob.tolist() == pytest.approx(want, rel=1e-5)
    assert ctx.known.tolist() == [bool(c > 0) for c in counts] and ctx.logq is False and ctx.n_items == ds.n_items
    assert ctx.gbce_beta == pytest.approx(gbce_beta(5, ds.n_items, 0.5))
    assert ctx.train_offsets.tolist() == ds.train_offsets.tolist() and ctx.train_items.tolist() == ds.train_items.tolist()
    plain = LossContext.build(ds)
    assert plain.sampler_log_prob is None and plain.known is None and plain.logq is True
    assert plain.gbce_beta == pytest.approx(gbce_beta(1, ds.n_items, 0.75))


@pytest.mark.parametrize("loss, extra", [("bce", []), ("gbce", []), ("sampled", ["--train.negative_sampler=popularity"]),
                                         ("sampled", []), ("ce", ["--train.negatives_from=train"]), ("inbatch", []),
                                         ("bce", ["--train.negatives_shared=true"])])
def test_compute_loss_is_the_named_loss_on_the_models_vectors(synth_prepared, loss, extra):
    ds = PreparedDataset(synth_prepared)
    cfg = load_config(None, ["--data=d", "--model.dim=8", f"--train.loss={loss}", "--train.n_negatives=3", *extra])
    torch.manual_seed(0)
    model = build_model(cfg.model, ds).eval()
    ctx = LossContext.build(ds, cfg.train)
    t = cfg.train
    batches = make_batches(ds, model.backbone, 10, 6, 3, loss=loss, negative_sampler=t.negative_sampler,
                           negatives_from=t.negatives_from, negatives_shared=t.negatives_shared)
    batch = next(batches.epoch(np.random.default_rng(0)))
    got = compute_loss(model, batch, loss, ctx).item()
    out = model.backbone.item_output
    with torch.no_grad():
        if loss == "ce":
            _, states = model(batch)
            want = full_softmax(states, model.item_table(), batch.targets, ctx.known)
        elif loss == "inbatch":
            cands = torch.unique(batch.targets[batch.targets > 0])
            (cand,), states = model(batch, cands)
            want = inbatch_softmax(states, out(cand), batch.targets, cands, ctx.popularity_log_prob[cands],
                                   ctx.seen(batch.users, cands))
        else:
            (pos, neg), states = model(batch, batch.targets, batch.negatives)
            if batch.negatives.ndim == 1:
                want = shared_negative_loss(loss, states, out(pos), out(neg), batch.targets, batch.negatives, ctx,
                                            batch.users)
            elif loss == "sampled":
                lq = ctx.sampler_log_prob
                want = sampled_softmax(states, out(pos), out(neg), batch.targets,
                                       None if lq is None else lq[batch.targets], None if lq is None else lq[batch.negatives])
            else:
                want = gbce(states, out(pos), out(neg), batch.targets, ctx.gbce_beta if loss == "gbce" else 1.0)
    assert got == pytest.approx(want.item(), rel=1e-5)
    if loss == "gbce":
        with pytest.raises(ValueError, match="needs a LossContext"):
            compute_loss(model, batch, "gbce")
