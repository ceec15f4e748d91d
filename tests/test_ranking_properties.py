"""Properties of the full ranking and its metrics, checked against plain-Python definitions on generated inputs.

A rank is 1 + the number of other unmasked items scoring >= the target (padding never a candidate, a NaN
competitor counted against the target, a NaN target ranked last). Scores are small integers held exactly in
float32, so that ties are frequent and adding a constant is exact.
"""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from morec.evaluate import metrics_from_ranks, ranks_from_scores
from morec.ranks import load_ranks, per_user_metric, save_ranks

from metric_reference import plain_metrics

FAST = settings(max_examples=60, deadline=None, database=None)
NAN = float("nan")


def reference_rank(row: list[float], target: int, masked: set[int]) -> int:
    t = row[target]
    if math.isnan(t):
        return len(row) - 1
    others = [s for j, s in enumerate(row) if j not in (0, target) and j not in masked]
    return 1 + sum(1 for s in others if math.isnan(s) or s >= t)


@st.composite
def ranking_cases(draw):
    """(scores (B, n + 1), targets (B,), masked pairs [(row, item)]) with ties, NaNs and masked targets."""
    n = draw(st.integers(1, 12))
    b = draw(st.integers(1, 5))
    value = st.one_of(st.integers(-3, 3).map(float), st.just(NAN))
    rows = [[draw(value) for _ in range(n + 1)] for _ in range(b)]
    targets = [draw(st.integers(1, n)) for _ in range(b)]
    pairs = draw(st.lists(st.tuples(st.integers(0, b - 1), st.integers(1, n)), max_size=3 * b))
    return rows, targets, pairs


def as_tensors(rows, targets, pairs):
    mask_rows = torch.tensor([r for r, _ in pairs], dtype=torch.int64)
    mask_cols = torch.tensor([c for _, c in pairs], dtype=torch.int64)
    return torch.tensor(rows), torch.tensor(targets), mask_rows, mask_cols


def masked_of(pairs, row):
    return {c for r, c in pairs if r == row}


@FAST
@given(ranking_cases())
def test_rank_is_one_plus_unmasked_competitors_at_or_above_the_target(case):
    rows, targets, pairs = case
    scores, t, mr, mc = as_tensors(rows, targets, pairs)
    before = scores.clone()
    got = ranks_from_scores(scores, t, mr, mc).tolist()
    assert got == [reference_rank(rows[i], targets[i], masked_of(pairs, i)) for i in range(len(rows))]
    assert torch.equal(scores.nan_to_num(7.5), before.nan_to_num(7.5))  # not in place: the input is untouched
    assert ranks_from_scores(scores, t).tolist() == [reference_rank(r, x, set()) for r, x in zip(rows, targets)]


@FAST
@given(ranking_cases(), st.integers(-5, 5))
def test_adding_a_constant_to_every_score_keeps_every_rank(case, shift):
    rows, targets, pairs = case
    scores, t, mr, mc = as_tensors(rows, targets, pairs)
    assert ranks_from_scores(scores + shift, t, mr, mc).tolist() == ranks_from_scores(scores, t, mr, mc).tolist()


@FAST
@given(ranking_cases(), st.integers(1, 4))
def test_raising_the_target_score_never_worsens_its_rank(case, rise):
    rows, targets, pairs = case
    scores, t, mr, mc = as_tensors(rows, targets, pairs)
    rows_t = torch.arange(len(rows))
    finite = ~scores[rows_t, t].isnan()
    before = ranks_from_scores(scores, t, mr, mc)
    raised = scores.clone()
    raised[rows_t, t] += rise
    after = ranks_from_scores(raised, t, mr, mc)
    assert (after[finite] <= before[finite]).all()
    # above every other score, only the unmasked NaN competitors stay ahead of the target
    raised[rows_t, t] = 100.0
    nan_ahead = [sum(1 for j, s in enumerate(rows[i]) if j not in (0, targets[i]) and math.isnan(s)
                     and j not in masked_of(pairs, i)) for i in range(len(rows))]
    assert ranks_from_scores(raised, t, mr, mc).tolist() == [1 + a for a in nan_ahead]


@FAST
@given(ranking_cases(), st.one_of(st.integers(-9, 9).map(float), st.just(NAN)))
def test_a_masked_item_never_affects_a_rank(case, new_score):
    rows, targets, pairs = case
    scores, t, mr, mc = as_tensors(rows, targets, pairs)
    before = ranks_from_scores(scores, t, mr, mc)
    changed = scores.clone()
    for r, c in pairs:
        if c != targets[r]:  # a target is never masked
            changed[r, c] = new_score
    assert ranks_from_scores(changed, t, mr, mc).tolist() == before.tolist()


def test_in_place_ranking_gives_the_same_ranks_and_masks_the_buffer():
    scores = torch.tensor([[5.0, 1.0, 3.0, 2.0, 3.0]])
    got = ranks_from_scores(scores, torch.tensor([3]), torch.tensor([0]), torch.tensor([2]), in_place=True)
    assert got.tolist() == [2]  # only item 4 is above: item 2 is masked, item 1 below, padding never counts
    assert scores[0, 0] == float("-inf") and scores[0, 2] == float("-inf")


def test_rows_counted_in_slices_on_a_wide_catalogue():
    """Over 2^18 / rows columns the count runs in several row slices; each row keeps its own target score."""
    n = (1 << 17) + 1
    scores = torch.zeros(3, n)
    scores[0, 1:11] = 1.0  # row 0: target 1 ties with nine others -> rank 10
    scores[1, 5] = 2.0  # row 1: target 5 alone on top -> rank 1
    scores[2, :] = 3.0  # row 2: target 7 ties with everything -> last
    got = ranks_from_scores(scores, torch.tensor([1, 5, 7]))
    assert got.tolist() == [10, 1, n - 1] and got.dtype == torch.int64


@FAST
@given(st.lists(st.integers(0, 30), max_size=40), st.lists(st.integers(1, 25), min_size=1, max_size=3, unique=True))
def test_metrics_equal_their_plain_definition(ranks, ks):
    got = metrics_from_ranks(np.array(ranks, dtype=np.int64), ks)
    want = plain_metrics(ranks, ks)
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key


@FAST
@given(st.lists(st.integers(0, 30), min_size=1, max_size=40), st.integers(1, 25))
def test_per_user_metrics_equal_their_plain_definition(ranks, k):
    hr, ndcg = per_user_metric(np.array(ranks), f"hr@{k}"), per_user_metric(np.array(ranks), f"ndcg@{k}")
    for r, h, g in zip(ranks, hr, ndcg):
        if r == 0:
            assert math.isnan(h) and math.isnan(g)
        else:
            assert h == (1.0 if r <= k else 0.0)
            assert g == pytest.approx(1 / math.log2(r + 1) if r <= k else 0.0, abs=1e-12)


@pytest.mark.parametrize("bad", ["hr", "mrr@10", "hr@x", "ndcg@", "@10"])
def test_per_user_metric_refuses_an_unknown_metric(bad):
    with pytest.raises(ValueError, match="hr@K or ndcg@K"):
        per_user_metric(np.array([1, 2]), bad)


def test_ranks_file_round_trip(tmp_path):
    valid, test = np.array([3, 0, 70000]), np.array([1, 2, 0])
    path = save_ranks(tmp_path, valid, test)
    assert path == tmp_path / "ranks.npz" and not list(tmp_path.glob("*.tmp*"))
    got = load_ranks(tmp_path)
    assert got["valid"].tolist() == [3, 0, 70000] and got["test"].tolist() == [1, 2, 0]
    assert got["valid"].dtype == np.int64
    with np.load(path) as z:  # the file holds two int32 per user
        assert z["valid"].dtype == np.int32 and z["test"].dtype == np.int32
    save_ranks(tmp_path, np.array([5]), None)  # a search trial: the test split was not read
    got = load_ranks(tmp_path)
    assert got["valid"].tolist() == [5] and got["test"] is None
    assert load_ranks(tmp_path / "none") is None


def test_a_ranks_file_with_pickled_objects_is_refused(tmp_path):
    np.savez(tmp_path / "ranks.npz", valid=np.array([1, None], dtype=object))
    with pytest.raises(ValueError, match="allow_pickle"):
        load_ranks(tmp_path)
