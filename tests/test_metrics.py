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


def test_nan_competitor_counts_against_the_target():
    scores = torch.tensor([[0.0, 0.5, float("nan"), 0.1, 0.9]])
    assert ranks_from_scores(scores, torch.tensor([1])).item() == 3  # item 4 is above, the NaN item 2 counts too
    assert ranks_from_scores(scores, torch.tensor([4])).item() == 2


def _reference_ranks(model, ds, split, max_len, users):
    """The plain definition, one user at a time: full score row, history masked, 1 + others >= target,
    a NaN competitor counted against the target."""
    from morec.data.batches import trim_left_padding
    from morec.evaluate import left_padded

    model.eval()
    table = model.item_table()
    offsets, items = ds.history_csr(split)
    out = []
    with torch.no_grad():
        for u in users:
            (hist,) = trim_left_padding(left_padded(offsets, items, np.array([u]), max_len))
            hist = torch.from_numpy(hist)
            vec = model.user_vectors(torch.tensor([u]), hist, model.encode_all_items()[hist])
            row = (vec @ table.T)[0].clone()
            target = int(ds.targets(split)[u])
            row[0] = float("-inf")
            seen = items[offsets[u]:offsets[u + 1]]
            row[torch.from_numpy(seen[seen != target].astype(np.int64))] = float("-inf")
            t = row[target]
            out.append(int(((row >= t) | row.isnan()).sum()))
    return np.array(out)


def test_blocked_ranking_matches_the_plain_definition(synth_prepared):
    """rank_users' reused score buffer, in-place masking and sliced counting give exactly the ranks of
    the plain definition, with many ties (items sharing the target's vector) and with blocks of several
    sizes (a last block smaller than the buffer)."""
    from morec.config import load_config
    from morec.data.dataset import PreparedDataset
    from morec.evaluate import rank_users
    from morec.model import build_model

    ds = PreparedDataset(synth_prepared)
    torch.manual_seed(0)
    model = build_model(load_config(None, ["--data=d", "--model.dim=16", "--model.max_len=10"]).model, ds).eval()
    weight = model.item_encoder.embedding.weight
    with torch.no_grad():  # ties: items 1..40 share one vector, so they tie with each other as targets
        weight[1:41] = weight[1]
    users = np.arange(120)
    want = _reference_ranks(model, ds, "test", 10, users)
    tied = np.isin(ds.targets("test")[users], np.arange(1, 41))
    assert tied.any() and (want[tied] > 1).all()
    for budget in (7 * (ds.n_items + 1), 50 * (ds.n_items + 1), 1 << 26):
        got = rank_users(model, ds, "test", 10, score_budget=budget, users=users)
        assert np.array_equal(got, want), budget


def test_masked_nan_competitor_is_not_a_candidate():
    scores = torch.tensor([[0.0, 0.5, 0.9, float("nan"), 0.1]])
    assert ranks_from_scores(scores, torch.tensor([2])).item() == 2
    # a NaN item in the user's history is masked: not a candidate, so it does not count
    assert ranks_from_scores(scores, torch.tensor([2]), torch.tensor([0]), torch.tensor([3])).item() == 1


def _brute_force_rank(scores: list[float], target: int, masked: set[int]) -> int:
    """Plain Python: 1 + the items other than padding and the masked history that score >= the target (NaN
    counts against it), the target itself never masked."""
    t = scores[target]
    if t != t:  # NaN target: last
        return len(scores) - 1
    rank = 1
    for item in range(1, len(scores)):
        if item == target or item in masked:
            continue
        s = scores[item]
        if s != s or s >= t:
            rank += 1
    return rank


@pytest.mark.parametrize("backbone", ["sasrec", "dssm"])
def test_rank_users_matches_a_brute_force_ranking(synth_prepared, backbone):
    """rank_users (blocked users, trimmed padding, CSR masking) against one user at a time ranked in plain
    Python, on valid and test, with and without history masking."""
    from morec.config import load_config
    from morec.data.dataset import PreparedDataset
    from morec.evaluate import rank_users
    from morec.model import build_model

    ds = PreparedDataset(synth_prepared)
    torch.manual_seed(0)
    cfg = load_config(None, ["--data=d", "--model.dim=8", f"--model.backbone={backbone}", "--model.max_len=6"])
    model = build_model(cfg.model, ds).eval()
    users = np.arange(0, ds.n_users, 7)[:40]
    with torch.no_grad():
        inputs = model.encode_all_items()
        table = model.backbone.item_output(inputs)
        for split in ("valid", "test"):
            for mask in (True, False):
                fast = rank_users(model, ds, split, 6, mask, user_batch=16, score_budget=5 * (ds.n_items + 1),
                                  users=users)
                for u, got in zip(users, fast):
                    hist = ds.history(int(u), split).tolist()
                    ut = torch.tensor([int(u)])
                    if model.backbone.uses_history:
                        h = torch.tensor([hist[-6:]])
                        vec = model.user_vectors(ut, h, inputs[h])[0]
                    else:
                        vec = model.user_vectors(ut, None)[0]
                    scores = [float(x) for x in (table.float() @ vec.float())]
                    target = int(ds.targets(split)[u])
                    assert got == _brute_force_rank(scores, target, set(hist) if mask else set()), (split, mask, u)
