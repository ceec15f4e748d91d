"""Paired comparison of two arms on one metric: is arm B better than arm A on the same users, and does it hold
across training seeds?

Each arm is one run or a seed group (one configuration trained with several seeds), given by every user's test
rank per seed (``ranks.npz``). Improv. is (B - A) / A, as the paper writes it. Two sources of variation:

- **users**: another sample of test users. Resampling users with the trained models fixed gives the interval
  "given these trained models" (``user_*``: BCa bootstrap over users, ``scipy.stats.bootstrap``; the p-value of
  the paired sign-flip test, exact for up to 20 differing users);
- **seeds**: another training run of the same configuration. With at least 2 seeds in each arm the primary
  interval and p come from the two-level bootstrap (:mod:`.bootstrap`: seeds resampled within each arm, then
  users, paired by user). With one seed in an arm, seed variation is unmeasured: the user-level numbers are the
  primary ones and the verdict is marked *provisional*.

The verdict word is decided on exactly what is printed: "better" / "worse" when the (family-adjusted) p is
below alpha *and* the printed 95% interval (of Improv.; of B - A where Improv. has no bounded interval)
excludes 0; "equivalent within ±m" when that interval lies inside ±margin (two one-sided tests at alpha / 2 each);
"no detectable difference" otherwise; "undecided at this precision" when the Monte-Carlo error of p still
straddles the decision threshold at the draw cap. Draws use a fixed generator: a report is reproducible.
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field

import numpy as np

from ..ranks import per_user_metric
from . import design
from .bootstrap import hierarchical, user_bootstrap_std
from .pvalues import MAX_DRAWS, PValue, exact, sign_flip

ALPHA = 0.05
MARGIN = 0.05  # equivalence margin on Improv.: ±5% of arm A's mean
N_RESAMPLES = 10_000
TWO_LEVEL = "seeds and users"
USER_LEVEL = "users only (seed variation unmeasured)"


def seed_matrix(ranks_per_seed: list[np.ndarray], metric: str) -> np.ndarray:
    """(seeds, users) per-user metric; NaN where a user has no target in the split (rank 0)."""
    if not ranks_per_seed:
        raise ValueError("an arm needs the ranks of at least one run")
    lengths = {len(r) for r in ranks_per_seed}
    if len(lengths) != 1:
        raise ValueError(f"the runs of one arm rank different numbers of users ({sorted(lengths)})")
    return np.stack([per_user_metric(r, metric) for r in ranks_per_seed])


def user_scores(ranks_per_seed: list[np.ndarray], metric: str) -> np.ndarray:
    """Each user's ``metric`` averaged over seeds: (n_users,); NaN for a user no seed scored (rank 0)."""
    per_seed = seed_matrix(ranks_per_seed, metric)
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
    improv_ci: tuple[float, float] | None = None  # primary interval (two-level with >= 2 seeds per arm)
    diff: float = 0.0  # B - A
    diff_ci: tuple[float, float] = (0.0, 0.0)
    p: float = 1.0  # raw primary p
    p_mc: tuple[float, float] = (1.0, 1.0)  # Monte-Carlo 99% interval of p ((p, p) when exact)
    p_draws: int = 0  # 0: exact
    p_method: str = "exact"
    p_adj: float | None = None  # family-adjusted p (Holm); None: one test
    family: int = 1  # tests in the family the adjustment ran over
    correction: str = "none (one test)"
    alpha: float = ALPHA
    margin: float = MARGIN
    level: str = USER_LEVEL
    user_diff_ci: tuple[float, float] = (0.0, 0.0)  # users resampled, the trained models fixed
    user_improv_ci: tuple[float, float] | None = None
    user_p: float = 1.0
    mde: float | None = None  # minimum detectable |Improv.| at these seeds and users (80% power)
    seeds_to_detect: int | None = None  # per arm, for a difference the size of the margin
    seeds_to_rule_out: int | None = None  # per arm, for an interval inside ±margin when the arms are equal
    undecided: bool = False  # p's Monte-Carlo interval straddles the threshold at the draw cap

    @property
    def provisional(self) -> bool:
        return self.level != TWO_LEVEL

    @property
    def decision_p(self) -> float:
        return self.p if self.p_adj is None else self.p_adj

    @property
    def interval(self) -> tuple[tuple[float, float], bool]:
        """The printed interval that decides, and whether it is relative (Improv.) or absolute (B - A)."""
        return (self.improv_ci, True) if self.improv_ci is not None else (self.diff_ci, False)

    @property
    def significant(self) -> bool:
        (low, high), _ = self.interval
        return not self.undecided and self.decision_p < self.alpha and (low > 0 or high < 0)

    @property
    def equivalent(self) -> bool:
        (low, high), relative = self.interval
        return relative and self.margin > 0 and -self.margin < low and high < self.margin

    @property
    def verdict(self) -> str:
        if self.significant:
            return "better" if self.diff > 0 else "worse"
        if self.equivalent:
            return f"equivalent within ±{100 * self.margin:g}%"
        if self.undecided:
            return "undecided at this precision"
        return "no detectable difference"

    def to_dict(self) -> dict:
        return {**asdict(self), "significant": self.significant, "equivalent": self.equivalent,
                "provisional": self.provisional, "verdict": self.verdict}


def _seed_means(x: np.ndarray) -> list[float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return [float(v) for v in np.nanmean(x, axis=1)]


def _user_level(out: Paired, a: np.ndarray, b: np.ndarray, rng, thresholds, max_draws: int,
                n_resamples: int = N_RESAMPLES) -> PValue:
    """Users resampled, models fixed: BCa intervals of B - A and Improv., and the sign-flip p."""
    from scipy import stats

    d = b - a
    pv = sign_flip(a, b, rng, thresholds, max_draws)
    if len(d) < 2 or np.all(d == d[0]):  # nothing to resample: a zero-width interval at the difference
        out.user_diff_ci = (out.diff, out.diff)
        out.user_improv_ci = (out.improv, out.improv) if out.improv is not None else None
        return pv

    def mean_diff(x, y, axis=-1):
        return np.mean(y, axis=axis) - np.mean(x, axis=axis)

    def rel_diff(x, y, axis=-1):
        mx = np.mean(x, axis=axis)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (np.mean(y, axis=axis) - mx) / mx

    boot = dict(paired=True, vectorized=True, n_resamples=n_resamples, confidence_level=1 - out.alpha, method="BCa",
                random_state=rng)
    ci = stats.bootstrap((a, b), mean_diff, **boot).confidence_interval
    out.user_diff_ci = (float(ci.low), float(ci.high))
    if out.improv is not None:
        # with a few hits some resamples have none in A: the ratio is unbounded there and has no interval
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ci = stats.bootstrap((a, b), rel_diff, **boot).confidence_interval
        bounds = (float(ci.low), float(ci.high))
        out.user_improv_ci = bounds if np.all(np.isfinite(bounds)) else None
    return pv


def _set_p(out: Paired, pv: PValue) -> None:
    out.p, out.p_mc, out.p_draws, out.p_method = pv.p, (pv.low, pv.high), pv.draws, pv.method
    out.undecided = pv.straddles(out.alpha)


def _design(out: Paired, se_total: float, se_user: float) -> None:
    if out.mean_a <= 0:
        return
    out.mde = design.mde(se_total, out.alpha) / out.mean_a
    if out.provisional:
        return  # the seed part is unmeasured: no seed count can be planned from it
    seeds = 2 / (1 / out.seeds_a + 1 / out.seeds_b)
    effect = out.margin * out.mean_a
    out.seeds_to_detect = design.seeds_needed(effect, se_total, se_user, seeds, out.alpha)
    out.seeds_to_rule_out = design.seeds_needed(effect, se_total, se_user, seeds, out.alpha, rule_out=True)


def paired(ranks_a: list[np.ndarray], ranks_b: list[np.ndarray], metric: str, alpha: float = ALPHA,
           n_resamples: int = N_RESAMPLES, seed: int = 0, margin: float = MARGIN, thresholds=None,
           max_draws: int = MAX_DRAWS) -> Paired:
    """Compare arm B with arm A on ``metric`` (hr@K / ndcg@K) from their per-seed test ranks (same users, same
    order). ``thresholds``: the p-values a decision compares with (default alpha; a family adds alpha / k).
    See the module docstring for the statistics."""
    xa, xb = seed_matrix(ranks_a, metric), seed_matrix(ranks_b, metric)
    if xa.shape[1] != xb.shape[1]:
        raise ValueError(f"the arms rank different numbers of users ({xa.shape[1]} vs {xb.shape[1]}); not the same dataset")
    both = ~(np.isnan(xa).any(axis=0) | np.isnan(xb).any(axis=0))
    xa, xb = xa[:, both], xb[:, both]
    a, b = xa.mean(axis=0), xb.mean(axis=0)
    out = Paired(metric, int(len(a)), len(ranks_a), len(ranks_b), float(a.mean()) if len(a) else 0.0,
                 float(b.mean()) if len(a) else 0.0, _seed_means(xa), _seed_means(xb), alpha=alpha, margin=margin)
    out.diff = out.mean_b - out.mean_a
    out.improv = out.diff / out.mean_a if out.mean_a > 0 else None
    if len(a) == 0:
        _set_p(out, exact(1.0, "no users"))
        return out
    rng = np.random.default_rng(seed)
    thresholds = tuple(thresholds or (alpha,))
    pv = _user_level(out, a, b, rng, thresholds, max_draws, n_resamples)
    out.user_p = pv.p
    se_user = user_bootstrap_std(b - a, rng)
    if min(len(ranks_a), len(ranks_b)) >= 2:
        out.level = TWO_LEVEL
        out.diff_ci, out.improv_ci, pv, se_total, _ = hierarchical(xa, xb, alpha, rng, thresholds, max_draws)
    else:
        out.diff_ci, out.improv_ci, se_total = out.user_diff_ci, out.user_improv_ci, se_user
    _set_p(out, pv)
    _design(out, se_total, se_user)
    return out
