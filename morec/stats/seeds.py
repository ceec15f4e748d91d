"""Mean and spread over seeds: the one place a sweep's summary, a report's ± column and its error bars get them."""
from __future__ import annotations

import numpy as np


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; 0.0 for a single value) over seeds."""
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def metrics_mean_std(records: list[dict[str, float]]) -> tuple[dict[str, float], dict[str, float]]:
    """Per metric (the keys of the first record), its mean and sample standard deviation over the records."""
    pairs = {k: mean_std([r[k] for r in records]) for k in records[0]}
    return {k: m for k, (m, _) in pairs.items()}, {k: s for k, (_, s) in pairs.items()}
