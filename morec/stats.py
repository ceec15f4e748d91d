"""Paired statistics over users: is arm B better than arm A on the same users, beyond noise?

Each arm is one run or a seed group (the same configuration trained with several seeds), given by every
user's test rank per seed (``ranks.npz`` of each run). A user's score in an arm is its per-user metric
(HR@K: 0 / 1; NDCG@K) averaged over the arm's seeds, so every seed counts and users stay paired.

- **Improv.**: relative difference of the means, (B - A) / A, as the paper writes it;
- **95% confidence interval** of Improv. (and of the absolute difference) from a paired bootstrap over users
  (``scipy.stats.bootstrap``, BCa; users resampled, both arms' scores of a user together);
- **p**: paired permutation test of the mean difference (``scipy.stats.permutation_test`` with
  ``permutation_type="samples"``: each user's two scores swapped at random), two-sided;
- **verdict**: "better" / "worse" only when p < alpha and the interval excludes 0, otherwise
  "no detectable difference".

The bootstrap and the permutations use a fixed generator, so a report is reproducible to the digit.
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field

import numpy as np

from .ranks import per_user_metric

ALPHA = 0.05
N_RESAMPLES = 10_000


def user_scores(ranks_per_seed: list[np.ndarray], metric: str) -> np.ndarray:
    """Each user's ``metric`` averaged over seeds: (n_users,); NaN for a user no seed scored (rank 0)."""
    if not ranks_per_seed:
        raise ValueError("an arm needs the ranks of at least one run")
    lengths = {len(r) for r in ranks_per_seed}
    if len(lengths) != 1:
        raise ValueError(f"the runs of one arm rank different numbers of users ({sorted(lengths)})")
    per_seed = np.stack([per_user_metric(r, metric) for r in ranks_per_seed])  # (seeds, users)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "mean of empty slice": a user no seed scored is NaN
        return np.nanmean(per_seed, axis=0)


@dataclass
class Paired:
    """A paired comparison of arm B against arm A on one metric (values as fractions, not percent)."""

    metric: str
    users: int  # users scored by both arms
    seeds_a: int
    seeds_b: int
    mean_a: float
    mean_b: float
    seed_means_a: list[float] = field(default_factory=list)
    seed_means_b: list[float] = field(default_factory=list)
    improv: float | None = None  # (B - A) / A
    improv_ci: tuple[float, float] | None = None
    diff: float = 0.0  # B - A
    diff_ci: tuple[float, float] = (0.0, 0.0)
    p: float = 1.0
    alpha: float = ALPHA

    @property
    def significant(self) -> bool:
        low, high = self.diff_ci
        return self.p < self.alpha and (low > 0 or high < 0)

    @property
    def verdict(self) -> str:
        """"better" / "worse" (B against A) when significant, else "no detectable difference"."""
        if not self.significant:
            return "no detectable difference"
        return "better" if self.diff > 0 else "worse"

    def to_dict(self) -> dict:
        return {**asdict(self), "significant": self.significant, "verdict": self.verdict}


def _seed_means(ranks_per_seed: list[np.ndarray], metric: str) -> list[float]:
    return [float(np.nanmean(per_user_metric(r, metric))) for r in ranks_per_seed]


def paired(ranks_a: list[np.ndarray], ranks_b: list[np.ndarray], metric: str, alpha: float = ALPHA,
           n_resamples: int = N_RESAMPLES, seed: int = 0) -> Paired:
    """Compare arm B with arm A on ``metric`` (hr@K / ndcg@K) from their per-seed test ranks (same users, same
    order). See the module docstring for the statistics."""
    from scipy import stats

    a, b = user_scores(ranks_a, metric), user_scores(ranks_b, metric)
    if len(a) != len(b):
        raise ValueError(f"the arms rank different numbers of users ({len(a)} vs {len(b)}); not the same dataset")
    both = ~(np.isnan(a) | np.isnan(b))
    a, b = a[both], b[both]
    out = Paired(metric, int(len(a)), len(ranks_a), len(ranks_b), float(a.mean()) if len(a) else 0.0,
                 float(b.mean()) if len(a) else 0.0, _seed_means(ranks_a, metric), _seed_means(ranks_b, metric),
                 alpha=alpha)
    out.diff = out.mean_b - out.mean_a
    if out.mean_a > 0:
        out.improv = out.diff / out.mean_a
    d = b - a
    if len(d) < 2 or np.all(d == d[0]):  # no variation: nothing to resample (identical arms, or one user)
        out.diff_ci = (out.diff, out.diff)
        out.improv_ci = (out.improv, out.improv) if out.improv is not None else None
        out.p = 1.0 if np.all(d == 0) else 0.0
        return out
    rng = np.random.default_rng(seed)

    def mean_diff(x, y, axis=-1):
        return np.mean(y, axis=axis) - np.mean(x, axis=axis)

    def rel_diff(x, y, axis=-1):
        mx = np.mean(x, axis=axis)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (np.mean(y, axis=axis) - mx) / mx

    ci = stats.bootstrap((a, b), mean_diff, paired=True, vectorized=True, n_resamples=n_resamples,
                         confidence_level=1 - alpha, method="BCa", random_state=rng).confidence_interval
    out.diff_ci = (float(ci.low), float(ci.high))
    if out.improv is not None:
        # With a few hits (a cold or new-item subset) some resamples have no hit in A: the ratio is infinite there
        # and the interval unbounded or undefined; then Improv. has no interval and the verdict rests on diff_ci.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ci = stats.bootstrap((a, b), rel_diff, paired=True, vectorized=True, n_resamples=n_resamples,
                                 confidence_level=1 - alpha, method="BCa", random_state=rng).confidence_interval
        bounds = (float(ci.low), float(ci.high))
        out.improv_ci = bounds if np.all(np.isfinite(bounds)) else None
    test = stats.permutation_test((a, b), mean_diff, permutation_type="samples", vectorized=True,
                                  n_resamples=n_resamples, alternative="two-sided", random_state=rng)
    out.p = float(test.pvalue)
    return out


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value) over seeds."""
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def format_p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def format_improv(c: Paired) -> str:
    """'+8.61% [+1.20%, +16.03%]': Improv. with its confidence interval, in percent."""
    if c.improv is None:
        return ""
    text = f"{100 * c.improv:+.2f}%"
    if c.improv_ci is not None:
        text += f" [{100 * c.improv_ci[0]:+.2f}%, {100 * c.improv_ci[1]:+.2f}%]"
    else:  # see paired(): too few hits in A for a bounded ratio
        text += " [unbounded: few hits]"
    return text
