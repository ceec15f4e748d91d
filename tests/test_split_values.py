"""The filters and splits of ``prepare`` called directly on small hand-made tables, each expected row worked out
by hand: what each filter keeps at its boundary, what it logs, the time cuts, the periods and targets of the time
split, the split positions and the new-item hold-outs (fast: no prepared folder is written)."""
import numpy as np
import pandas as pd
import pytest

from morec.config import PrepareConfig
from morec.data.formats import DataFormatError
from morec.data.prepare import (_FilterLog, filter_interactions, hold_out_new_items, split_positions, time_cuts,
                                time_split)


def table(rows, timed=None):
    """rows: (user, item, time) in file order."""
    df = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    df["_order"] = np.arange(len(df))
    if timed is not None:
        df["_timed"] = timed
    return df


def run(fn, df, log=None, **cfg):
    lines = [] if log is None else log
    step = _FilterLog("t", lines.append)
    out = fn(df, PrepareConfig(**cfg), step)
    return out, step, lines


def triples(df):
    return list(zip(df["user"].tolist(), df["item"].tolist(), df["timestamp"].tolist()))


def removed(step, name):
    s = next(s for s in step.steps if s["step"] == name)
    return s["removed_interactions"], s["removed_users"], s["removed_items"]


def test_rows_are_ordered_by_user_then_time_with_ties_in_file_order():
    df = table([(1, 5, 3), (0, 7, 2), (0, 8, 1), (1, 6, 3), (0, 9, 2)]).iloc[[2, 0, 4, 1, 3]]  # _order shuffled
    out, step, _ = run(filter_interactions, df, min_user_interactions=1)
    assert triples(out) == [(0, 8, 1), (0, 7, 2), (0, 9, 2), (1, 5, 3), (1, 6, 3)]
    untimed = table([(0, 1, 9), (0, 2, 5), (0, 3, 7)], timed=[True, False, True])  # untimed history comes first
    out, *_ = run(filter_interactions, untimed, min_user_interactions=1)
    assert out["item"].tolist() == [2, 3, 1]


@pytest.mark.parametrize("keep,items", [("first", [1, 2, 3]), ("last", [1, 3, 2]), ("none", [1, 2, 1, 3, 2])])
def test_dedup_keeps_the_first_or_last_repeat_or_every_one(keep, items):
    df = table([(0, 1, 1), (0, 2, 2), (0, 1, 3), (0, 3, 4), (0, 2, 5), (1, 2, 1)])
    out, step, lines = run(filter_interactions, df, dedup=keep, min_user_interactions=1)
    assert out.loc[out["user"] == 0, "item"].tolist() == items and out.loc[out["user"] == 1, "item"].tolist() == [2]
    if keep == "none":
        assert [s["step"] for s in step.steps] == ["short users"]
    else:
        assert removed(step, "dedup") == (2, 0, 0)
        assert f"[t] dedup: removed 2 interactions, 0 users, 0 items (repeated (user, item) pairs, kept the {keep}; " \
               "prepare.dedup=none keeps every repeat)" in lines


def test_item_repeats_across_users_are_not_duplicates():
    df = table([(0, 3, 1), (1, 3, 1), (2, 3, 1), (0, 1, 2), (1, 0, 2), (1, 1, 3)])  # user * (max item + 1) + item: unique
    out, step, _ = run(filter_interactions, df, min_user_interactions=1)
    assert len(out) == 6 and removed(step, "dedup") == (0, 0, 0)


def test_warm_items_truncation_and_short_users_at_their_boundaries():
    rows = [(0, i, t) for t, i in enumerate([1, 2, 3, 1, 2, 4])] + [(1, i, t) for t, i in enumerate([1, 2, 5])]
    out, step, lines = run(filter_interactions, table(rows), min_item_interactions=2, min_user_interactions=1)
    assert triples(out) == [(0, 1, 0), (0, 2, 1), (1, 1, 0), (1, 2, 1)]  # after dedup items 1 and 2 have 2 users
    assert removed(step, "warm items") == (3, 0, 3)
    assert "[t] warm items: removed 3 interactions, 0 users, 3 items (items with fewer than 2 interactions)" in lines
    out, step, lines = run(filter_interactions, table(rows), dedup="none", max_seq_len=3, min_user_interactions=3)
    assert triples(out) == [(0, 1, 3), (0, 2, 4), (0, 4, 5), (1, 1, 0), (1, 2, 1), (1, 5, 2)]
    assert removed(step, "truncate") == (3, 0, 1) and "(kept each user's latest 3)" in lines[-2]
    out, step, lines = run(filter_interactions, table(rows), dedup="none", min_user_interactions=4)
    assert set(out["user"]) == {0} and len(out) == 6 and removed(step, "short users") == (3, 1, 1)
    assert lines[-1] == "[t] short users: removed 3 interactions, 1 users, 1 items (users with fewer than 4 interactions)"


def test_subsample_draws_the_seeded_users():
    rows = [(u, u % 3, t) for u in (5, 2, 9, 4) for t in range(2)]
    out, step, lines = run(filter_interactions, table(rows), n_users=2, seed=3, min_user_interactions=1)
    want = np.random.default_rng(3).choice(np.array([5, 2, 9, 4]), size=2, replace=False)
    assert sorted(set(out["user"])) == sorted(want.tolist()) and removed(step, "subsample")[1] == 2
    assert lines[0].endswith("(kept a random 2 users, seed 3)")
    _, step, _ = run(filter_interactions, table(rows), n_users=4, min_user_interactions=1)
    assert "subsample" not in [s["step"] for s in step.steps]


def test_time_cuts_from_shares_and_given_times():
    t = np.array([7, 1, 9, 3, 2, 10, 5, 4, 8, 6], dtype=float)  # 1..10 unsorted
    assert time_cuts(t, PrepareConfig(split="time")) == (9.0, 10.0)  # 1 at or after the test cut, 1 more valid
    assert time_cuts(t, PrepareConfig(split="time", valid_share=0.2, test_share=0.15)) == (7.0, 9.0)  # ceil 1.5 = 2
    assert time_cuts(t, PrepareConfig(split="time", valid_share=0.01, test_share=0.01)) == (10.0, 10.0)  # at least 1 each
    assert time_cuts(t, PrepareConfig(split="time", time_valid=4, time_test="6.5")) == (4.0, 6.5)
    with pytest.raises(DataFormatError, match=r"prepare.time_test=2024-01-01 is a date, but .* from 1 to 10: .*"
                                              r"--prepare.time_test=10"):
        time_cuts(t, PrepareConfig(split="time", time_test="2024-01-01"))
    days = np.array([1.7e9, 1.7e9 + 86400 * 10])  # seconds since 1970, in 2023
    assert time_cuts(days, PrepareConfig(split="time", time_valid="2023-11-15", time_test=1.7e9 + 5)) == \
        (pd.Timestamp("2023-11-15", tz="UTC").timestamp(), 1.7e9 + 5)


def split_table():
    # cuts at 10 (valid) and 20 (test); user 0 spans all periods, user 1 has two test-period items, user 2 only
    # test-period items, user 3 only training, user 4 only one test-period item
    return table([(0, 1, 1), (0, 2, 12), (0, 3, 20), (0, 4, 25), (1, 2, 5), (1, 5, 21), (1, 6, 22),
                  (2, 1, 23), (2, 2, 24), (3, 3, 2), (3, 4, 3), (4, 5, 30)])


def test_time_split_periods_first_test_item_and_idle_users():
    df = split_table()
    step = _FilterLog("t", [].append)
    out, cuts = time_split(df, PrepareConfig(split="time", time_valid=10, time_test=20), step)
    assert triples(out) == [(0, 1, 1), (0, 2, 12), (0, 3, 20), (1, 2, 5), (1, 5, 21), (3, 3, 2), (3, 4, 3)]
    assert out["_period"].tolist() == [0, 1, 2, 0, 2, 0, 0]
    assert cuts == {"valid": 10.0, "test": 20.0, "unit": None, "train_interactions": 4, "valid_interactions": 1,
                    "test_interactions": 2}
    assert removed(step, "time split") == (3, 0, 1)  # 25, 22, 24: after the user's first test item
    assert removed(step, "time split users") == (2, 2, 0)  # users 2 and 4 keep one test item and no history
    assert "_after" not in out.columns


def test_time_split_treats_untimed_history_as_training():
    df = table([(0, 1, 99), (0, 2, 1), (0, 3, 5), (0, 4, 9)], timed=[False, True, True, True])
    out, cuts = time_split(df, PrepareConfig(split="time", time_valid=5, time_test=9), _FilterLog("t", print))
    assert out["_period"].tolist() == [0, 0, 1, 2] and cuts["train_interactions"] == 2


@pytest.mark.parametrize("cfg,match", [
    (dict(time_valid=20, time_test=20), r"valid cut \(20\) is not before its test cut \(20\)"),
    (dict(time_valid=1, time_test=20), r"time cuts 1 \(valid\) and 20 \(test\) must lie within the interactions' "
                                        r"span, 1 to 30"),
    (dict(time_valid=10, time_test=31), r"must lie within"),
])
def test_time_split_refuses_cuts_that_tie_or_leave_the_span(cfg, match):
    with pytest.raises(DataFormatError, match=match):
        time_split(split_table(), PrepareConfig(split="time", **cfg), _FilterLog("t", print))
    time_split(split_table(), PrepareConfig(split="time", time_valid=1.5, time_test=30), _FilterLog("t", print))
    untimed = table([(0, 1, 1), (0, 2, 2)], timed=[False, False])
    with pytest.raises(DataFormatError, match=r"\[t\] prepare.split=time: no interaction has a time"):
        time_split(untimed, PrepareConfig(split="time"), _FilterLog("t", print))


def test_split_positions_need_an_item_before_each_target():
    periods = np.array([0, 0, 1, 2, 0, 2, 1, 2, 2, 0])
    offsets = np.array([0, 4, 6, 8, 9, 10])  # users: 0 0 1 2 | 0 2 | 1 2 | 2 | 0
    assert split_positions(periods, offsets).tolist() == [[2, 2, 3], [1, -1, 1], [0, -1, 1], [0, -1, -1],
                                                          [1, -1, -1]]


def test_new_items_are_drawn_among_last_items_and_kept_only_there():
    df = table([(0, 1, 1), (0, 2, 2), (0, 3, 3), (1, 3, 1), (1, 2, 2), (1, 4, 3), (2, 4, 1), (2, 1, 2)])
    out, step, lines = run(hold_out_new_items, df, new_items=2, seed=7)
    held = np.random.default_rng([7, 1]).choice(np.array([1, 3, 4]), size=2, replace=False)
    last = {0: 3, 1: 4, 2: 1}
    for u, item, _ in triples(df):
        kept = (u, item) in {(u2, i2) for u2, i2, _ in triples(out)}
        assert kept == (item not in held or last[u] == item)
    assert step.steps[-1]["held_out_items"] == 2 and lines[-1].endswith(
        "(held out 2 items: their interactions are kept only as a user's last (test) item)")
    out, step, _ = run(hold_out_new_items, df, new_items=0.5, seed=7)  # half of the 4 items
    assert step.steps[-1]["held_out_items"] == 2
    out, step, lines = run(hold_out_new_items, df, new_items=5, seed=7)
    assert step.steps[-1]["held_out_items"] == 3
    assert lines[0] == "[t] new items: asked for 5, but only 3 items end a user's sequence; holding out all of them"
    assert triples(out) == [(0, 2, 2), (0, 3, 3), (1, 2, 2), (1, 4, 3), (2, 1, 2)]


def test_new_items_under_the_time_split_are_drawn_among_test_targets():
    df = split_table()
    lines = []
    out, _ = time_split(df, PrepareConfig(split="time", time_valid=10, time_test=20, new_items=5),
                        _FilterLog("t", lines.append))
    # the test targets 3 (user 0) and 5 (user 1) are held out: item 3's training rows (user 3) go, and user 3
    # keeps item 4 alone, still a user with training
    assert "[t] new items: asked for 5, but only 2 items are a test target; holding out all of them" in lines
    assert triples(out) == [(0, 1, 1), (0, 2, 12), (0, 3, 20), (1, 2, 5), (1, 5, 21), (3, 4, 3)]
    assert filter_interactions(df, PrepareConfig(split="time", new_items=5, min_user_interactions=1),
                               _FilterLog("t", print)).shape[0] == len(df)  # the loo hold-out is not applied
