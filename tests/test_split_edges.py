"""Edges of the filters and splits of ``prepare`` that the value tests leave open: untimed history placed first,
pair keys that must not collide, a filter at its no-op setting, the leave-one-out hold-out inside the filters,
dates in the time split's messages, every line the time split logs, the idle-user rule at two items, a count of
one new item, new items as a fraction under the time split and the split positions' edge users. Every expected
value is worked out by hand on the small tables below (fast: no prepared folder is written)."""
import numpy as np
import pandas as pd
import pytest
from test_split_values import removed, run, split_table, table, triples

from morec.config import PrepareConfig
from morec.data.formats import DataFormatError
from morec.data.prepare import _FilterLog, filter_interactions, hold_out_new_items, split_positions, time_cuts, \
    time_split


def day(text):
    """Seconds since 1970 of a UTC date (the readers' time base for dates)."""
    return int(pd.Timestamp(text, tz="UTC").timestamp())


def test_untimed_history_comes_first_even_with_a_later_ordering_time():
    # the untimed row's ordering time (9) is after both timed rows: it still opens the sequence
    df = table([(0, 1, 1), (0, 2, 9), (0, 3, 5), (1, 4, 2)], timed=[True, False, True, True])
    out, *_ = run(filter_interactions, df, min_user_interactions=1)
    assert triples(out) == [(0, 2, 9), (0, 1, 1), (0, 3, 5), (1, 4, 2)]


def test_pairs_of_different_users_and_items_are_never_one_key():
    # items 0..1: a key user / 2 + item would make (0, 1) and (2, 0) the same; (user, item) pairs are all distinct
    df = table([(0, 1, 1), (2, 0, 1), (0, 0, 2), (2, 1, 2), (1, 1, 3)])
    out, step, _ = run(filter_interactions, df, min_user_interactions=1)
    assert sorted(triples(out)) == sorted(triples(df)) and removed(step, "dedup") == (0, 0, 0)


def test_a_warm_item_filter_of_one_is_applied_and_reported():
    df = table([(0, 1, 1), (0, 2, 2), (1, 1, 1)])
    out, step, lines = run(filter_interactions, df, min_item_interactions=1, min_user_interactions=1)
    assert [s["step"] for s in step.steps] == ["dedup", "warm items", "short users"] and len(out) == 3
    assert "[t] warm items: removed 0 interactions, 0 users, 0 items (items with fewer than 1 interactions)" in lines


def test_the_filters_hold_out_new_items_under_leave_one_out():
    # last items: user 0 -> 3, user 1 -> 4; both are held out (5 asked, 2 end a sequence): item 3's earlier row
    # (user 1) goes, then user 1 keeps 2 items and is dropped by min_user_interactions=3
    df = table([(0, 1, 1), (0, 2, 2), (0, 3, 3), (1, 3, 1), (1, 2, 2), (1, 4, 3)])
    out, step, lines = run(filter_interactions, df, new_items=5, min_user_interactions=3)
    assert [s["step"] for s in step.steps] == ["dedup", "new items", "short users"]
    assert step.steps[1]["held_out_items"] == 2 and triples(out) == [(0, 1, 1), (0, 2, 2), (0, 3, 3)]
    assert "[t] new items: asked for 5, but only 2 items end a user's sequence; holding out all of them" in lines


def test_a_date_for_time_valid_on_numeric_times_names_time_valid():
    t = np.arange(1.0, 11.0)
    with pytest.raises(DataFormatError, match=r"^prepare\.time_valid=2024-01-01 is a date, but the data's timestamps "
                                              r"are not dates \(they run from 1 to 10: .*--prepare\.time_valid=10$"):
        time_cuts(t, PrepareConfig(split="time", time_valid="2024-01-01", time_test=9))


def test_time_split_logs_every_step_in_full():
    lines = []
    time_split(split_table(), PrepareConfig(split="time", time_valid=10, time_test=20), _FilterLog("t", lines.append))
    assert lines == [
        "[t] time split: the interactions span 1 to 30",
        "[t] time split: removed 3 interactions, 0 users, 1 items (cut at 10 (valid) and 20 (test): a user's items "
        "after their first test-period item are never used)",
        "[t] time split users: removed 2 interactions, 2 users, 0 items (users with no interaction before the valid "
        "cut and no target with a history before it)",
        "[t] time split: 4 training interactions, 1 in the valid period, 2 test targets"]


def test_time_split_in_dates_shows_dates():
    df = table([(0, 1, day("2024-01-01")), (0, 2, day("2024-01-10")), (0, 3, day("2024-01-20")),
                (1, 1, day("2024-01-02")), (1, 3, day("2024-01-21"))])
    lines = []
    out, cuts = time_split(df, PrepareConfig(split="time", time_valid="2024-01-05", time_test="2024-01-15"),
                           _FilterLog("t", lines.append))
    assert cuts == {"valid": day("2024-01-05"), "test": day("2024-01-15"), "unit": "s", "train_interactions": 2,
                    "valid_interactions": 1, "test_interactions": 2}
    assert lines[0] == "[t] time split: the interactions span 2024-01-01 to 2024-01-21"
    assert lines[1].endswith("(cut at 2024-01-05 (valid) and 2024-01-15 (test): a user's items after their first "
                             "test-period item are never used)")
    with pytest.raises(DataFormatError, match=r"time cuts 2023-12-01 \(valid\) and 2024-01-15 \(test\) must lie "
                                              r"within the interactions' span, 2024-01-01 to 2024-01-21"):
        time_split(df, PrepareConfig(split="time", time_valid="2023-12-01", time_test="2024-01-15"),
                   _FilterLog("t", print))


@pytest.mark.parametrize("rows,timed,cfg,message", [
    ([(0, 1, 1), (0, 2, 2)], [False, False], {},
     "[t] prepare.split=time: no interaction has a time (all are untimed history); use prepare.split=loo"),
    ([(0, 1, 1), (0, 2, 2), (0, 3, 3)], None, dict(time_valid=2, time_test=2),
     "[t] the time split's valid cut (2) is not before its test cut (2): timestamps tie there; set "
     "prepare.time_valid / prepare.time_test or other prepare.valid_share / prepare.test_share"),
    ([(0, 1, 1), (0, 2, 2), (0, 3, 3)], None, dict(time_valid=1, time_test=3),
     "[t] the time cuts 1 (valid) and 3 (test) must lie within the interactions' span, 1 to 3; give "
     "prepare.time_valid / prepare.time_test inside it"),
])
def test_time_split_refusals_in_full(rows, timed, cfg, message):
    with pytest.raises(DataFormatError) as err:
        time_split(table(rows, timed), PrepareConfig(split="time", **cfg), _FilterLog("t", print))
    assert str(err.value) == message


def test_a_user_with_a_valid_and_a_test_item_and_no_training_is_kept():
    # user 5: its test target (21) has the valid item (12) before it; user 6: one test item alone is dropped
    df = table([(0, 1, 1), (0, 2, 12), (0, 3, 20), (5, 1, 12), (5, 2, 21), (6, 4, 22)])
    out, _ = time_split(df, PrepareConfig(split="time", time_valid=10, time_test=20), _FilterLog("t", print))
    assert triples(out) == [(0, 1, 1), (0, 2, 12), (0, 3, 20), (5, 1, 12), (5, 2, 21)]
    assert out["_period"].tolist() == [0, 1, 2, 1, 2]


def test_a_count_of_one_new_item_holds_out_one():
    df = table([(0, 1, 1), (0, 2, 2), (0, 3, 3), (1, 3, 1), (1, 2, 2), (1, 4, 3), (2, 4, 1), (2, 1, 2)])
    out, step, lines = run(hold_out_new_items, df, new_items=1, seed=7)
    assert step.steps[-1]["held_out_items"] == 1 and len(lines) == 1  # no "asked for" line: enough candidates
    (held,) = np.random.default_rng([7, 1]).choice(np.array([1, 3, 4]), size=1, replace=False)
    earlier = {1: [(0, 1, 1)], 3: [(1, 3, 1)], 4: [(2, 4, 1)]}[held]  # the held item's rows before a user's last
    assert triples(out) == [r for r in triples(df) if r not in earlier]


def test_new_items_in_full_under_leave_one_out():
    df = table([(0, 1, 1), (0, 2, 2), (0, 3, 3), (1, 3, 1), (1, 2, 2), (1, 4, 3), (2, 4, 1), (2, 1, 2)])
    _, step, lines = run(hold_out_new_items, df, new_items=3, seed=7)  # all three last items: 3, 4, 1
    assert [s["step"] for s in step.steps] == ["new items"] and lines == [
        "[t] new items: removed 3 interactions, 0 users, 0 items (held out 3 items: their interactions are kept only "
        "as a user's last (test) item)"]


def test_new_items_as_a_fraction_under_the_time_split():
    # after the cuts 5 items remain (1..5); 0.4 of them = 2 = both test targets (3 of user 0, 5 of user 1)
    lines = []
    step = _FilterLog("t", lines.append)
    out, _ = time_split(split_table(), PrepareConfig(split="time", time_valid=10, time_test=20, new_items=0.4), step)
    assert triples(out) == [(0, 1, 1), (0, 2, 12), (0, 3, 20), (1, 2, 5), (1, 5, 21), (3, 4, 3)]
    assert not any("asked for" in line for line in lines)
    assert "[t] new items: removed 1 interactions, 0 users, 0 items (held out 2 items: their interactions are kept " \
           "only as users' test targets)" in lines
    assert [(s["step"], s.get("held_out_items")) for s in step.steps] == [
        ("time split", None), ("time split users", None), ("new items", 2), ("time split users", None)]


def test_split_positions_of_edge_users():
    # users: train + valid (no test) | train, valid, test | valid + test | two training items | none at all
    periods = np.array([0, 1, 0, 1, 2, 1, 2, 0, 0])
    offsets = np.array([0, 2, 5, 7, 9, 9])
    got = split_positions(periods, offsets)
    assert got.dtype == np.int64
    assert got.tolist() == [[1, 1, -1], [1, 1, 2], [0, -1, 1], [2, -1, -1], [0, -1, -1]]
