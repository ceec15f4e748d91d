"""The paper's settings, each checked on a hand-made dataset: warm-N, cold and new items, subsample;
and the per-subset evaluation that reports them from one model."""
import json

import numpy as np
import pandas as pd
import pytest

from morec.config import ConfigError, PrepareConfig, load_config
from morec.data.dataset import PreparedDataset
from morec.data.formats import RawDataset
from morec.data.prepare import prepare
from morec.evaluate import evaluate_subsets, most_popular_ranks, subset_metrics, subset_users

QUIET = dict(log=lambda s: None)


def raw_from(rows):
    inter = pd.DataFrame(rows, columns=["user", "item", "timestamp"]).astype({"user": str, "item": str})
    items = pd.DataFrame({"item": sorted(inter["item"].unique()), "title": "t"})
    return RawDataset(inter, items, name="hand")


def named(ds):
    """{user id: [item ids in order]} of a prepared dataset."""
    names = ds.items["item"].to_numpy()
    return {u: [names[i - 1] for i in ds.sequence(k)] for k, u in enumerate(ds.users["user"])}


def test_warm_n_drops_rare_items_before_the_split(tmp_path):
    # item "rare" has 2 interactions, "mid" 3, the rest >= 4; warm-3 drops only "rare", warm-4 also "mid"
    rows = [(f"u{u}", it, t) for u in range(4) for t, it in enumerate(["a", "b", "c", "d", "e"])]
    rows += [("u0", "rare", 10), ("u1", "rare", 10), ("u0", "mid", 11), ("u1", "mid", 11), ("u2", "mid", 11)]
    warm3 = PreparedDataset(prepare(raw_from(rows), tmp_path / "w3", PrepareConfig(min_item_interactions=3), **QUIET))
    assert set(warm3.items["item"]) == {"a", "b", "c", "d", "e", "mid"}
    assert named(warm3)["u0"] == ["a", "b", "c", "d", "e", "mid"]  # "mid" is u0's test target now
    warm4 = PreparedDataset(prepare(raw_from(rows), tmp_path / "w4", PrepareConfig(min_item_interactions=4), **QUIET))
    assert set(warm4.items["item"]) == {"a", "b", "c", "d", "e"}
    assert all(seq == ["a", "b", "c", "d", "e"] for seq in named(warm4).values())
    steps = {s["step"]: s for s in json.loads((tmp_path / "w4" / "manifest.json").read_text())["filters"]}
    assert steps["warm items"]["removed_items"] == 2 and steps["warm items"]["removed_interactions"] == 5


def test_cold_subset_counts_training_interactions_only(tmp_path):
    # training counts: a, b, c appear in every user's training part (12 users); "x" is in the training part
    # of 2 users; "y" is only ever a valid target (never trained on) and "z" is only a test target.
    rows = [(f"u{u}", it, t) for u in range(12) for t, it in enumerate(["a", "b", "c"])]
    rows += [(f"u{u}", "d", 3) for u in range(12)]  # valid target of most users
    rows += [(f"u{u}", "e", 4) for u in range(12)]  # test target of most users
    rows = [r for r in rows if not (r[0] in ("u0", "u1") and r[1] in ("d", "e"))]
    rows += [("u0", "x", 3), ("u0", "y", 4), ("u0", "x2", 5)]  # u0: train a b c x, valid y, test x2
    rows += [("u1", "x", 3), ("u1", "d", 4), ("u1", "x", 5), ("u1", "z", 6)]  # u1 repeats x (dedup keeps the first)
    rows = [r for r in rows if r != ("u1", "x", 5)]
    rows += [("u1", "x2", 5)]  # u1: train a b c x d, valid x2, test z
    ds = PreparedDataset(prepare(raw_from(rows), tmp_path / "c", **QUIET))
    users = ds.users["user"].tolist()
    idx = ds.item_index()
    counts = ds.train_item_counts
    assert counts[idx["x"]] == 2 and counts[idx["y"]] == 0 and counts[idx["z"]] == 0 and counts[idx["e"]] == 0
    assert counts[idx["x2"]] == 0  # u1's valid target: not training
    # test targets: u0 -> x2 (0 training interactions: new), u1 -> z (new), the others -> e (new too)
    assert set(subset_users(ds, "test", "new")) == set(range(12))
    # valid targets: u0 -> y (0: new), u1 -> x2 (0: new), the others -> d (trained on by u1 only: cold)
    valid_new = {users[k] for k in subset_users(ds, "valid", "new")}
    valid_cold = {users[k] for k in subset_users(ds, "valid", "cold")}
    assert valid_new == {"u0", "u1"} and valid_cold == {f"u{u}" for u in range(2, 12)}
    assert counts[idx["d"]] == 1
    assert len(subset_users(ds, "valid", "cold", cold_threshold=1)) == 0  # threshold 1: nothing is cold
    assert set(subset_users(ds, "valid", "warm", cold_threshold=1)) == {users.index(f"u{u}") for u in range(2, 12)}
    assert len(subset_users(ds, "test", "all")) == ds.n_users == 12


def test_cold_threshold_boundary(tmp_path):
    # item "p" is trained on by exactly 3 users: cold below threshold 4, warm at threshold 3
    rows = []
    for u in range(5):
        seq = ["a", "b", "c"] + (["p"] if u < 3 else []) + ["v", "p" if u == 4 else "t"]
        rows += [(f"u{u}", it, t) for t, it in enumerate(seq)]
    ds = PreparedDataset(prepare(raw_from(rows), tmp_path / "b", PrepareConfig(min_user_interactions=5), **QUIET))
    u4 = ds.users["user"].tolist().index("u4")
    assert ds.train_item_counts[ds.item_index()["p"]] == 3
    assert u4 in subset_users(ds, "test", "cold", cold_threshold=4)
    assert u4 in subset_users(ds, "test", "warm", cold_threshold=3)
    # subsets partition the users
    parts = [set(subset_users(ds, "test", s, cold_threshold=4)) for s in ("warm", "cold", "new")]
    assert sum(map(len, parts)) == ds.n_users and set.union(*parts) == set(range(ds.n_users))


def new_item_rows():
    # 6 users over items a..f; "n1" and "n2" end u0's / u1's sequences and also appear earlier elsewhere
    rows = []
    for u in range(6):
        seq = ["a", "b", "c", "d", "e", "f"][u % 3:] + ["a", "b"][: u % 3]
        rows += [(f"u{u}", it, t) for t, it in enumerate(seq)]
    rows += [("u0", "n1", 100), ("u1", "n2", 100)]  # the last (test) items of u0 and u1
    rows += [("u2", "n1", -1), ("u3", "n1", -2), ("u3", "n2", -1), ("u4", "n2", -1)]  # first items of other users
    rows += [("u5", "n2", 100)]  # also u5's last item
    return rows


def test_new_items_are_held_out_of_training(tmp_path):
    rows = new_item_rows()
    # the candidates are the items that end some sequence: n1, n2 and the last items of u2, u3, u4
    cfg = PrepareConfig(new_items=2, seed=0)
    log = []
    ds = PreparedDataset(prepare(raw_from(rows), tmp_path / "n", cfg, log=log.append))
    seqs = named(ds)
    candidates = {seq[-1] for seq in named(PreparedDataset(prepare(raw_from(rows), tmp_path / "r", **QUIET))).values()}
    held = {it for it in candidates if ds.train_item_counts[ds.item_index()[it]] == 0}
    assert len(held) == 2
    for user, seq in seqs.items():
        assert not held & set(seq[:-1]), (user, seq)  # a held-out item appears only as a last (test) item
    new_users = {ds.users["user"][k] for k in subset_users(ds, "test", "new")}
    assert new_users == {u for u, seq in seqs.items() if seq[-1] in held}
    # and the held-out items are not in any valid target or training sequence
    offsets, hist = ds.history_csr("test")
    assert not set(hist.tolist()) & {ds.item_index()[it] for it in held}
    step = {s["step"]: s for s in json.loads((tmp_path / "n" / "manifest.json").read_text())["filters"]}["new items"]
    assert step["held_out_items"] == 2 and step["removed_interactions"] > 0
    assert any("new items" in line for line in log)


def test_new_items_fraction_is_seeded_and_excluded_from_negatives(tmp_path):
    from morec.data.batches import NegativeSampler

    rows = new_item_rows()
    a = PreparedDataset(prepare(raw_from(rows), tmp_path / "a", PrepareConfig(new_items=0.25, seed=3), **QUIET))
    b = PreparedDataset(prepare(raw_from(rows), tmp_path / "b", PrepareConfig(new_items=0.25, seed=3), **QUIET))
    assert np.array_equal(np.asarray(a.items_flat), np.asarray(b.items_flat))
    n_items = len({r[1] for r in rows})
    new = set(a.targets("test")[subset_users(a, "test", "new")].tolist())
    assert len(new) == round(0.25 * n_items)
    users = np.full(2000, -1)  # no user: nothing rejected
    draw = lambda *args: set(NegativeSampler(a, *args).sample(users, (2000,), np.random.default_rng(0)).tolist())  # noqa: E731
    assert draw("uniform", "all") >= new  # the paper's code: any item can be a negative
    # train.negatives_from=train: training never sees a held-out item, not even as a negative
    assert not draw("uniform", "train") & new and not draw("popularity", "all") & new
    from morec.losses import LossContext
    strict = load_config(None, ["--data=d", "--train.negatives_from=train"]).train
    known = LossContext.build(a, strict).known
    assert not known[list(new)].any() and known.sum() == a.n_items - len(new)
    assert LossContext.build(a).known is None  # by default every item is a full-softmax class


def test_more_new_items_than_candidates_is_reported(tmp_path):
    rows = [(f"u{u}", it, t) for u in range(6) for t, it in enumerate(["a", "b", "c", "d", "e", f"z{u}"])]
    log = []
    ds = PreparedDataset(prepare(raw_from(rows), tmp_path / "m", PrepareConfig(new_items=50), log=log.append))
    assert any("asked for 50, but only 6 items end a user's sequence" in line for line in log)
    assert len(subset_users(ds, "test", "new")) == 6 and ds.n_items == 11


@pytest.mark.parametrize("value, ok", [(0.1, True), (3, True), (0, True), (1.5, False), (-1, False)])
def test_new_items_config_is_checked(value, ok):
    if ok:
        PrepareConfig(new_items=value).validate()
    else:
        with pytest.raises(ConfigError, match="prepare.new_items"):
            PrepareConfig(new_items=value).validate()


def test_subsample_keeps_whole_users(tmp_path):
    rows = [(f"u{u}", f"i{(u * 7 + k) % 25}", k) for u in range(40) for k in range(6)]
    ds = PreparedDataset(prepare(raw_from(rows), tmp_path / "s", PrepareConfig(n_users=15, seed=1), **QUIET))
    full = PreparedDataset(prepare(raw_from(rows), tmp_path / "f", **QUIET))
    assert ds.n_users == 15 and full.n_users == 40
    sub, every = named(ds), named(full)
    assert all(sub[u] == every[u] for u in sub)  # a kept user keeps every interaction


def test_eval_settings_are_checked():
    with pytest.raises(ConfigError, match="eval.subsets"):
        load_config(None, ["--data=d", "--eval.subsets=all,frozen"])
    with pytest.raises(ConfigError, match="eval.cold_threshold"):
        load_config(None, ["--data=d", "--eval.cold_threshold=0"])


def test_subset_metrics_from_one_ranking(tmp_path):
    """Subsets are slices of one ranking: the most-popular baseline's per-subset metrics match a direct
    computation, and evaluate_subsets' "all" equals the regular evaluation."""
    import torch

    from morec.evaluate import evaluate, metrics_from_ranks
    from morec.model import build_model

    rows = new_item_rows() + [(f"w{u}", it, t) for u in range(10) for t, it in enumerate("abcdef")]
    ds = PreparedDataset(prepare(raw_from(rows), tmp_path / "e", PrepareConfig(new_items=1, seed=0), **QUIET))
    ranks = most_popular_ranks(ds, "test")
    out = subset_metrics(ranks, ds, "test", [5], ["all", "warm", "cold", "new"], cold_threshold=10)
    assert out["all"]["users"] == ds.n_users
    assert sum(out[s]["users"] for s in ("warm", "cold", "new")) == ds.n_users
    assert out["new"]["users"] >= 1
    for name in out:
        users = subset_users(ds, "test", name)
        assert out[name] == {"users": len(users), **metrics_from_ranks(ranks[users], [5])}
    torch.manual_seed(0)
    cfg = load_config(None, ["--data=d", "--model.dim=8"])
    model = build_model(cfg.model, ds)
    res = evaluate_subsets(model, ds, "test", [5], max_len=10, subsets=["all", "new"])
    assert set(res) == {"all", "new"} and res["new"]["users"] == out["new"]["users"]
    assert {k: v for k, v in res["all"].items() if k != "users"} == pytest.approx(evaluate(model, ds, "test", [5], max_len=10))
