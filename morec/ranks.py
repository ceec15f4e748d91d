"""Per-user outcomes of a run: every user's valid and test rank, kept in the run directory (``ranks.npz``).

With them any statistic over users (confidence intervals, paired tests between runs) is computed later
without the weights; the file is small (two int32 per user) and is committed with the run's summary.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

RANKS_FILE = "ranks.npz"


def save_ranks(run_dir: str | Path, valid: np.ndarray, test: np.ndarray | None) -> Path:
    """Write the chosen model's valid and test ranks (1-based, user index order; 0 = the user has no target in
    that split) atomically. ``test`` None: the test split was not read (a search trial)."""
    run_dir = Path(run_dir)
    tmp = run_dir / (RANKS_FILE + ".tmp.npz")
    arrays = {"valid": np.asarray(valid, dtype=np.int32)}
    if test is not None:
        arrays["test"] = np.asarray(test, dtype=np.int32)
    np.savez_compressed(tmp, **arrays)
    tmp.replace(run_dir / RANKS_FILE)
    return run_dir / RANKS_FILE


def load_ranks(run_dir: str | Path) -> dict[str, np.ndarray] | None:
    """{"valid": ranks, "test": ranks or None} of a finished run, or None where the run kept none."""
    f = Path(run_dir) / RANKS_FILE
    if not f.exists():
        return None
    with np.load(f, allow_pickle=False) as z:  # plain int arrays: nothing in a run directory is unpickled
        return {k: z[k].astype(np.int64) if k in z.files else None for k in ("valid", "test")}


def per_user_metric(ranks: np.ndarray, metric: str) -> np.ndarray:
    """Each user's hr@k (0 / 1) or ndcg@k (1 / log2(rank + 1) within the top k, else 0) from 1-based ranks;
    NaN for rank 0 (no target in the split). The mean of the others is :func:`morec.evaluate.metrics_from_ranks`'s."""
    name, _, k = metric.partition("@")
    if name not in ("hr", "ndcg") or not k.isdigit():
        raise ValueError(f"metric must be hr@K or ndcg@K, not {metric!r}")
    ranks = np.asarray(ranks, dtype=np.float64)
    hit = ranks <= int(k)
    # NDCG only where there is a hit: a rank-0 user (no target) would divide by log2(1) = 0
    values = hit.astype(np.float64) if name == "hr" else np.divide(1.0, np.log2(ranks + 1.0), where=hit & (ranks > 0),
                                                                    out=np.zeros_like(ranks))
    return np.where(ranks > 0, values, np.nan)
