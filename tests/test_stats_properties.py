"""Properties of the paired statistics on arbitrary arms (hypothesis): an arm against itself is never better or
worse; swapping the arms negates the difference and swaps better and worse; the verdict word follows the
interval and p that are printed beside it."""
import re

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from morec.stats import format_improv, p_text, paired

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def arms(draw, max_seeds: int = 2):
    """Two arms over the same users: ranks 1..30 (HR@10 / NDCG@10 from 0 to 1), 1-2 seeds each."""
    users = draw(st.integers(3, 40))
    rank = st.integers(1, 30)
    seeds_a, seeds_b = draw(st.integers(1, max_seeds)), draw(st.integers(1, max_seeds))
    a = [np.array(draw(st.lists(rank, min_size=users, max_size=users))) for _ in range(seeds_a)]
    b = [np.array(draw(st.lists(rank, min_size=users, max_size=users))) for _ in range(seeds_b)]
    return a, b, draw(st.sampled_from(["hr@10", "ndcg@10"]))


@FAST
@given(arms())
def test_an_arm_against_itself_is_never_better_or_worse(data):
    a, _, metric = data
    c = paired(a, a, metric, max_draws=20_000)
    assert c.diff == 0 and c.verdict not in ("better", "worse")


@FAST
@given(arms())
def test_swapping_the_arms_negates_the_difference(data):
    a, b, metric = data
    ab, ba = paired(a, b, metric, max_draws=20_000), paired(b, a, metric, max_draws=20_000)
    assert np.isclose(ab.diff, -ba.diff) and ab.mean_a == ba.mean_b and ab.users == ba.users
    swapped = {"better": "worse", "worse": "better"}
    if ab.verdict in swapped and ba.p < ba.alpha:  # the p-values of the two directions come from separate draws
        assert ba.verdict in (swapped[ab.verdict], "no detectable difference")


def _printed_bounds(text: str) -> tuple[float, float]:
    low, high = re.search(r"\[([-+][\d.]+)%?, ([-+][\d.]+)%?\]", text).groups()
    return float(low), float(high)


@FAST
@given(arms())
def test_the_verdict_word_follows_the_printed_interval_and_p(data):
    a, b, metric = data
    c = paired(a, b, metric, max_draws=20_000)
    low, high = _printed_bounds(format_improv(c))
    p = float(p_text(c).split()[1].lstrip("<"))
    if c.verdict == "better":
        assert low > 0 and p <= c.alpha
    elif c.verdict == "worse":
        assert high < 0 and p <= c.alpha
    elif c.verdict.startswith("equivalent"):
        assert -100 * c.margin <= low and high <= 100 * c.margin
    else:  # not decided: either the interval holds 0, or p is not below alpha
        assert low <= 0 <= high or c.p >= c.alpha or c.undecided
