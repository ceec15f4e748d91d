"""Evaluation entry points (most-popular ranks, rank_users / evaluate with their defaults, the subsets) against a
user-by-user plain-Python ranking on tiny hand-made datasets: leave-one-out with a held-out new item, and a time
split where some users have no target."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from morec.config import PrepareConfig, load_config
from morec.data.dataset import PreparedDataset
from morec.data.formats import RawDataset
from morec.data.prepare import prepare
from morec.evaluate import (evaluate, evaluate_subsets, most_popular_ranks, rank_users, subset_metrics,
                            subset_users)
from morec.model import build_model

from metric_reference import plain_metrics

QUIET = lambda s: None  # noqa: E731


def plain_rank(row: list[float], target: int, masked: set[int]) -> int:
    t = row[target]
    if math.isnan(t):
        return len(row) - 1
    return 1 + sum(1 for j, s in enumerate(row) if j not in (0, target) and j not in masked and (math.isnan(s) or s >= t))


def raw(n_users=30, n_items=14, seed=0) -> RawDataset:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        n = int(rng.integers(3, 9))
        # a skewed choice: popular items tie and differ, so most-popular ranks are neither all 1 nor all last
        items = rng.choice(n_items, size=n, replace=False, p=np.arange(n_items, 0, -1) / np.arange(n_items, 0, -1).sum())
        rows += [(f"u{u:02d}", f"i{i:02d}", 10 * u + t) for t, i in enumerate(items)]
    # one long history: the default max_len (50) leaves its oldest items out
    for u in range(8):  # long histories of five items, targets among the others
        seq = [*rng.integers(0, 5, size=55 + u), *rng.choice(np.arange(5, n_items), size=2, replace=False)]
        rows += [(f"zlong{u}", f"i{i:02d}", 1000 * (u + 1) + t) for t, i in enumerate(seq)]
    inter = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    return RawDataset(inter, pd.DataFrame({"item": sorted(inter["item"].unique())}), "tiny")


@pytest.fixture(scope="module", params=["loo", "time"])
def ds(request, tmp_path_factory):
    cfg = (PrepareConfig(min_user_interactions=3, new_items=2, dedup="none") if request.param == "loo" else
           PrepareConfig(min_user_interactions=3, split="time", time_valid=120, time_test=200, dedup="none"))
    return PreparedDataset(prepare(raw(), tmp_path_factory.mktemp(request.param) / "p", cfg, log=QUIET))


def test_most_popular_ranks_equal_a_plain_ranking_by_training_counts(ds):
    counts = [float(c) for c in ds.train_item_counts]
    assert len(set(counts[1:])) > 2  # counts differ: a wrong order would show
    for split in ("valid", "test"):
        targets = ds.targets(split)
        for mask in (True, False):
            want = [plain_rank(counts, int(targets[u]), set(ds.history(u, split).tolist()) if mask else set())
                    if targets[u] else 0 for u in range(ds.n_users)]
            for budget in (3 * (ds.n_items + 1), 1 << 26):  # blocks of three users, and one block
                got = most_popular_ranks(ds, split, mask, score_budget=budget)
                assert got.tolist() == want and got.dtype == np.int64, (split, mask, budget)
    assert most_popular_ranks(ds, "test").tolist() == most_popular_ranks(ds, "test", True).tolist()


def model_ranks(model, ds, split, max_len, mask, users=None):
    model.eval()
    with torch.no_grad():
        inputs = model.encode_all_items()
        table = model.backbone.item_output(inputs).float()
        out = []
        for u in range(ds.n_users) if users is None else users:
            target = int(ds.targets(split)[u])
            if not target:
                out.append(0)
                continue
            hist = ds.history(int(u), split).tolist()
            h = torch.tensor([hist[-max_len:]])
            vec = model.user_vectors(torch.tensor([int(u)]), h, inputs[h])[0]
            out.append(plain_rank((table @ vec.float()).tolist(), target, set(hist) if mask else set()))
    return out


@pytest.fixture(scope="module")
def model(ds):
    torch.manual_seed(0)
    return build_model(load_config(None, ["--data=d", "--model.dim=8", "--model.max_len=60"]).model, ds).eval()


def test_rank_users_and_evaluate_defaults_are_the_documented_protocol(ds, model):
    """Defaults: history masked, the latest 50 items, k = 10; every user ranked and users without a target 0."""
    want = model_ranks(model, ds, "test", 50, True)
    assert rank_users(model, ds, "test", 50).tolist() == want
    got = evaluate(model, ds, "test")
    assert got.keys() == {"hr@10", "ndcg@10"}
    assert got == pytest.approx(plain_metrics(want, 10), abs=1e-12)
    short = model_ranks(model, ds, "valid", 2, False)
    assert evaluate(model, ds, "valid", ks=[3], max_len=2, mask_history=False, user_batch=4,
                    score_budget=1 << 26) == pytest.approx(plain_metrics(short, 3), abs=1e-12)
    assert model.training is False
    model.train()
    rank_users(model, ds, "test", 50, users=np.array([1]))
    assert model.training is True  # the caller's mode comes back
    model.eval()


def test_subsets_follow_their_definitions(ds, model):
    counts = ds.train_item_counts
    threshold = 3
    for split in ("valid", "test"):
        targets = ds.targets(split)
        by_def = {"all": [u for u in range(ds.n_users) if targets[u]],
                  "new": [u for u in range(ds.n_users) if targets[u] and counts[targets[u]] == 0],
                  "cold": [u for u in range(ds.n_users) if targets[u] and 0 < counts[targets[u]] < threshold],
                  "warm": [u for u in range(ds.n_users) if targets[u] and counts[targets[u]] >= threshold]}
        for name, want in by_def.items():
            assert subset_users(ds, split, name, threshold).tolist() == want, (split, name)
        assert subset_users(ds, split, "cold").tolist() == [
            u for u in range(ds.n_users) if targets[u] and 0 < counts[targets[u]] < 10]
    if ds.split == "loo":
        assert len(subset_users(ds, "test", "new")) > 0  # the held-out items are some users' test targets
    with pytest.raises(ValueError, match="unknown subset 'lukewarm'; known: all, warm, cold, new"):
        subset_users(ds, "test", "lukewarm")


def test_subset_metrics_are_the_metrics_of_each_subsets_users(ds, model):
    ranks = model_ranks(model, ds, "test", 50, True)
    got = subset_metrics(np.array(ranks), ds, "test", [5], ["all", "warm", "new"], cold_threshold=3)
    for name in ("all", "warm", "new"):
        users = subset_users(ds, "test", name, 3)
        assert got[name] == pytest.approx({"users": len(users), **plain_metrics([ranks[u] for u in users], 5)})
    defaults = subset_metrics(np.array(ranks), ds, "test", [10])
    assert defaults.keys() == {"all", "cold", "new"}
    assert defaults["cold"]["users"] == len(subset_users(ds, "test", "cold", 10))
    assert evaluate_subsets(model, ds, "test") == defaults
    short = model_ranks(model, ds, "valid", 2, False)
    got = evaluate_subsets(model, ds, "valid", [4], 2, False, ["all", "warm"], 3, user_batch=2, score_budget=1 << 20)
    users = subset_users(ds, "valid", "warm", 3)
    assert got["warm"] == pytest.approx({"users": len(users), **plain_metrics([short[u] for u in users], 4)})
    with pytest.raises(ValueError, match=f"need one rank per user \\({ds.n_users}\\), got 2"):
        subset_metrics(np.array([1, 2]), ds, "test", [10])


def test_cold_starts_at_one_training_interaction(tmp_path):
    """A target trained on once is cold, never trained on new (threshold 3)."""
    seqs = {"a": "pqrx", "b": "pqsy", "c": "qrsz", "d": "prsw", "e": "pqr" + "t", "f": "pq" + "s" + "u"}
    rows = [(u, i, n) for u, s in seqs.items() for n, i in enumerate(s)]
    rows += [("g", i, n) for n, i in enumerate("xyzxv")] + [("h", i, n) for n, i in enumerate("tuvu")]
    inter = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    ds = PreparedDataset(prepare(RawDataset(inter, pd.DataFrame({"item": sorted(inter["item"].unique())}), "c"),
                                 tmp_path / "p", PrepareConfig(min_user_interactions=3, dedup="none"), log=QUIET))
    counts = ds.train_item_counts[ds.targets("test")]
    assert {0, 1} <= set(counts.tolist())
    for name, keep in {"new": counts == 0, "cold": (counts >= 1) & (counts <= 2), "warm": counts >= 3}.items():
        assert subset_users(ds, "test", name, 3).tolist() == np.flatnonzero(keep).tolist(), name
