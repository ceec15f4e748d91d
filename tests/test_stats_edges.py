"""The statistics at their edges: decision boundaries hit exactly, the draw caps, two tests in a family, two users,
an arm against itself, inputs that are not plain float arrays. Expected values by hand, from the binomial
distribution or from SciPy called directly (each case here was left alive by a mutant of the code)."""
import itertools
from decimal import Decimal

import numpy as np
import pytest
from scipy import stats as sps

from morec.stats import bootstrap, design, family, pvalues
from morec.stats.paired import TWO_LEVEL, Paired, paired, seed_matrix, user_scores


def hits(pattern: str) -> np.ndarray:
    """Ranks from a string: 1 a hit at rank 1, 0 rank 0 (no target), . a miss (rank 50)."""
    return np.array([{"1": 1, "0": 0, ".": 50}[c] for c in pattern])


def plus_minus_p(plus: int, minus: int) -> float:
    """Exact sign-flip p of differences +1 (``plus`` users) and -1 (``minus``): every flip pattern's sum is
    2X - n with X ~ Binomial(n, 1/2)."""
    n, obs = plus + minus, abs(plus - minus)
    x = np.arange(n + 1)
    return float(sps.binom.pmf(x, n, 0.5)[np.abs(2 * x - n) >= obs].sum())


# --- sign-flip p-values ---

def test_twenty_differing_users_are_still_enumerated():
    d = np.r_[np.ones(15), -np.ones(5)]
    pv = pvalues.sign_flip(np.zeros(20), d, np.random.default_rng(0))
    assert pv.exact and pv.method == "sign-flip (exact)"
    assert pv.p == pytest.approx(plus_minus_p(15, 5)) == pytest.approx(2 * sps.binom.sf(14, 20, 0.5))


def test_monte_carlo_sign_flip_stops_at_its_cap_while_it_straddles():
    d = np.r_[np.ones(17), -np.ones(8)]  # 25 users: Monte-Carlo
    p = plus_minus_p(17, 8)
    pv = pvalues.sign_flip(np.zeros(25), d, np.random.default_rng(0), thresholds=(p,), max_draws=20_000)
    assert pv.draws == 20_000 and pv.straddles(p)  # a threshold at the true p: still straddled at the cap


@pytest.mark.parametrize("d,p", [
    ([0.25, 5e-10], 1.0),  # |0.25 - 5e-10| is exactly the observed sum less the tolerance 1e-9: a tie
    ([1000.0, 5e-9], 1.0),  # the tolerance grows with the sum (1e-9 x 1000): 1e-8 apart is a tie
    ([0.5, 7.5e-10], 0.5),  # below a sum of 1 the tolerance is 1e-9: 1.5e-9 apart is not
])
def test_sign_patterns_tie_within_a_relative_tolerance(d, p):
    x, y = d
    if x == 0.25:
        assert abs(x - y) == (x + y) - 1e-9  # the case sits on the tolerance's edge
    assert pvalues.exact_sign_flip(np.array(d)) == p  # of the four patterns, 2 or 4 reach the observed |sum|


def test_sign_flip_converts_its_inputs_to_floats():
    a = [Decimal("0.1")] * 3 + [Decimal("0")] * 3
    b = [Decimal("0.3"), Decimal("0.2"), Decimal("0"), Decimal("0.5"), Decimal("0.5"), Decimal("0.25")]
    pv = pvalues.sign_flip(a, b, np.random.default_rng(0))
    d = [0.2, 0.1, -0.1, 0.5, 0.5, 0.25]
    sums = [abs(sum(s * x for s, x in zip(signs, d))) for signs in itertools.product((-1, 1), repeat=6)]
    assert pv.exact and pv.p == pytest.approx(sum(s >= 1.45 - 1e-9 for s in sums) / 64)


def test_sign_flip_leaves_out_a_user_one_arm_did_not_score():
    a, b = hits("1.0..1"), hits("11.11.")  # user 2 has no target in A: user_scores gives NaN
    pv = pvalues.sign_flip(user_scores([a], "hr@10"), user_scores([b], "hr@10"), np.random.default_rng(0))
    assert pv.p == pytest.approx(plus_minus_p(3, 1)) == pytest.approx(10 / 16)  # differences +1, +1, +1, -1
    nan_a = np.r_[np.nan, np.zeros(29)]  # Monte-Carlo: 15 users +1, 14 users -1 and one NaN
    pv = pvalues.sign_flip(nan_a, np.r_[0.0, np.ones(15), -np.ones(14)], np.random.default_rng(0))
    assert pv.p == 1.0 and pv.draws == 10_000  # every pattern of an odd count of ±1 reaches |sum| = 1
    with pytest.raises(ValueError, match=r"^sign_flip: a user's difference is infinite; the per-user values must "
                                         r"be finite$"):
        pvalues.sign_flip(np.zeros(3), np.array([0.1, np.inf, 0.2]), np.random.default_rng(0))


# --- the two-level bootstrap's draw cap ---

def test_two_level_bootstrap_stops_at_its_cap_while_it_straddles():
    # one seed, 3 users; B - A is the mean of 3 users drawn from (-1, 1, 1): below 0 when 2 or 3 draws are -1,
    # 7 / 27 of the time, so p = 14 / 27
    xa, xb = np.zeros((1, 3)), np.array([[-1.0, 1.0, 1.0]])
    *_, pv, _, boot = bootstrap.hierarchical(xa, xb, 0.05, np.random.default_rng(0), (14 / 27,), max_draws=40_000)
    d, _ = boot.arrays()
    assert pv.draws == len(d) == 40_000 and pv.straddles(14 / 27)
    shares = [float(np.mean(np.isclose(d, v))) for v in (-1, -1 / 3, 1 / 3, 1)]
    assert shares == pytest.approx([1 / 27, 6 / 27, 12 / 27, 8 / 27], abs=0.01)


def test_paired_passes_its_thresholds_and_cap_to_the_two_level_bootstrap():
    a, b = [hits("1..")] * 2, [hits(".11")] * 2  # two equal seeds per arm: the same case as above
    c = paired(a, b, "hr@10", n_resamples=500, thresholds=(0.05, 14 / 27), max_draws=40_000)
    assert c.level == TWO_LEVEL and c.p_method == "two-level bootstrap"
    assert c.p_draws == 40_000 and c.p_mc[0] < 14 / 27 <= c.p_mc[1]


def test_paired_is_undecided_when_the_user_level_p_straddles_alpha_at_the_cap():
    # 17 users hit only in B, 8 only in A, 5 in both, 10 in neither; alpha at the exact p: straddled at the cap
    a = hits("." * 17 + "1" * 8 + "1" * 5 + "." * 10)
    b = hits("1" * 17 + "." * 8 + "1" * 5 + "." * 10)
    alpha = plus_minus_p(17, 8)
    c = paired([a], [b], "hr@10", alpha=alpha, n_resamples=500, max_draws=10_000)
    assert c.p_draws == 10_000 and c.p == c.user_p and c.p_mc[0] < alpha <= c.p_mc[1]
    assert c.undecided is True and c.verdict == "undecided at this precision"


# --- paired on small and degenerate cases ---

def test_an_arm_against_itself_has_a_zero_width_interval_at_zero():
    a = hits("1.1..1...1")
    c = paired([a], [a.copy()], "ndcg@10")
    assert c.metric == "ndcg@10" and c.users == 10 and c.diff == 0.0 and c.improv == 0.0 and c.p == 1.0
    assert c.user_diff_ci == (0.0, 0.0) and c.user_improv_ci == (0.0, 0.0) and c.improv_ci == (0.0, 0.0)
    assert c.verdict == "equivalent within ±5%"


def test_two_users_are_resampled():
    c = paired([hits("1.")], [hits("11")], "hr@10", n_resamples=1_000)  # differences 0 and 1
    kw = dict(paired=True, vectorized=True, n_resamples=1_000, confidence_level=0.95, method="BCa",
              random_state=np.random.default_rng(0))
    ci = sps.bootstrap((np.array([1.0, 0.0]), np.array([1.0, 1.0])), lambda x, y, axis=-1: y.mean(axis) - x.mean(axis),
                       **kw).confidence_interval
    assert c.user_diff_ci == pytest.approx((ci.low, ci.high)) and c.user_diff_ci[0] < 0.5 < c.user_diff_ci[1]


def test_few_hits_in_a_give_no_relative_interval_even_when_numpy_raises_on_division():
    a, b = hits("1.1.1" + "." * 25), hits("1111" + "." * 26)  # some resamples have no hit in A, some none at all
    with np.errstate(all="raise"):  # the ratio's division by zero is expected, not an error
        c = paired([a], [b], "hr@10", n_resamples=2_000)
    assert c.improv == pytest.approx(1 / 3) and c.user_improv_ci is None and c.improv_ci is None
    assert c.interval == (c.diff_ci, False)


def test_users_without_a_target_in_one_arm_are_left_out_of_both():
    c = paired([hits("1.1.1")], [hits("11.10")], "hr@10")  # user 4 has no target in B
    assert c.users == 4 and c.mean_a == pytest.approx(0.5) and c.mean_b == pytest.approx(0.75)
    none = paired([hits("000")], [hits("1.1")], "hr@10")
    assert (none.mean_a, none.mean_b, none.diff) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match=r"^an arm needs the ranks of at least one run$"):
        seed_matrix([], "hr@10")


# --- Holm over a family ---

def hand_paired(p, mc=None, draws=0) -> Paired:
    return Paired("hr@10", 100, 1, 1, 0.1, 0.12, p=p, p_mc=mc or (p, p), p_draws=draws)


def no_redraw(_thresholds):
    pytest.fail("this test must not be redrawn")


def test_adjust_with_one_test_never_redraws_it():
    one = family.adjust([hand_paired(0.05, (0.04, 0.06), 10_000)], [no_redraw])  # straddles alpha itself
    assert one[0].p_adj is None and one[0].undecided


def test_adjust_two_tests_redraws_what_straddles_alpha_over_k():
    redrawn = []

    def again(thresholds):
        redrawn.append(thresholds)
        return hand_paired(0.022, (0.021, 0.023), 20_000)

    # thresholds 0.05 and 0.025: test 0's interval reaches 0.025 at its top (straddles), test 1's is far from both
    out = family.adjust([hand_paired(0.022, (0.02, 0.025), 10_000), hand_paired(0.3, (0.29, 0.31), 10_000)],
                        [again, no_redraw])
    assert redrawn == [pytest.approx((0.05, 0.025))] and out[0].p_draws == 20_000
    assert [t.p_adj for t in out] == pytest.approx([0.044, 0.3])  # 0.022 x 2, 0.3 x 1
    assert [t.correction for t in out] == ["Holm over 2 tests"] * 2 and [t.family for t in out] == [2, 2]
    # an interval starting at 0.025 does not straddle it
    family.adjust([hand_paired(0.027, (0.025, 0.03), 10_000), hand_paired(0.5)], [no_redraw, no_redraw])


def test_adjust_undecided_on_holm_p_exactly_at_alpha():
    assert 2 * 0.025 == 0.05  # Holm doubles the smaller of two p-values: exactly alpha here
    low_at_alpha = family.adjust([hand_paired(0.027, (0.025, 0.03), 10_000), hand_paired(0.5)])
    assert not low_at_alpha[0].undecided  # adjusted 0.05 .. 0.06: never below alpha
    high_at_alpha = family.adjust([hand_paired(0.022, (0.02, 0.025), 10_000), hand_paired(0.5)])
    assert high_at_alpha[0].undecided  # adjusted 0.04 .. 0.05: below alpha at one end only


def test_holm_returns_floats_for_integer_p_values():
    adjusted = family.holm([1, 0])
    assert adjusted.dtype == np.float64 and adjusted.tolist() == [1.0, 0.0]


# --- seeds needed at the edges ---

def test_seeds_needed_at_zero_effect_and_no_room_left():
    assert design.seeds_needed(0.0, np.nan, np.nan, 2, 0.05) is None  # a zero effect: nothing to plan
    effect = 0.01
    z = sps.norm.ppf(1 - 0.05 / 2) + sps.norm.ppf(0.8)
    se_user = effect / z  # the user part alone uses the whole effect: no seed count is enough
    assert (effect / z) ** 2 - se_user ** 2 == 0.0
    assert design.seeds_needed(effect, 2 * se_user, se_user, 2, 0.05) is None
