"""What the current seeds and users can detect, and how many seeds a margin would need (normal approximation).

The variance of the difference of two arms' means is split into a user part (``se_user``: users resampled,
the trained models fixed) and a seed part (what the two-level bootstrap adds on top). The seed part shrinks
as 1 / seeds per arm; the user part does not (the test users are all the users there are). So:

- minimum detectable effect (80% power, two-sided alpha): (z(1 - alpha/2) + z(0.8)) x se;
- seeds per arm to detect a difference the size of the margin: the smallest S with that bound <= margin;
- seeds per arm to rule the margin out when the arms are in truth equal (both one-sided tests at 80% power):
  (z(1 - alpha/2) + z(0.9)) x se <= margin.

None where no number of seeds gets there (the user part alone is too wide) or the seed part is unmeasured
(one seed in an arm).
"""
from __future__ import annotations

import math

POWER = 0.8


def _z(q: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(q))


def mde(se: float, alpha: float) -> float:
    """Smallest absolute difference detected with 80% power at two-sided ``alpha`` given the standard error."""
    return (_z(1 - alpha / 2) + _z(POWER)) * se


def seeds_needed(effect: float, se_total: float, se_user: float, seeds_now: float, alpha: float,
                 rule_out: bool = False) -> int | None:
    """Seeds per arm for a difference of ``effect`` (absolute) to be detected, or (``rule_out``) for an interval
    inside ±effect when the arms are equal; None when more seeds cannot get there."""
    if effect <= 0 or seeds_now <= 0:
        return None
    z = _z(1 - alpha / 2) + _z(1 - (1 - POWER) / 2 if rule_out else POWER)
    seed_var = max(se_total ** 2 - se_user ** 2, 0.0) * seeds_now  # the seed part at one seed per arm
    room = (effect / z) ** 2 - se_user ** 2
    if room <= 0:
        return None
    if seed_var == 0:
        return max(2, math.ceil(seeds_now))
    return max(2, math.ceil(seed_var / room))
