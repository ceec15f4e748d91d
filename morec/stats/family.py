"""Family-wise error control: Holm's step-down correction over every test a report, verdicts file or compare
makes (``statsmodels.stats.multitest.multipletests``), with Monte-Carlo error carried through.

Holm's adjusted p-values rise with each raw p-value, so a decision is safe from Monte-Carlo noise when it is the
same with every Monte-Carlo p at the low end of its 99% interval and with every one at the high end. Tests for
which it is not get more draws (until clear of every Holm threshold alpha / k); those still not safe at the
draw cap are "undecided at this precision".
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .paired import Paired

CORRECTION = "Holm"


def holm(pvalues) -> np.ndarray:
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(pvalues, dtype=np.float64)
    return multipletests(p, method="holm")[1] if len(p) else p


def adjust(tests: list[Paired], recompute: list[Callable[[tuple], Paired]] | None = None) -> list[Paired]:
    """Holm-adjust ``tests`` in place (p_adj, family, correction, undecided); ``recompute[i](thresholds)`` redraws
    test i until its p is clear of ``thresholds``. Returns the tests (recomputed ones replaced)."""
    tests = list(tests)
    m = len(tests)
    if m == 0:
        return tests
    alpha = tests[0].alpha
    thresholds = tuple(alpha / k for k in range(1, m + 1))
    if recompute is not None and m > 1:
        for i, t in enumerate(tests):
            if t.p_draws and any(t.p_mc[0] < th <= t.p_mc[1] for th in thresholds):
                tests[i] = recompute[i](thresholds)
    adjusted = holm([t.p for t in tests])
    low, high = holm([t.p_mc[0] for t in tests]), holm([t.p_mc[1] for t in tests])
    for t, adj, lo, hi in zip(tests, adjusted, low, high):
        t.p_adj = float(adj) if m > 1 else None
        t.family = m
        t.correction = f"{CORRECTION} over {m} tests" if m > 1 else "none (one test)"
        t.undecided = bool((lo < alpha) != (hi < alpha))
    return tests
