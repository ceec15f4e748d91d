"""The global time split (prepare.split=time) on hand-made data with known cuts: exactly the expected
interactions in each part, nothing at or after a cut trained on, users without a target not scored."""

import numpy as np
import pandas as pd
import pytest

from morec.config import PrepareConfig, load_config
from morec.data.dataset import PreparedDataset
from morec.data.formats import RawDataset
from morec.data.prepare import prepare, time_cuts
from morec.evaluate import metrics_from_ranks, most_popular_ranks, subset_metrics
from morec.report import load_run_info
from morec.train import train

from metric_reference import plain_metrics

# user -> interaction times; the item of time t is "i<t>", so an item tells when it happened. Cuts: valid 5, test 9.
HISTORIES = {
    "u0": [1, 2, 3, 4],              # all before the valid cut: trained on, never scored
    "u1": [1, 2, 6, 7, 10, 11],      # train 1, 2; valid target 6; 7 is test history only; test target 10; 11 unused
    "u2": [6, 7, 10],                # nothing to train on; no valid target (nothing before it); test target 10
    "u3": [2, 3, 9],                 # train 2, 3; no valid-period item; test target 9 (a cut belongs to the later part)
    "u4": [10, 11, 12, 13, 14],      # only after the test cut: one item, nothing to train or score on -> dropped
    "u5": [3, 4, 5],                 # train 3, 4; valid target 5; no test target
}


def hand_made() -> RawDataset:
    rows = [(u, f"i{t}", t) for u, times in HISTORIES.items() for t in times]
    inter = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    return RawDataset(inter, pd.DataFrame({"item": sorted(inter["item"].unique())}), "hand")


def times_of(items: np.ndarray, ds: PreparedDataset) -> list[int]:
    names = ds.items["item"].to_numpy()
    return [int(names[i - 1][1:]) for i in items]


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    out = tmp_path_factory.mktemp("time") / "hand"
    cfg = PrepareConfig(split="time", time_valid=5, time_test=9, min_user_interactions=3)
    return PreparedDataset(prepare(hand_made(), out, cfg, log=lambda s: None))


def test_each_part_holds_exactly_the_expected_interactions(ds):
    users = list(ds.users["user"])
    assert users == ["u0", "u1", "u2", "u3", "u5"]  # u4 dropped
    by_user = {u: i for i, u in enumerate(users)}
    train = {u: times_of(ds.train_items[ds.train_offsets[i]:ds.train_offsets[i + 1]], ds) for u, i in by_user.items()}
    assert train == {"u0": [1, 2, 3, 4], "u1": [1, 2], "u2": [], "u3": [2, 3], "u5": [3, 4]}
    valid, test = ds.targets("valid"), ds.targets("test")
    assert {u: times_of([valid[i]], ds)[0] for u, i in by_user.items() if valid[i]} == {"u1": 6, "u5": 5}
    assert {u: times_of([test[i]], ds)[0] for u, i in by_user.items() if test[i]} == {"u1": 10, "u2": 10, "u3": 9}
    assert list(ds.scored_users("valid")) == [by_user["u1"], by_user["u5"]]
    assert list(ds.scored_users("test")) == [by_user["u1"], by_user["u2"], by_user["u3"]]
    # histories: what came before the target, the valid period included for test (never trained on)
    offsets, items = ds.history_csr("test")
    assert times_of(items[offsets[1]:offsets[2]], ds) == [1, 2, 6, 7]
    assert times_of(items[offsets[2]:offsets[3]], ds) == [6, 7]
    offsets, items = ds.history_csr("valid")
    assert times_of(items[offsets[1]:offsets[2]], ds) == [1, 2]
    # nothing at or after the valid cut is trained on; 11 (after u1's test target) is not stored at all
    assert max(times_of(ds.train_items, ds)) < 5 and ds.train_item_counts.sum() == 10
    assert 11 not in times_of(np.asarray(ds.items_flat), ds)
    m = ds.manifest
    assert m["prepare"]["split"] == "time" and m["time_cuts"]["valid"] == 5 and m["time_cuts"]["test"] == 9
    assert "time split" in m["split"] and ds.stats()["valid"] == 2 and ds.stats()["test"] == 3


def test_only_users_with_a_target_are_scored(ds):
    ranks = most_popular_ranks(ds, "test")
    assert (ranks[ds.scored_users("test")] > 0).all() and (np.delete(ranks, ds.scored_users("test")) == 0).all()
    # users without a target are left out of the means
    assert metrics_from_ranks(ranks, [10]) == pytest.approx(plain_metrics(ranks, 10))
    subsets = subset_metrics(ranks, ds, "test", [10], ["all", "cold", "new"], cold_threshold=2)
    # targets: u1 -> i10 and u2 -> i10 (never trained: new), u3 -> i9 (new)
    assert subsets["all"]["users"] == 3 and subsets["new"]["users"] == 3 and subsets["cold"]["users"] == 0


def test_cuts_from_shares_leave_the_asked_share():
    raw_times = np.arange(1, 21)
    valid, test = time_cuts(raw_times, PrepareConfig(split="time", valid_share=0.25, test_share=0.2))
    assert (raw_times >= test).sum() == 4 and ((raw_times >= valid) & (raw_times < test)).sum() == 5
    valid, test = time_cuts(raw_times, PrepareConfig(split="time", time_test=18, valid_share=0.25, test_share=0.2))
    assert test == 18 and valid == 12


def test_new_items_and_training_under_the_time_split(synth_prepared, tmp_path):
    from morec.data.synthetic import SynthConfig, generate

    raw = generate(SynthConfig(n_users=300, n_items=120, n_topics=4, seq_len_min=8, seq_len_max=14, image_size=0, seed=3))
    cfg = PrepareConfig(split="time", valid_share=0.1, test_share=0.1, new_items=10)
    ds = PreparedDataset(prepare(raw, tmp_path / "t", cfg, log=lambda s: None))
    held = next(s for s in ds.manifest["filters"] if s["step"] == "new items")["held_out_items"]
    assert held == 10
    test = ds.targets("test")
    new = test[(test > 0) & (ds.train_item_counts[test] == 0)]
    assert len(np.unique(new)) >= 10  # the held-out items are test targets only, never trained
    valid = ds.targets("valid")
    assert not np.isin(valid, new).any()  # a held-out item is not a valid target either
    times = np.load(ds.path / "seq_times.npy")
    cuts = ds.manifest["time_cuts"]
    train_times = times[np.concatenate([np.arange(ds.offsets[u], ds.offsets[u] + n) for u, n in enumerate(ds.train_lengths)])]
    assert train_times.max() < cuts["valid"]
    run = tmp_path / "run"
    results = train(load_config(None, [f"--data={ds.path}", f"--out={run}", "--model.dim=16", "--train.epochs=2",
                                       "--train.threads=1", "--train.progress=false", "--train.tensorboard=false",
                                       "--eval.subsets=all,new"]), ds, log=lambda s: None)
    assert results["test_subsets"]["all"]["users"] == len(ds.scored_users("test")) < ds.n_users
    assert results["test_subsets"]["new"]["users"] == int(np.isin(test, new).sum())
    assert load_run_info(run).dataset.endswith("(time split)")


def test_bad_time_split_settings_name_the_key(tmp_path, capsys):
    from morec.cli import main

    assert main(["data", "prepare", "x", "--out", str(tmp_path / "o"), "--prepare.split=time",
                 "--prepare.time_valid=9", "--prepare.time_test=5"]) == 2
    assert "prepare.time_valid" in capsys.readouterr().err
    assert main(["data", "prepare", "x", "--out", str(tmp_path / "o"), "--prepare.time_test=5"]) == 2
    assert "prepare.split=time" in capsys.readouterr().err
