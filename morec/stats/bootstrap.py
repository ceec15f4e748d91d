"""The two-level (hierarchical) bootstrap of a paired difference between two arms.

Each arm is a (seeds, users) matrix of per-user metrics. One draw resamples each arm's seeds with replacement
(seed-to-seed variation: another training run of the same configuration), averages a user's metric over the
drawn seeds, then resamples users with replacement, the same users for both arms (paired by user). The
difference of the arms' means over the drawn users is one draw of B - A; its percentiles give the interval and
the share of draws on the far side of 0 the two-sided p-value (the interval and p come from the same draws, so
p < alpha exactly when the printed (1 - alpha) interval excludes 0, up to the interpolation of one quantile).
"""
from __future__ import annotations

import numpy as np

from .pvalues import CHUNK, MAX_DRAWS, PValue, from_count, until_clear


class Hierarchical:
    """Draws of (B - A, mean of A) from the two-level bootstrap; add draws with :meth:`draw`."""

    def __init__(self, xa: np.ndarray, xb: np.ndarray, rng: np.random.Generator):
        self.xa, self.xb, self.rng = np.asarray(xa, np.float64), np.asarray(xb, np.float64), rng
        self.diffs: list[np.ndarray] = []
        self.base: list[np.ndarray] = []

    def _arm(self, x: np.ndarray, m: int) -> np.ndarray:
        seeds = self.rng.integers(0, x.shape[0], (m, x.shape[0]))
        return x[seeds].mean(axis=1)  # (m, users): each user's metric over the drawn seeds

    def draw(self, n: int) -> None:
        users = self.xa.shape[1]
        for start in range(0, n, CHUNK):
            m = min(CHUNK, n - start)
            ya, yb = self._arm(self.xa, m), self._arm(self.xb, m)
            pick = self.rng.integers(0, users, (m, users))
            mean_a = np.take_along_axis(ya, pick, axis=1).mean(axis=1)
            mean_b = np.take_along_axis(yb, pick, axis=1).mean(axis=1)
            self.diffs.append(mean_b - mean_a)
            self.base.append(mean_a)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.concatenate(self.diffs), np.concatenate(self.base)

    def pvalue(self) -> PValue:
        d, _ = self.arrays()
        tail = min(int(np.count_nonzero(d <= 0)), int(np.count_nonzero(d >= 0)))
        return from_count(tail, len(d), "two-level bootstrap", sides=2)

    def intervals(self, alpha: float) -> tuple[tuple[float, float], tuple[float, float] | None]:
        """Percentile (1 - alpha) intervals of B - A and of (B - A) / A; the latter None where some draw of A has
        no hit at all (the ratio is unbounded there)."""
        d, base = self.arrays()
        q = [100 * alpha / 2, 100 * (1 - alpha / 2)]
        diff_ci = tuple(float(v) for v in np.percentile(d, q))
        if np.any(base <= 0):
            return diff_ci, None
        return diff_ci, tuple(float(v) for v in np.percentile(d / base, q))

    def std(self) -> float:
        return float(np.std(self.arrays()[0], ddof=1))


def hierarchical(xa: np.ndarray, xb: np.ndarray, alpha: float, rng: np.random.Generator, thresholds=None,
                 max_draws: int = MAX_DRAWS):
    """The two-level bootstrap of mean(B) - mean(A): (diff interval, Improv. interval or None, p, draws' std),
    drawn until p is clear of ``thresholds`` (default: alpha) at Monte-Carlo 99% precision."""
    boot = Hierarchical(xa, xb, rng)
    pv = until_clear(boot.draw, boot.pvalue, thresholds or (alpha,), max_draws)
    diff_ci, improv_ci = boot.intervals(alpha)
    return diff_ci, improv_ci, pv, boot.std(), boot


def user_bootstrap_std(d: np.ndarray, rng: np.random.Generator, n: int = 4_000) -> float:
    """Standard deviation of the mean of ``d`` over users resampled with replacement."""
    if len(d) < 2:
        return 0.0
    means = [d[rng.integers(0, len(d), (min(CHUNK, n - s), len(d)))].mean(axis=1) for s in range(0, n, CHUNK)]
    return float(np.std(np.concatenate(means), ddof=1))
