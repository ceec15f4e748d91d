"""Training behaviour: batches are right, models learn what synthetic data encodes, runs are reproducible."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from morec.config import load_config
from morec.data.batches import NegativeSampler, PairBatches, SequenceBatches
from morec.data.dataset import PreparedDataset
from morec.data.formats import RawDataset
from morec.data.prepare import prepare
from morec.evaluate import metrics_from_ranks, most_popular_ranks
from morec.runs import load_run
from morec.train import train
from morec.api import evaluate_run


def small_config(data, out, *extra):
    return load_config(None, [f"--data={data}", f"--out={out}", "--model.dim=32", "--train.progress=false",
                              "--train.epochs=25", "--train.patience=5", *extra])


def test_sequence_windows_count_each_target_once(synth_prepared):
    ds = PreparedDataset(synth_prepared)
    for stride in (0, 3):
        b = SequenceBatches(ds, max_len=5, batch_size=16, stride=stride)
        assert b.n_targets == int((ds.train_lengths - 1).sum())
        # each window's targets are its inputs shifted by one, wherever both are real
        shifted = b.inputs[:, 1:]
        both = (shifted > 0) & (b.targets[:, :-1] > 0)
        assert np.array_equal(shifted[both], b.targets[:, :-1][both])
    # the latest window ends with the user's last training item as target
    b = SequenceBatches(ds, max_len=5, batch_size=16)
    first_row = {}
    for row, u in enumerate(b.users):
        first_row.setdefault(u, row)
    for u, row in list(first_row.items())[:50]:
        train_seq = ds.history(u, "valid")
        assert b.targets[row, -1] == train_seq[-1] and b.inputs[row, -1] == train_seq[-2]


def test_negatives_avoid_training_items(synth_prepared):
    ds = PreparedDataset(synth_prepared)
    sampler = NegativeSampler(ds)
    users = np.repeat(np.arange(ds.n_users), 20)
    neg = sampler.sample(users, (len(users), 1), np.random.default_rng(0))[:, 0]
    seen = {(u, i) for u, i in zip(ds.train_users, ds.train_items)}
    assert not any((u, i) in seen for u, i in zip(users, neg))
    assert neg.min() >= 1 and neg.max() <= ds.n_items
    pairs = next(PairBatches(ds, batch_size=64).epoch(np.random.default_rng(0)))
    assert pairs.history is None and pairs.targets.shape == (64, 1) and pairs.negatives.shape == (64, 1, 1)


@pytest.mark.parametrize("loss", ["bce", "ce"])
def test_sasrec_idrec_beats_most_popular(synth_prepared, tmp_path, loss):
    ds = PreparedDataset(synth_prepared)
    extra = [f"--train.loss={loss}", "--train.epochs=50", "--train.patience=6", "--train.lr=3e-3"]
    results = train(small_config(synth_prepared, tmp_path / "run", *extra), ds, log=lambda s: None)
    popular = metrics_from_ranks(most_popular_ranks(ds, "test"), [10])
    assert results["test"]["ndcg@10"] > 1.6 * popular["ndcg@10"], (results["test"], popular)


def test_dssm_learns_user_taste(tmp_path):
    """Users fall into 5 groups, each drawing from its own 20 items; the groups are the same size, so
    popularity cannot tell them apart but a user embedding can."""
    rng = np.random.default_rng(0)
    pop = 1 / np.arange(1, 21)
    rows = []
    for u in range(600):
        items = rng.choice(20, size=12, replace=False, p=pop / pop.sum()) + 20 * (u % 5)
        rows += [(f"u{u}", f"i{i}", t) for t, i in enumerate(items)]
    inter = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    raw = RawDataset(inter, pd.DataFrame({"item": sorted(inter["item"].unique())}), "groups")
    ds = PreparedDataset(prepare(raw, tmp_path / "groups", log=lambda s: None))
    cfg = small_config(ds.path, tmp_path / "run", "--model.backbone=dssm", "--model.dim=16", "--train.batch_size=256",
                       "--train.lr=3e-3", "--train.weight_decay=0.01", "--train.epochs=20")
    results = train(cfg, ds, log=lambda s: None)
    popular = metrics_from_ranks(most_popular_ranks(ds, "test"), [10])
    assert results["test"]["ndcg@10"] > 0.3 > 10 * popular["ndcg@10"], (results["test"], popular)


def test_seeded_runs_repeat_and_saved_runs_rescore(synth_prepared, tmp_path):
    ds = PreparedDataset(synth_prepared)
    a = train(small_config(synth_prepared, tmp_path / "a", "--train.epochs=3"), ds, log=lambda s: None)
    b = train(small_config(synth_prepared, tmp_path / "b", "--train.epochs=3"), ds, log=lambda s: None)
    assert a["test"] == b["test"] and a["valid"] == b["valid"]
    assert evaluate_run(tmp_path / "a", "test") == pytest.approx(a["test"])
    cfg, model, _ = load_run(tmp_path / "a")
    assert cfg.train.epochs == 3 and not model.training
    lines = (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3 and "valid_ndcg@10" in json.loads(lines[0])


def test_dedup_encoding_matches_every_position(synth_prepared):
    from morec.model import build_model
    from morec.losses import compute_loss

    ds = PreparedDataset(synth_prepared)
    cfg = small_config(synth_prepared, "unused", "--model.dropout=0")
    model = build_model(cfg.model, ds)
    batch = next(SequenceBatches(ds, 10, 32).epoch(np.random.default_rng(0)))
    grads = []
    for dedup in (True, False):
        model.zero_grad()
        model.dedup = dedup
        loss = compute_loss(model, batch, "bce")
        loss.backward()
        grads.append((loss.item(), model.item_encoder.embedding.weight.grad.clone()))
    assert grads[0][0] == pytest.approx(grads[1][0], rel=1e-6)
    assert torch.allclose(grads[0][1], grads[1][1], atol=1e-6)


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/clear_refs"), reason="needs Linux /proc")
def test_each_run_reports_its_own_peak_memory(synth_prepared, tmp_path):
    """Table 6: a small run after a large one in the same process (as in a sweep) reports its own, small peak,
    not the process's high-water mark."""
    import resource

    from morec.cost import status_kib

    big = np.ones(600 << 20, dtype=np.uint8)  # the earlier, large run: 600 MiB resident
    big[::4096] = 2
    del big
    rss_before = status_kib("VmRSS") << 10
    process_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert process_peak > rss_before + (550 << 20)  # the spike is in the process's high-water mark
    results = train(small_config(synth_prepared, tmp_path / "run", "--train.epochs=1"), log=lambda s: None)
    assert results["peak_memory_kind"] == "cpu_hwm"
    # the small run adds far less than the spike: a figure carrying the spike would be >= rss_before + 600 MiB
    assert results["peak_memory_bytes"] < rss_before + (500 << 20), (results["peak_memory_bytes"], rss_before)
    assert results["peak_memory_bytes"] > 20 << 20  # a real figure: torch and the model are resident
