"""The training switches of the speed work, each against what it must do: which windows an
epoch trains on, the learning-rate schedule and Adam betas, gBCE on a hand-computed case, shared
negatives, and the validation cadence / user subsample that model selection sees."""
import json
import math

import numpy as np
import pytest
import torch

from morec.config import ConfigError, load_config
from morec.data.batches import SequenceBatches, make_batches
from morec.data.dataset import PreparedDataset
from morec.evaluate import metrics_from_ranks, rank_users
from morec.losses import LossContext, binary_loss, compute_loss, gbce, gbce_beta, shared_negative_loss
from morec.model import build_model
from morec.train import Trainer, lr_factor


def tiny(data, out, *extra):
    return load_config(None, [f"--data={data}", f"--out={out}", "--model.dim=16", "--train.progress=false",
                              "--model.max_len=10", *extra])


# --- gBCE ---------------------------------------------------------------------------------------

def test_gbce_beta_follows_gsasrec():
    # alpha = K / (n_items - 1) = 256 / 1000; beta = alpha (t (1 - 1/alpha) + 1/alpha) = 1 - t + t alpha
    assert gbce_beta(256, 1001, 0.75) == pytest.approx(0.256 * (0.75 * (1 - 1 / 0.256) + 1 / 0.256))
    assert gbce_beta(256, 1001, 0.75) == pytest.approx(0.442)  # 1 - 0.75 + 0.75 * 0.256
    assert gbce_beta(256, 1001, 0.0) == pytest.approx(1.0)  # t = 0: plain BCE
    assert gbce_beta(256, 1001, 1.0) == pytest.approx(0.256)  # t = 1: beta = alpha


def test_gbce_on_a_hand_computed_case():
    # two positions, the second is padding (target 0, no loss); state (1, 0): logits = first coordinate
    states = torch.tensor([[[1.0, 0.0], [3.0, 3.0]]])
    pos = torch.tensor([[[2.0, 9.0], [1.0, 1.0]]])  # positive logit 2
    neg = torch.tensor([[[[0.0, 4.0], [-1.0, 4.0]], [[1.0, 1.0], [1.0, 1.0]]]])  # negative logits 0 and -1
    targets = torch.tensor([[5, 0]])
    sp = lambda x: math.log1p(math.exp(x))  # noqa: E731  softplus: -log s(x) = sp(-x), -log(1 - s(x)) = sp(x)
    want = 0.442 * sp(-2) + sp(0) + sp(-1)  # = -beta log s(2) - log(1 - s(0)) - log(1 - s(-1))
    assert want == pytest.approx(0.442 * 0.126928 + 0.693147 + 0.313262, abs=1e-5)
    assert gbce(states, pos, neg, targets, 0.442).item() == pytest.approx(want, rel=1e-6)
    assert binary_loss(torch.tensor([2.0]), torch.tensor([[0.0, -1.0]]), 0.442).item() == pytest.approx(want, rel=1e-6)


def test_gbce_through_compute_loss_uses_the_configured_beta(synth_prepared):
    ds = PreparedDataset(synth_prepared)
    model = build_model(load_config(None, ["--data=d", "--model.dim=8"]).model, ds)
    batch = next(make_batches(ds, model.backbone, 10, 8, 16, loss="gbce").epoch(np.random.default_rng(0)))
    losses = {}
    for t in (0.0, 0.75):
        ctx = LossContext.build(ds, load_config(None, ["--data=d", "--train.n_negatives=16", f"--train.gbce_t={t}"]).train)
        assert ctx.gbce_beta == pytest.approx(gbce_beta(16, ds.n_items, t))
        torch.manual_seed(0)
        model.eval()  # no dropout: the two losses see the same states
        losses[t] = compute_loss(model, batch, "gbce", ctx).item()
    model.eval()
    assert losses[0.0] == pytest.approx(compute_loss(model, batch, "bce").item(), rel=1e-6)  # t = 0 is BCE
    assert losses[0.75] < losses[0.0]  # beta < 1 weighs the positive term less


def test_shared_negatives_leave_out_the_target_and_seen_items():
    # one user, positions with targets 5 and 6; shared negatives 5, 6, 9: each position drops its own target
    states = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    pos = torch.tensor([[[2.0, 0.0], [0.0, 1.0]]])  # positive logits 2 and 1
    negatives = torch.tensor([5, 6, 9])
    neg = torch.tensor([[2.0, 0.5], [-1.0, 1.0], [0.5, -2.0]])  # item vectors of 5, 6, 9
    targets, users = torch.tensor([[5, 6]]), torch.tensor([0])
    sp = lambda x: math.log1p(math.exp(x))  # noqa: E731
    # position 1 (state e1): negatives 6, 9 -> logits -1, 0.5; position 2 (state e2): negatives 5, 9 -> 0.5, -2
    want_bce = ((sp(-2) + sp(-1) + sp(0.5)) + (sp(-1) + sp(0.5) + sp(-2))) / 2
    got = shared_negative_loss("bce", states, pos, neg, targets, negatives, None, users)
    assert got.item() == pytest.approx(want_bce, rel=1e-6)
    ce1 = -2 + math.log(math.exp(2) + math.exp(-1) + math.exp(0.5))
    ce2 = -1 + math.log(math.exp(1) + math.exp(0.5) + math.exp(-2))
    got = shared_negative_loss("sampled", states, pos, neg, targets, negatives, None, users)
    assert got.item() == pytest.approx((ce1 + ce2) / 2, rel=1e-6)


def test_shared_negatives_batches_and_masking_of_training_items(synth_prepared):
    ds = PreparedDataset(synth_prepared)
    b = make_batches(ds, True, 10, 32, 50, loss="gbce", negatives_shared=True)
    batch = next(b.epoch(np.random.default_rng(0)))
    assert batch.negatives.shape == (50,) and batch.negatives.min() >= 1
    ctx = LossContext.build(ds, load_config(None, ["--data=d", "--train.n_negatives=50"]).train)
    seen = ctx.seen(batch.users, batch.negatives)
    assert seen.any()  # some shared negatives are users' own items: those are masked per user
    for u, row in zip(batch.users[:5].tolist(), seen[:5]):
        own = set(ds.history(u, "valid").tolist())
        assert row.tolist() == [int(i) in own for i in batch.negatives.tolist()]


# --- windows ------------------------------------------------------------------------------------

def test_sampled_windows_draw_a_fresh_fraction_each_epoch(synth_prepared):
    ds = PreparedDataset(synth_prepared)
    every = SequenceBatches(ds, max_len=5, batch_size=16)
    n = len(every.users)
    half = make_batches(ds, True, 5, 16, 1, windows="sample", window_fraction=0.5)
    assert len(half) == -(-round(n / 2) // 16)
    seen = []
    for epoch in range(2):
        rows = np.concatenate([b.users.numpy() for b in half.epoch(np.random.default_rng([0, epoch]))])
        assert len(rows) == round(n / 2)
        seen.append(rows)
    assert not np.array_equal(np.sort(seen[0]), np.sort(seen[1]))  # a different subset each epoch
    last = make_batches(ds, True, 5, 16, 1, windows="last")
    assert len(last.users) == len(np.unique(last.users)) == int((ds.train_lengths > 1).sum())  # one per user
    with pytest.raises(ConfigError, match="train.window_fraction"):
        load_config(None, ["--data=d", "--train.windows=sample", "--train.window_fraction=0"])


# --- schedule -----------------------------------------------------------------------------------

def test_lr_schedules_have_their_shape():
    assert [lr_factor("constant", s, 100) for s in (0, 50, 99)] == [1.0, 1.0, 1.0]
    cos = [lr_factor("cosine", s, 100, 0.1) for s in range(100)]
    assert cos[0] == pytest.approx(0.1) and cos[9] == pytest.approx(1.0)  # linear warm-up over 10 steps
    assert cos[10] == pytest.approx(1.0) and cos[55] == pytest.approx(0.5) and cos[99] < 0.001
    assert all(a >= b for a, b in zip(cos[9:], cos[10:]))  # then only down
    one = [lr_factor("onecycle", s, 100, 0.2) for s in range(100)]
    assert one[0] == pytest.approx(1 / 25) and one[20] == pytest.approx(1.0) and one[99] < 0.002
    assert max(one) == pytest.approx(1.0)


def test_trainer_applies_schedule_and_betas(synth_prepared, tmp_path):
    ds = PreparedDataset(synth_prepared)
    cfg = tiny(synth_prepared, tmp_path / "run", "--train.epochs=2", "--train.lr=4e-3", "--train.schedule=cosine",
               "--train.warmup=0.25", "--train.betas=[0.8,0.95]", "--train.checkpoints=false")
    tr = Trainer(cfg, ds, log=lambda s: None)
    assert tr.optimizer.param_groups[0]["betas"] == (0.8, 0.95)
    seen = []
    step = tr.optimizer.step
    tr.optimizer.step = lambda *a, **k: (seen.append(tr.optimizer.param_groups[0]["lr"]), step(*a, **k))[1]
    tr.fit()
    total = 2 * len(tr.batches)
    assert len(seen) == total == tr.total_steps
    assert seen == pytest.approx([4e-3 * lr_factor("cosine", s, total, 0.25) for s in range(total)])
    assert max(seen) == pytest.approx(4e-3) and seen[-1] < 4e-3 * 0.05
    # the config-class default stays the paper's: constant lr, Adam's betas
    default = load_config(None, ["--data=d"]).train
    assert (default.schedule, default.betas, default.windows, default.loss) == ("constant", [0.9, 0.999], "all", "bce")


# --- validation cadence -------------------------------------------------------------------------

def test_validation_cadence_and_what_selection_saw(synth_prepared, tmp_path):
    ds = PreparedDataset(synth_prepared)
    cfg = tiny(synth_prepared, tmp_path / "run", "--train.epochs=7", "--train.patience=50", "--train.lr=3e-3",
               "--eval.valid_from=2", "--eval.valid_every=2", "--eval.valid_users=200")
    tr = Trainer(cfg, ds, log=lambda s: None)
    res = tr.fit()
    log = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    validated = [r["epoch"] for r in log if "valid_ndcg@10" in r]
    assert validated == [2, 4, 6] and len(log) == 7  # from epoch 2, every 2nd; the last epoch always
    assert all(r["valid_users"] == 200 for r in log if "valid_ndcg@10" in r)
    assert res["best_epoch"] in validated
    sel = res["selection"]
    assert (sel["valid_users"], sel["users_of"], sel["epochs_validated"]) == (200, ds.n_users, 3)
    # selection's score is the subsample's; the reported valid metrics are every user's, of the chosen model
    sub = tr.valid_users
    assert len(sub) == 200 and len(np.unique(sub)) == 200
    assert sel["score"] == pytest.approx(metrics_from_ranks(rank_users(tr.model, ds, "valid", 10, users=sub), [10])["ndcg@10"])
    assert res["valid"] == pytest.approx(metrics_from_ranks(rank_users(tr.model, ds, "valid", 10), [10]))
    with pytest.raises(ConfigError, match="eval.valid_every"):
        load_config(None, ["--data=d", "--eval.valid_every=0"])


def test_patience_counts_epochs_between_validations(synth_prepared, tmp_path):
    ds = PreparedDataset(synth_prepared)
    cfg = tiny(synth_prepared, tmp_path / "run", "--train.epochs=40", "--train.patience=2", "--train.lr=1e-12",
               "--eval.valid_every=3", "--train.checkpoints=false")
    res = Trainer(cfg, ds, log=lambda s: None).fit()
    # lr ~0: the weights do not move, so no improvement after epoch 0; validated at 0, 3 (3 epochs since the best >= patience 2): stop
    assert res["stop_reason"] == "patience" and res["epochs_run"] == 4


def test_fused_attention_computes_the_same_function():
    from morec.backbones.sasrec import SASRec

    torch.manual_seed(0)
    plain = SASRec(16, 10, 2, 2, dropout=0.0)
    fused = SASRec(16, 10, 2, 2, dropout=0.0, attention="fused")
    fused.load_state_dict(plain.state_dict())
    x, mask = torch.randn(4, 10, 16), torch.rand(4, 10) > 0.3
    mask[:, -1] = True
    for mode in (True, False):
        plain.train(mode), fused.train(mode)
        assert torch.allclose(plain.encode(x, mask), fused.encode(x, mask), atol=1e-5)
    with pytest.raises(ConfigError, match="model.attention"):
        load_config(None, ["--data=d", "--model.attention=flash"])
