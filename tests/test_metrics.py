import math

import numpy as np
import pytest
import torch

from morec.evaluate import csr_rows, left_padded, metrics_from_ranks, ranks_from_scores



def test_rank_counts_ties_against_the_model():
    # column 0 is padding; items 1..4
    scores = torch.tensor([[9.0, 0.5, 0.9, 0.1, 0.9]])
    assert ranks_from_scores(scores, torch.tensor([2])).item() == 2  # tied with item 4: both count
    assert ranks_from_scores(scores, torch.tensor([1])).item() == 3
    assert ranks_from_scores(scores, torch.tensor([3])).item() == 4  # padding never a candidate


def test_constant_model_ranks_last():
    scores = torch.zeros(3, 11)
    ranks = ranks_from_scores(scores, torch.tensor([1, 5, 10]))
    assert ranks.tolist() == [10, 10, 10]
    assert metrics_from_ranks(ranks.numpy(), [10])["hr@10"] == 1.0  # 10 items, k=10: trivially all in
    assert metrics_from_ranks(ranks.numpy(), [5])["hr@5"] == 0.0


def test_history_masking_and_target_never_masked():
    scores = torch.tensor([[0.0, 0.5, 0.9, 0.1, 0.9],
                           [0.0, 0.5, 0.9, 0.1, 0.9]])
    rows = torch.tensor([0, 1, 1])
    cols = torch.tensor([4, 2, 4])  # user 0 saw item 4; user 1 saw items 2 and 4, and 2 is also its target
    ranks = ranks_from_scores(scores, torch.tensor([2, 2]), rows, cols)
    assert ranks.tolist() == [1, 1]
    # without masking both are tied with item 4
    assert ranks_from_scores(scores, torch.tensor([2, 2])).tolist() == [2, 2]


def test_nan_target_ranks_last():
    scores = torch.tensor([[0.0, float("nan"), 0.2, 0.1]])
    assert ranks_from_scores(scores, torch.tensor([1])).item() == 3


def test_hr_and_ndcg_on_hand_computed_ranks():
    m = metrics_from_ranks(np.array([1, 2, 11, 10]), [1, 10])
    assert m["hr@10"] == pytest.approx(3 / 4)
    assert m["ndcg@10"] == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(11)) / 4)
    assert m["hr@1"] == pytest.approx(1 / 4)
    assert m["ndcg@1"] == pytest.approx(1 / 4)


def test_csr_helpers():
    offsets = np.array([0, 3, 3, 5])
    items = np.array([7, 8, 9, 1, 2])
    row_id, from_end, vals = csr_rows(offsets, items, np.array([2, 0]))
    assert row_id.tolist() == [0, 0, 1, 1, 1]
    assert from_end.tolist() == [1, 0, 2, 1, 0]
    assert vals.tolist() == [1, 2, 7, 8, 9]
    assert left_padded(offsets, items, np.array([0, 1, 2]), 2).tolist() == [[8, 9], [0, 0], [1, 2]]
