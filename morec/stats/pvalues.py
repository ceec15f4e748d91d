"""p-values whose decision does not hang on Monte-Carlo noise.

- :func:`sign_flip`: the paired sign-flip (permutation) test of a mean difference over users. Exact (every sign
  pattern enumerated; ``scipy.stats.permutation_test`` does the same but takes seconds at 2 ** 20 patterns)
  when at most :data:`EXACT_MAX` users differ; otherwise Monte-Carlo draws.
- Every Monte-Carlo p-value carries its 99% Monte-Carlo interval (Clopper-Pearson on the tail count). Draws are
  added (doubling, up to :data:`MAX_DRAWS`) until that interval lies on one side of every decision threshold;
  a p-value still straddling one at the cap is *undecided at this precision*.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

MC_CONFIDENCE = 0.99
FIRST_DRAWS = 10_000
MAX_DRAWS = 320_000
EXACT_MAX = 20  # 2**20 sign patterns: exact enumeration stays under a second
CHUNK = 2_000


@dataclass
class PValue:
    p: float
    low: float  # Monte-Carlo 99% interval of p; (p, p) when exact
    high: float
    draws: int  # 0: exact
    method: str

    @property
    def exact(self) -> bool:
        return self.draws == 0

    def straddles(self, threshold: float) -> bool:
        """True when Monte-Carlo error alone could put p on either side of ``threshold``."""
        return self.low < threshold <= self.high if not self.exact else False


def exact(p: float, method: str) -> PValue:
    return PValue(float(p), float(p), float(p), 0, method)


def from_count(k: int, draws: int, method: str, sides: int = 1) -> PValue:
    """p = sides x (count + 1) / (draws + 1) from ``k`` of ``draws`` draws at least as extreme as observed (the
    +1 keeps a Monte-Carlo p valid), with its Monte-Carlo 99% interval (Clopper-Pearson on the count)."""
    from scipy.stats import binomtest

    ci = binomtest(int(k), int(draws)).proportion_ci(confidence_level=MC_CONFIDENCE, method="exact")
    p = min(1.0, sides * (k + 1) / (draws + 1))
    return PValue(p, min(1.0, sides * ci.low), min(1.0, sides * ci.high), int(draws), method)


def until_clear(draw: Callable[[int], None], current: Callable[[], PValue], thresholds, max_draws: int = MAX_DRAWS,
                first: int = FIRST_DRAWS) -> PValue:
    """Call ``draw(n)`` to add n draws, starting with ``first`` and doubling, until the p-value's Monte-Carlo
    interval (``current()``) straddles none of ``thresholds`` or ``max_draws`` are spent."""
    done = 0
    n = first
    while True:
        draw(n)
        done += n
        pv = current()
        if not any(pv.straddles(t) for t in thresholds) or done >= max_draws:
            return pv
        n = min(done, max_draws - done)


class SignFlip:
    """Monte-Carlo sign-flip draws of the mean of ``d`` (user differences), counted against the observed mean."""

    def __init__(self, d: np.ndarray, rng: np.random.Generator):
        self.d, self.rng = d, rng
        self.obs = abs(float(d.mean()))
        self.draws = self.tail = 0

    def draw(self, n: int) -> None:
        tol = 1e-12 * max(1.0, self.obs)
        for start in range(0, n, CHUNK):
            m = min(CHUNK, n - start)
            signs = self.rng.integers(0, 2, (m, len(self.d)), dtype=np.int8) * 2 - 1
            means = np.abs(signs @ self.d) / len(self.d)
            self.tail += int(np.count_nonzero(means >= self.obs - tol))
        self.draws += n

    def current(self) -> PValue:
        return from_count(self.tail, self.draws, "sign-flip (Monte-Carlo)")  # |mean| counts both sides


def _signed_sums(d: np.ndarray) -> np.ndarray:
    """The sum of ``d`` under every sign pattern: (2 ** len(d),)."""
    bits = (np.arange(2 ** len(d))[:, None] >> np.arange(len(d))) & 1
    return (bits * 2 - 1) @ d


def exact_sign_flip(d: np.ndarray) -> float:
    """Share of the 2 ** n sign patterns whose |sum| reaches the observed one: every pattern enumerated, the two
    halves of ``d`` separately and then combined (2 ** 20 sums in well under a second)."""
    half = len(d) // 2
    sums = _signed_sums(d[:half])[:, None] + _signed_sums(d[half:])[None, :]
    obs = abs(float(d.sum()))
    return float(np.count_nonzero(np.abs(sums) >= obs - 1e-9 * max(1.0, obs)) / sums.size)


def sign_flip(a: np.ndarray, b: np.ndarray, rng: np.random.Generator, thresholds=(0.05,),
              max_draws: int = MAX_DRAWS) -> PValue:
    """Two-sided paired sign-flip test of mean(b - a) = 0 over the users both arms scored (NaN in either: left
    out): exact when at most :data:`EXACT_MAX` users differ, else Monte-Carlo draws until clear of ``thresholds``
    (see the module docstring)."""
    d = np.asarray(b, np.float64) - np.asarray(a, np.float64)
    # a user whose arms agree adds nothing (flipping its sign changes no mean); a user one arm did not score (NaN,
    # as user_scores gives) is no paired observation, and its NaN would make every pattern fall short (p = 0)
    d = d[(d != 0) & ~np.isnan(d)]
    if np.isinf(d).any():
        raise ValueError("sign_flip: a user's difference is infinite; the per-user values must be finite")
    if len(d) == 0:
        return exact(1.0, "sign-flip (exact)")
    if len(d) <= EXACT_MAX:
        return exact(exact_sign_flip(d), "sign-flip (exact)")
    flips = SignFlip(d, rng)
    return until_clear(flips.draw, flips.current, thresholds, max_draws)


def format_p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def format_pvalue(pv: PValue, thresholds=(0.05,)) -> str:
    """'0.047' or, when Monte-Carlo error matters near a threshold, '0.047 ± 0.002 (MC)'."""
    text = format_p(pv.p)
    near = any(abs(pv.p - t) < 5 * max(pv.high - pv.low, 1e-9) for t in thresholds)
    if not pv.exact and near and pv.p >= 0.001:
        text += f" ± {(pv.high - pv.low) / 2:.3f} (MC)"
    return text
