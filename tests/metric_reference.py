"""HR@k and NDCG@k by their plain definition, in plain Python: the one reference the tests compare morec's
metrics with (one relevant item per user; rank 0 marks a user without a target, who is left out)."""
from __future__ import annotations

import math


def plain_metrics(ranks, ks) -> dict[str, float]:
    """{"hr@k": ..., "ndcg@k": ...} for each k of ``ks`` (one int or a list) over the users with a rank."""
    scored = [int(r) for r in ranks if r > 0]
    out = {}
    for k in [ks] if isinstance(ks, int) else ks:
        out[f"hr@{k}"] = sum(r <= k for r in scored) / len(scored) if scored else 0.0
        out[f"ndcg@{k}"] = sum(1 / math.log2(r + 1) for r in scored if r <= k) / len(scored) if scored else 0.0
    return out
