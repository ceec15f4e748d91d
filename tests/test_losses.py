"""Losses: hand-computed values (logQ correction), in-batch masking of the user's own items, negative
samplers, and every loss trains SASRec past most-popular on synthetic data through the one loop."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from morec.config import ConfigError, load_config
from morec.data.batches import NegativeSampler, make_batches
from morec.data.dataset import PreparedDataset
from morec.evaluate import metrics_from_ranks, most_popular_ranks
from morec.losses import LossContext, compute_loss, inbatch_softmax, sampled_softmax
from morec.data.batches import Batch
from morec.model import build_model
from morec.train import train


def test_inbatch_logq_on_a_hand_computed_case():
    # one position, state s; two candidates (items 3 and 7) with logits 2 and 1; q = 0.75 and 0.25
    states = torch.tensor([[[1.0, 0.0]]])  # (B=1, T=1, d=2)
    cand_vecs = torch.tensor([[2.0, 5.0], [1.0, -3.0]])  # logits = first coordinate
    candidates, targets = torch.tensor([3, 7]), torch.tensor([[3]])
    log_q = torch.log(torch.tensor([0.75, 0.25]))
    got = inbatch_softmax(states, cand_vecs, targets, candidates, log_q)
    # corrected logits: 2 - log .75 = 2.2877, 1 - log .25 = 2.3863; loss = -log softmax(.)[0]
    a, b = 2 - math.log(0.75), 1 - math.log(0.25)
    want = -(a - math.log(math.exp(a) + math.exp(b)))
    assert got.item() == pytest.approx(want, rel=1e-6)
    assert want == pytest.approx(0.74367, abs=1e-5)  # log(1 + e^(b - a)), b - a = 0.0986
    # without the correction the popular item is favoured: a smaller loss
    assert inbatch_softmax(states, cand_vecs, targets, candidates).item() == pytest.approx(math.log(1 + math.exp(-1)), rel=1e-6)


def test_sampled_softmax_logq_on_a_hand_computed_case():
    states = torch.tensor([[[1.0]]])
    pos, neg = torch.tensor([[[0.5]]]), torch.tensor([[[[1.0], [0.0]]]])  # logits .5 | 1, 0
    targets = torch.tensor([[4]])
    pq, nq = torch.log(torch.tensor([[0.1]])), torch.log(torch.tensor([[[0.5, 0.2]]]))
    logits = torch.tensor([0.5 - math.log(0.1), 1 - math.log(0.5), 0 - math.log(0.2)])
    want = -F.log_softmax(logits, 0)[0]
    assert sampled_softmax(states, pos, neg, targets, pq, nq).item() == pytest.approx(want.item(), rel=1e-6)
    plain = -F.log_softmax(torch.tensor([0.5, 1.0, 0.0]), 0)[0]
    assert sampled_softmax(states, pos, neg, targets).item() == pytest.approx(plain.item(), rel=1e-6)


def test_inbatch_masks_the_users_own_items(synth_prepared):
    """Row 0's user has row 1's positive among its training items: that candidate is no negative for row 0
    (its logit is excluded), while it stays row 1's positive; the loss equals a hand-masked softmax."""
    ds = PreparedDataset(synth_prepared)
    ctx = LossContext.build(ds)
    u0 = 0
    train0 = ds.train_items[ds.train_offsets[u0]:ds.train_offsets[u0 + 1]]
    own = int(train0[0])  # one of user 0's training items
    pos0 = int(ds.targets("valid")[u0])  # user 0's positive in this batch: not a training item
    u1 = next(u for u in range(1, ds.n_users)
              if own not in ds.history(u, "valid") and pos0 not in ds.history(u, "valid"))
    assert pos0 not in train0
    batch = Batch(torch.tensor([u0, u1]), None, torch.tensor([[pos0], [own]]))
    torch.manual_seed(0)
    cfg = load_config(None, ["--data=d", "--model.backbone=dssm", "--model.dim=8", "--model.dropout=0"])
    model = build_model(cfg.model, ds).eval()
    seen = ctx.seen(batch.users, torch.unique(batch.targets))
    cand = torch.unique(batch.targets)
    col_own = int((cand == own).nonzero())
    assert seen[0, col_own] and not seen[1].any()
    loss = compute_loss(model, batch, "inbatch", ctx)
    # by hand: row 0 sees only its positive (its own item masked) -> loss 0; row 1 sees both
    states = model.user_vectors(batch.users, None)
    vecs = model.backbone.item_output(model.item_encoder(cand))
    logits = states @ vecs.T - ctx.popularity_log_prob[cand]
    row1 = -F.log_softmax(logits[1], 0)[col_own]
    assert loss.item() == pytest.approx((0.0 + row1.item()) / 2, rel=1e-5)
    # without the mask, row 0's loss would include the own item as a negative
    unmasked = F.cross_entropy(logits, torch.searchsorted(cand, batch.targets[:, 0]))
    assert unmasked.item() > loss.item()


def test_inbatch_on_sequences_masks_every_own_position(synth_prepared):
    """Seq2seq in-batch: a user's other positives (later items of the same sequence) are not negatives."""
    ds = PreparedDataset(synth_prepared)
    ctx = LossContext.build(ds)
    cfg = load_config(None, ["--data=d", "--model.dim=8", "--model.dropout=0"])
    torch.manual_seed(0)
    model = build_model(cfg.model, ds).eval()
    batches = make_batches(ds, model.backbone, 10, 4, 1, loss="inbatch")
    batch = next(batches.epoch(np.random.default_rng(0)))
    assert batch.negatives is None  # the in-batch loss samples nothing
    cand = torch.unique(batch.targets[batch.targets > 0])
    seen = ctx.seen(batch.users, cand)
    for b in range(len(batch.users)):
        for t in batch.targets[b][batch.targets[b] > 0]:  # every positive of a row is that user's item
            assert seen[b, int(torch.searchsorted(cand, t))]
    assert torch.isfinite(compute_loss(model, batch, "inbatch", ctx))


def test_popularity_sampler_follows_training_counts(synth_prepared):
    ds = PreparedDataset(synth_prepared)
    sampler = NegativeSampler(ds, "popularity")
    users = np.full(200_000, -1)  # no user: nothing rejected, the raw distribution
    neg = sampler.sample(users, (len(users),), np.random.default_rng(0))
    freq = np.bincount(neg, minlength=ds.n_items + 1) / len(neg)
    want = ds.train_item_counts / ds.train_item_counts.sum()
    assert np.abs(freq - want).max() < 0.004
    top = int(np.argmax(ds.train_item_counts))
    uniform = NegativeSampler(ds).sample(users, (len(users),), np.random.default_rng(0))
    assert freq[top] > 3 * np.mean(uniform == top)
    ctx = LossContext.build(ds, load_config(None, ["--data=d", "--train.negative_sampler=popularity"]).train)
    assert ctx.sampler_log_prob is not None and ctx.sampler_log_prob[top].item() == pytest.approx(math.log(want[top]), rel=1e-5)
    assert LossContext.build(ds).sampler_log_prob is None  # uniform: a constant, no correction


def test_loss_config_is_checked():
    with pytest.raises(ConfigError, match="train.loss must be one of bce, ce, inbatch, sampled"):
        load_config(None, ["--data=d", "--train.loss=hinge"])
    with pytest.raises(ConfigError, match="train.negative_sampler"):
        load_config(None, ["--data=d", "--train.negative_sampler=hard"])


def test_losses_need_what_they_read(synth_prepared):
    ds = PreparedDataset(synth_prepared)
    model = build_model(load_config(None, ["--data=d", "--model.dim=8"]).model, ds)
    batch = next(make_batches(ds, model.backbone, 10, 4, 1, loss="ce").epoch(np.random.default_rng(0)))
    with pytest.raises(ValueError, match="needs sampled negatives"):
        compute_loss(model, batch, "sampled")
    with pytest.raises(ValueError, match="unknown loss"):
        compute_loss(model, batch, "hinge")


# Every loss through the one loop, with SASRec (the backbones with BCE are in test_backbones.py).
@pytest.mark.parametrize("loss, extra", [
    ("inbatch", []),
    ("sampled", ["--train.n_negatives=8"]),
    ("sampled", ["--train.n_negatives=8", "--train.negative_sampler=popularity"]),
    ("bce", ["--train.n_negatives=4", "--train.negative_sampler=popularity"]),
    ("sampled", ["--train.n_negatives=64", "--train.negatives_shared=true"]),
])
def test_every_loss_beats_most_popular(synth_prepared, tmp_path, loss, extra):
    ds = PreparedDataset(synth_prepared)
    cfg = load_config(None, [f"--data={synth_prepared}", f"--out={tmp_path / 'run'}", "--model.dim=32",
                             "--train.progress=false", "--train.epochs=25", "--train.patience=25", "--train.lr=3e-3",
                             f"--train.loss={loss}", *extra])
    results = train(cfg, ds, log=lambda s: None)
    popular = metrics_from_ranks(most_popular_ranks(ds, "test"), [10])
    assert results["test"]["ndcg@10"] > 1.5 * popular["ndcg@10"], (results["test"], popular)


def test_seen_mask_is_each_users_training_items(synth_prepared):
    """LossContext.seen looks each user's own items up among the candidates (fast at a million
    users); it must equal the definition, item j among user b's training items, for unsorted candidates too."""
    ds = PreparedDataset(synth_prepared)
    ctx = LossContext.build(ds)
    users = torch.tensor([0, 5, 5, 17, ds.n_users - 1])
    items = torch.randperm(ds.n_items, generator=torch.Generator().manual_seed(0))[:120] + 1
    want = torch.tensor([[int(i) in set(ds.train_items[ds.train_offsets[u]:ds.train_offsets[u + 1]].tolist())
                          for i in items] for u in users.tolist()])
    got = ctx.seen(users, items)
    assert want.any(1).all() and torch.equal(got, want)
    assert ctx.seen(users, items[:0]).shape == (5, 0)


def test_gbce_trains_past_most_popular(synth_prepared, tmp_path):
    """gSASRec's gBCE (t = 0.75, 16 uniform negatives per position) trains SASRec well past most-popular.

    BCE-family losses with many negatives first learn popularity and sit at most-popular's level for a few
    hundred optimizer steps before the sequence signal takes over (on this data gBCE with batch 128
    is still there after 25 epochs = 175 steps and leaves it near step 350; softmax losses have no such
    plateau). gSASRec trains for thousands of steps; batch 32 gives 30 epochs = 750 steps here. A model that
    learns only popularity stays near 1.0x most-popular's NDCG@10."""
    ds = PreparedDataset(synth_prepared)
    cfg = load_config(None, [f"--data={synth_prepared}", f"--out={tmp_path / 'run'}", "--model.dim=32",
                             "--train.progress=false", "--train.epochs=30", "--train.patience=30", "--train.lr=3e-3",
                             "--train.batch_size=32", "--train.loss=gbce", "--train.n_negatives=16",
                             "--train.gbce_t=0.75"])
    results = train(cfg, ds, log=lambda s: None)
    popular = metrics_from_ranks(most_popular_ranks(ds, "test"), [10])
    assert results["test"]["ndcg@10"] > 1.5 * popular["ndcg@10"], (results["test"], popular)
