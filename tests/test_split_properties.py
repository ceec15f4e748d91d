"""Properties of the filters and splits of ``prepare``, on generated interaction tables with timestamp ties,
repeated (user, item) pairs and rows in any order, against a plain-Python rendering of the documented steps:
order by time (ties keep the file order), de-duplicate, warm-item filter, keep each user's latest N, drop short
users; leave-one-out, or the global time split (a user keeps what comes before the test cut and their first item
at or after it)."""
import math
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from morec.config import PrepareConfig
from morec.data.dataset import PreparedDataset
from morec.data.formats import DataFormatError, RawDataset
from morec.data.prepare import prepare, time_cuts

FAST = settings(max_examples=40, deadline=None, database=None)

# four users and at least 12 rows: most tables keep some user past the filters (six users and lists from empty
# up reached the comparisons in about 1 example of 40; the empty table: test_an_empty_table_is_refused)
rows_strategy = st.lists(st.tuples(st.sampled_from("abcd"), st.sampled_from("pqrstuvw"), st.integers(0, 12)),
                         min_size=12, max_size=45)
configs = st.fixed_dictionaries({
    "dedup": st.sampled_from(["first", "last", "none"]),
    "min_user_interactions": st.integers(3, 5),
    "min_item_interactions": st.sampled_from([0, 0, 2, 3]),
    "max_seq_len": st.sampled_from([0, 0, 3, 4, 6]),
})


def reference_filters(rows, cfg: PrepareConfig) -> dict[str, list[tuple[str, int]]]:
    """{user: [(item, time), ...]} after the filters, each user's rows in time order, ties in file order."""
    seqs = defaultdict(list)
    for user, item, t in rows:  # file order; sorted() below is stable
        seqs[user].append((item, t))
    seqs = {u: sorted(s, key=lambda x: x[1]) for u, s in seqs.items()}
    if cfg.dedup != "none":
        def dedup(seq):
            keep = [(item, t) for n, (item, t) in enumerate(seq) if
                    item not in [i for i, _ in (seq[:n] if cfg.dedup == "first" else seq[n + 1:])]]
            return keep
        seqs = {u: dedup(s) for u, s in seqs.items()}
    if cfg.min_item_interactions:
        counts = Counter(item for s in seqs.values() for item, _ in s)
        seqs = {u: [x for x in s if counts[x[0]] >= cfg.min_item_interactions] for u, s in seqs.items()}
    if cfg.max_seq_len:
        seqs = {u: s[-cfg.max_seq_len:] for u, s in seqs.items()}
    return {u: s for u, s in seqs.items() if len(s) >= cfg.min_user_interactions}


def prepared(rows, cfg: PrepareConfig):
    """{user: [(item, time)]} and split positions {user: (n_train, valid, test)} of ``prepare``; None if it
    refused (every user filtered out)."""
    inter = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    raw = RawDataset(inter, pd.DataFrame({"item": sorted(set(inter["item"]))}), "gen")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            ds = PreparedDataset(prepare(raw, Path(tmp) / "p", cfg, log=lambda s: None))
        except DataFormatError as err:
            assert ("every user was filtered out" in str(err) or (not rows and "holds no interactions" in str(err))
                    or "must lie within the interactions' span" in str(err))
            return None, None
        names = ds.items["item"].to_numpy()
        times = np.load(ds.path / "seq_times.npy")
        seqs, positions = {}, {}
        for u, user in enumerate(ds.users["user"]):
            lo, hi = ds.offsets[u], ds.offsets[u + 1]
            seqs[user] = [(names[i - 1], int(t)) for i, t in zip(ds.sequence(u), times[lo:hi])]
            positions[user] = tuple(int(x) for x in ds.split_positions[u])
        assert ds.train_item_counts.sum() == sum(p[0] for p in positions.values())
        return seqs, positions


@FAST
@given(rows_strategy, configs)
def test_leave_one_out_keeps_exactly_the_documented_interactions_in_time_order(rows, options):
    cfg = PrepareConfig(**options)
    want = reference_filters(rows, cfg)
    seqs, positions = prepared(rows, cfg)
    if not want:
        assert seqs is None
        return
    assert seqs == want  # every user with enough interactions kept, each in time order, ties in file order
    for user, seq in seqs.items():
        n_train, valid, test = positions[user]
        assert (n_train, valid, test) == (len(seq) - 2, len(seq) - 2, len(seq) - 1)
        times = [t for _, t in seq]
        assert max(times[:n_train]) <= times[valid] <= times[test]  # nothing trained on after a target


def reference_time_split(rows, cfg: PrepareConfig) -> dict[str, tuple[list, tuple[int, int, int]]]:
    """{user: ([(item, time)], (n_train, valid position, test position))} of the global time split."""
    out = {}
    for user, seq in reference_filters(rows, cfg).items():
        period = [0 if t < cfg.time_valid else 1 if t < cfg.time_test else 2 for _, t in seq]
        if 2 in period:
            cut = period.index(2) + 1
            seq, period = seq[:cut], period[:cut]
        if 0 not in period and len(seq) < 2:  # nothing to train on and no target with a history
            continue
        n_train, n_valid = period.count(0), period.count(1)
        out[user] = (seq, (n_train, n_train if n_valid and n_train else -1,
                           len(seq) - 1 if 2 in period and len(seq) > 1 else -1))
    return out


@FAST
@given(rows_strategy, configs, st.integers(1, 11), st.integers(1, 6))
def test_time_split_never_trains_after_a_target_and_keeps_every_user_with_a_use(rows, options, valid, gap):
    cfg = PrepareConfig(split="time", time_valid=valid, time_test=valid + gap, **options)
    want = reference_time_split(rows, cfg)
    seqs, positions = prepared(rows, cfg)
    if not reference_filters(rows, cfg) or not want:
        assert seqs is None
        return
    kept = [t for seq in reference_filters(rows, cfg).values() for _, t in seq]
    if cfg.time_valid <= min(kept) or cfg.time_test > max(kept):  # given cuts outside the data's span: refused
        assert seqs is None
        return
    assert {u: (s, positions[u]) for u, s in seqs.items()} == want
    for user, seq in seqs.items():
        n_train, v, t = positions[user]
        times = [x for _, x in seq]
        assert all(x < cfg.time_valid for x in times[:n_train])
        for pos in (v, t):
            if pos >= 0:
                assert max(times[:n_train], default=-math.inf) <= times[pos]
        if v >= 0:
            assert cfg.time_valid <= times[v] < cfg.time_test
        if t >= 0:
            assert times[t] >= cfg.time_test and times[:t] == [x for x in times if x < cfg.time_test]


@FAST
@given(rows_strategy, configs, st.sampled_from(["loo", "time"]), st.randoms(use_true_random=False))
def test_row_order_does_not_matter_when_a_users_times_are_distinct(rows, options, split, rnd):
    """File order only breaks timestamp ties within a user (documented); without ties any order gives the
    same sequences and splits."""
    seen, distinct = set(), []
    for user, item, t in rows:
        if (user, t) not in seen:
            seen.add((user, t))
            distinct.append((user, item, t))
    shuffled = distinct[:]
    rnd.shuffle(shuffled)
    cfg = PrepareConfig(**options, **({"split": "time", "time_valid": 5, "time_test": 9} if split == "time" else {}))
    assert prepared(distinct, cfg) == prepared(shuffled, cfg)


@FAST
@given(rows_strategy, st.integers(1, 3))
def test_new_items_are_only_ever_a_users_last_item(rows, n_new):
    cfg = PrepareConfig(min_user_interactions=3, new_items=n_new)
    seqs, _ = prepared(rows, cfg)
    if seqs is None:
        return
    last = Counter(s[-1][0] for s in seqs.values())
    earlier = Counter(item for s in seqs.values() for item, _ in s[:-1])
    held = [item for item in last if item not in earlier]
    base = reference_filters(rows, PrepareConfig(min_user_interactions=3))
    # every item that some user still has before their last item was not held out: its rows are all there
    for item in earlier:
        assert sum(1 for s in seqs.values() for i, _ in s if i == item) <= sum(
            1 for s in base.values() for i, _ in s if i == item)
    assert all(item in {s[-1][0] for s in base.values()} for item in held)


@FAST
@given(st.lists(st.integers(0, 30), min_size=1, max_size=60), st.floats(0.05, 0.45), st.floats(0.05, 0.45))
def test_time_cuts_leave_at_least_the_asked_shares_and_no_later_cut_would(times, valid_share, test_share):
    cfg = PrepareConfig(split="time", valid_share=valid_share, test_share=test_share)
    valid, test = time_cuts(np.array(times), cfg)
    t = np.array(times)
    need_test = max(1, math.ceil(len(t) * test_share))
    need_both = max(1, math.ceil(len(t) * (valid_share + test_share)))
    assert (t >= test).sum() >= need_test > (t > test).sum()
    assert (t >= valid).sum() >= need_both > (t > valid).sum()
    assert time_cuts(t, PrepareConfig(split="time", time_valid=3, time_test=7)) == (3.0, 7.0)
    assert time_cuts(t, PrepareConfig(split="time", time_test=7, valid_share=valid_share, test_share=test_share))[0] == valid


def test_a_time_split_whose_cuts_tie_names_the_settings(tmp_path):
    rows = [(u, i, 5) for u in "ab" for i in "pqrs"]
    inter = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    raw = RawDataset(inter, pd.DataFrame({"item": list("pqrs")}), "gen")
    with pytest.raises(DataFormatError, match=r"valid cut \(5\) is not before its test cut \(5\).*prepare.time_valid"):
        prepare(raw, tmp_path / "p", PrepareConfig(split="time", min_user_interactions=3), log=lambda s: None)


def test_an_empty_table_is_refused(tmp_path):
    raw = RawDataset(pd.DataFrame(columns=["user", "item", "timestamp"]), pd.DataFrame({"item": []}), "gen")
    with pytest.raises(DataFormatError, match=r"^\[gen\] the source holds no interactions \(a header but no rows\?\)"):
        prepare(raw, tmp_path / "p", PrepareConfig(), log=lambda s: None)
