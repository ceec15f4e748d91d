"""Full-ranking evaluation: every item is a candidate, the user's history is masked (by default), ties
count against the model: rank = 1 + number of other candidates scoring >= the target.

Item vectors are computed once per evaluation; users are scored in blocks sized so that a block's
score matrix stays under ``score_budget`` floats, whatever the catalogue size. The block's score matrix
is one buffer reused for every block (a fresh 256 MiB allocation per block cost more in page faults than
the matrix multiplication itself on a large catalogue), masked in place, and counted in slices of rows
that fit in cache, so each score is written once by the multiplication and read once by the count.
"""
from __future__ import annotations

import numpy as np
import torch

from .config import SUBSETS
from .data.batches import trim_left_padding
from .data.dataset import PreparedDataset
from .model import Recommender


def metrics_from_ranks(ranks: np.ndarray, ks: list[int]) -> dict[str, float]:
    """HR@k and NDCG@k (one relevant item per user) from 1-based ranks; rank 0 marks a user without a target
    in the split (time split: nothing in its period), who is left out."""
    ranks = np.asarray(ranks, dtype=np.float64)
    ranks = ranks[ranks > 0]
    out: dict[str, float] = {}
    for k in ks:
        hit = ranks <= k
        out[f"hr@{k}"] = float(hit.mean()) if len(ranks) else 0.0
        out[f"ndcg@{k}"] = float(np.where(hit, 1.0 / np.log2(ranks + 1.0), 0.0).mean()) if len(ranks) else 0.0
    return out


def ranks_from_scores(scores: torch.Tensor, targets: torch.Tensor, mask_rows: torch.Tensor | None = None,
                      mask_cols: torch.Tensor | None = None, in_place: bool = False) -> torch.Tensor:
    """Ranks of ``targets`` in ``scores`` (B, n_items + 1; column 0 = padding, never a candidate).

    ``mask_rows``/``mask_cols`` list (row, item) pairs that are not candidates (the user's history);
    a target is never masked, even if it appears there. Ties count against the model, and so does a
    competitor whose score is NaN. ``in_place``: ``scores`` (contiguous) may be overwritten (no copy).
    """
    if not in_place:
        scores = scores.clone()
    scores[:, 0] = float("-inf")
    if mask_rows is not None and len(mask_rows):
        keep = mask_cols != targets[mask_rows]
        scores[mask_rows[keep], mask_cols[keep]] = float("-inf")
    target_scores = scores.gather(1, targets[:, None])  # (B, 1)
    # rank = 1 + others >= target = columns - columns below the target (the target is not below itself;
    # a NaN competitor is never below, so it counts against the target). Slices of rows keep the boolean
    # temporary in cache instead of materialising a (B, n_items + 1) one.
    n = scores.shape[1]
    below = torch.empty(len(scores), dtype=torch.int64, device=scores.device)
    step = max(1, (1 << 18) // n)
    for r in range(0, len(scores), step):
        torch.sum(scores[r:r + step] < target_scores[r:r + step], 1, out=below[r:r + step])
    ranks = n - below
    # A NaN target score would compare false with everything: rank it last, so divergence is never rewarded.
    return torch.where(target_scores[:, 0].isnan(), n - 1, ranks)


def csr_rows(offsets: np.ndarray, items: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flatten CSR rows: (row number within ``rows``, position from the row's end (0 = last), item)."""
    counts = offsets[rows + 1] - offsets[rows]
    row_id = np.repeat(np.arange(len(rows)), counts)
    local = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    from_end = np.repeat(counts, counts) - 1 - local
    return row_id, from_end, items[np.repeat(offsets[rows], counts) + local]


def left_padded(offsets: np.ndarray, items: np.ndarray, rows: np.ndarray, max_len: int) -> np.ndarray:
    """The latest ``max_len`` items of each row, left-padded with 0. (len(rows), max_len)"""
    row_id, from_end, values = csr_rows(offsets, items, rows)
    keep = from_end < max_len
    out = np.zeros((len(rows), max_len), dtype=np.int64)
    out[row_id[keep], max_len - 1 - from_end[keep]] = values[keep]
    return out


@torch.no_grad()
def rank_users(model: Recommender, dataset: PreparedDataset, split: str, max_len: int, mask_history: bool = True,
               user_batch: int = 1024, score_budget: int = 1 << 26, users: np.ndarray | None = None) -> np.ndarray:
    """1-based rank of each user's ``split`` target among all items. Returns (len(users),) int64; 0 for a user
    without a target in ``split`` (time split), who is not scored."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    inputs = model.encode_all_items()  # (n_items + 1, d): every item encoded once per evaluation
    table = model.backbone.item_output(inputs)
    users = np.arange(dataset.n_users) if users is None else np.asarray(users)
    targets = dataset.targets(split)
    offsets, hist_items = dataset.history_csr(split)
    block = max(1, min(user_batch, score_budget // (dataset.n_items + 1)))
    all_ranks = np.zeros(len(users), dtype=np.int64)
    scored = np.flatnonzero(targets[users] > 0)
    users = users[scored]
    ranks = np.empty(len(users), dtype=np.int64)
    table_t = table.float().T
    buffer = torch.empty(min(block, len(users)), dataset.n_items + 1, device=device)  # reused by every block
    for start in range(0, len(users), block):
        chunk = users[start:start + block]
        u = torch.from_numpy(chunk).to(device)
        if model.backbone.uses_history:
            (hist,) = trim_left_padding(left_padded(offsets, hist_items, chunk, max_len))
            hist = torch.from_numpy(hist).to(device)
            vecs = model.user_vectors(u, hist, inputs[hist])
        else:
            vecs = model.user_vectors(u, None)
        with torch.autocast(device.type, enabled=False):  # fp32 scores, also under mixed precision (out= needs it)
            scores = torch.matmul(vecs.float(), table_t, out=buffer[:len(chunk)])  # (b, n_items + 1)
        rows = cols = None
        if mask_history:
            row_id, _, items = csr_rows(offsets, hist_items, chunk)
            rows, cols = torch.from_numpy(row_id).to(device), torch.from_numpy(items.astype(np.int64)).to(device)
        t = torch.from_numpy(targets[chunk]).to(device)
        ranks[start:start + len(chunk)] = ranks_from_scores(scores, t, rows, cols, in_place=True).cpu().numpy()
    model.train(was_training)
    all_ranks[scored] = ranks
    return all_ranks


def evaluate(model: Recommender, dataset: PreparedDataset, split: str, ks: list[int] = (10,), max_len: int = 50,
             mask_history: bool = True, user_batch: int = 1024, score_budget: int = 1 << 26) -> dict[str, float]:
    ranks = rank_users(model, dataset, split, max_len, mask_history, user_batch, score_budget)
    return metrics_from_ranks(ranks, list(ks))


def most_popular_ranks(dataset: PreparedDataset, split: str, mask_history: bool = True,
                       score_budget: int = 1 << 26) -> np.ndarray:
    """Ranks under the most-popular baseline (training counts), same protocol and blocking as the models."""
    counts = torch.from_numpy(dataset.train_item_counts.astype(np.float32))
    offsets, items = dataset.history_csr(split)
    targets = dataset.targets(split)
    block = max(1, score_budget // (dataset.n_items + 1))
    ranks = np.empty(dataset.n_users, dtype=np.int64)
    for start in range(0, dataset.n_users, block):
        chunk = np.arange(start, min(start + block, dataset.n_users))
        rows = cols = None
        if mask_history:
            row_id, _, hist = csr_rows(offsets, items, chunk)
            rows, cols = torch.from_numpy(row_id), torch.from_numpy(hist.astype(np.int64))
        scores = counts[None, :].expand(len(chunk), -1)
        ranks[chunk] = ranks_from_scores(scores, torch.from_numpy(targets[chunk]), rows, cols).numpy()
    ranks[targets == 0] = 0  # not scored on this split (time split)
    return ranks


# --- settings: subsets of test users -----------------------------------------------------------

def subset_users(dataset: PreparedDataset, split: str, name: str, cold_threshold: int = 10) -> np.ndarray:
    """Indices of the users of ``split`` in subset ``name``, by their target's training interactions:

    - ``all``: every user;
    - ``new``: the target has none (an item held out of training: prepare.new_items, or seen only as
      a valid / test target);
    - ``cold``: 1 .. cold_threshold - 1 (the paper's Table 9: fewer than 10);
    - ``warm``: cold_threshold or more.
    """
    if name not in SUBSETS:
        raise ValueError(f"unknown subset {name!r}; known: {', '.join(SUBSETS)}")
    targets = dataset.targets(split)
    if name == "all":
        return np.flatnonzero(targets > 0)  # every user with a target (all of them under leave-one-out)
    count = dataset.train_item_counts[targets]
    keep = {"new": count == 0, "cold": (count > 0) & (count < cold_threshold), "warm": count >= cold_threshold}[name]
    return np.flatnonzero(keep & (targets > 0))


def subset_metrics(ranks: np.ndarray, dataset: PreparedDataset, split: str, ks: list[int],
                   subsets: list[str] = ("all", "cold", "new"), cold_threshold: int = 10) -> dict[str, dict]:
    """Metrics per subset from every user's ranks (``ranks[u]`` for user u, e.g. from rank_users or
    most_popular_ranks): {name: {"users": n, "hr@10": ..., "ndcg@10": ...}}. An empty subset has users 0
    and metrics 0.0."""
    ranks = np.asarray(ranks)
    if len(ranks) != dataset.n_users:
        raise ValueError(f"need one rank per user ({dataset.n_users}), got {len(ranks)}")
    out = {}
    for name in subsets:
        users = subset_users(dataset, split, name, cold_threshold)
        out[name] = {"users": int(len(users)), **metrics_from_ranks(ranks[users], list(ks))}
    return out


def evaluate_subsets(model: Recommender, dataset: PreparedDataset, split: str, ks: list[int] = (10,), max_len: int = 50,
                     mask_history: bool = True, subsets: list[str] = ("all", "cold", "new"), cold_threshold: int = 10,
                     user_batch: int = 1024, score_budget: int = 1 << 26) -> dict[str, dict]:
    """The regular, cold and new settings (any of SUBSETS) from one trained model and one ranking of
    every user: {name: {"users": n, metric: value}}."""
    ranks = rank_users(model, dataset, split, max_len, mask_history, user_batch, score_budget)
    return subset_metrics(ranks, dataset, split, ks, subsets, cold_threshold)
