"""The statistics' building blocks against independent computations: p-values by brute-force enumeration and
Clopper-Pearson from the beta distribution, Holm by hand, the design formulas from the normal quantiles, the
bootstrap draws' distribution on cases whose every outcome is known, and ``paired``'s fields (fast, synthetic)."""
import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps

from morec.stats import bootstrap, design, family, pvalues
from morec.stats.paired import TWO_LEVEL, USER_LEVEL, Paired, paired, seed_matrix

Z975, Z80, Z90 = 1.959963984540054, 0.8416212335729143, 1.2815515655446004  # normal quantiles


def brute_sign_flip(d) -> float:
    obs = abs(sum(d))
    sums = [abs(sum(s * x for s, x in zip(signs, d))) for signs in itertools.product((-1, 1), repeat=len(d))]
    return sum(s >= obs - 1e-9 for s in sums) / len(sums)


@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_exact_sign_flip_is_the_share_of_every_sign_pattern(n):
    d = np.random.default_rng(n).normal(0.2, 1.0, n).round(2)
    assert pvalues.exact_sign_flip(d) == pytest.approx(brute_sign_flip(d))
    pv = pvalues.sign_flip(np.zeros(n + 3), np.r_[d, 0, 0, 0], np.random.default_rng(0))  # zeros add nothing
    assert pv.exact and pv.p == pytest.approx(brute_sign_flip(d)) and pv.method == "sign-flip (exact)"
    assert (pv.low, pv.high, pv.draws) == (pv.p, pv.p, 0)


def test_sign_flip_with_no_difference_and_over_twenty_users():
    assert pvalues.sign_flip(np.ones(4), np.ones(4), np.random.default_rng(0)) == pvalues.exact(1.0, "sign-flip (exact)")
    rng = np.random.default_rng(0)
    same_sign = pvalues.sign_flip(np.zeros(30), np.full(30, 0.5), rng)  # 2 of 2 ** 30 patterns reach it
    assert same_sign.method == "sign-flip (Monte-Carlo)" and same_sign.draws == 10_000
    assert same_sign.p == pytest.approx(1 / 10_001)
    balanced = pvalues.sign_flip(np.zeros(30), np.tile([1.0, -1.0], 15), rng)  # mean 0: every draw reaches it
    assert balanced.p == 1.0 and balanced.draws == 10_000
    d = np.random.default_rng(5).normal(0.35, 1.0, 24)  # 24 users: exact by enumeration, Monte-Carlo by draws
    exact = pvalues.exact_sign_flip(d)
    assert 0.02 < exact < 0.5
    mc = pvalues.sign_flip(np.zeros(24), d, np.random.default_rng(1), thresholds=(0.05,))
    assert mc.low <= exact <= mc.high and mc.high - mc.low < 0.05 and not mc.exact


@pytest.mark.parametrize("k,n,sides", [(0, 100, 1), (7, 100, 1), (30, 200, 2), (200, 200, 2)])
def test_from_count_is_the_plus_one_p_with_a_clopper_pearson_interval(k, n, sides):
    pv = pvalues.from_count(k, n, "m", sides)
    low = sps.beta.ppf(0.005, k, n - k + 1) if k > 0 else 0.0
    high = sps.beta.ppf(0.995, k + 1, n - k) if k < n else 1.0
    assert pv.p == pytest.approx(min(1.0, sides * (k + 1) / (n + 1)))
    assert pv.low == pytest.approx(min(1.0, sides * low)) and pv.high == pytest.approx(min(1.0, sides * high))
    assert (pv.draws, pv.method) == (n, "m")


def test_until_clear_doubles_the_draws_up_to_the_cap():
    asked = []

    def run(clear_after, max_draws):
        asked.clear()
        state = {"n": 0}

        def draw(n):
            asked.append(n)
            state["n"] += n

        def current():  # straddles 0.05 until clear_after draws are in
            return pvalues.PValue(0.05, 0.04 if state["n"] < clear_after else 0.051, 0.06, state["n"], "m")

        return pvalues.until_clear(draw, current, (0.05,), max_draws, first=10)

    assert run(10, 1000).draws == 10 and asked == [10]
    assert run(40, 1000).draws == 40 and asked == [10, 10, 20]
    assert run(10 ** 9, 70).draws == 70 and asked == [10, 10, 20, 30]


def test_straddles_is_low_below_and_high_at_or_above_the_threshold():
    mc = lambda lo, hi: pvalues.PValue(0.05, lo, hi, 100, "m")  # noqa: E731
    assert mc(0.04, 0.05).straddles(0.05) and mc(0.049, 0.06).straddles(0.05)
    assert not mc(0.05, 0.06).straddles(0.05) and not mc(0.01, 0.049).straddles(0.05)
    assert not pvalues.PValue(0.05, 0.04, 0.06, 0, "exact").straddles(0.05)


def test_p_values_print_three_decimals_and_their_monte_carlo_error_near_a_threshold():
    assert pvalues.format_p(0.0009) == "<0.001" and pvalues.format_p(0.001) == "0.001"
    assert pvalues.format_p(0.04749) == "0.047"
    assert pvalues.format_pvalue(pvalues.PValue(0.047, 0.045, 0.049, 10_000, "m")) == "0.047 ± 0.002 (MC)"
    assert pvalues.format_pvalue(pvalues.exact(0.047, "e")) == "0.047"
    assert pvalues.format_pvalue(pvalues.PValue(0.5, 0.49, 0.51, 10_000, "m")) == "0.500"
    assert pvalues.format_pvalue(pvalues.PValue(0.0005, 0.0001, 0.001, 10_000, "m"), (0.001,)) == "<0.001"
    # 5 interval widths from the threshold is near, 6 is not
    assert "(MC)" in pvalues.format_pvalue(pvalues.PValue(0.059, 0.058, 0.060, 10_000, "m"))
    assert "(MC)" not in pvalues.format_pvalue(pvalues.PValue(0.062, 0.061, 0.063, 10_000, "m"))


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 times 3, 2, 1 = 0.03, 0.06, 0.04; made monotone: 0.03, 0.06, 0.06
    assert family.holm([0.01, 0.04, 0.03]).tolist() == pytest.approx([0.03, 0.06, 0.06])
    assert family.holm([]).tolist() == []


def hand_paired(p, mc=None, draws=0) -> Paired:
    return Paired("hr@10", 100, 1, 1, 0.1, 0.12, p=p, p_mc=mc or (p, p), p_draws=draws)


def test_adjust_sets_holm_p_family_and_redraws_only_what_straddles():
    tests = [hand_paired(0.01), hand_paired(0.04, (0.02, 0.03), 10_000), hand_paired(0.03, (0.024, 0.026), 10_000)]
    redrawn = []

    def redo(i):
        def again(thresholds):
            redrawn.append((i, thresholds))
            return hand_paired(0.03, (0.029, 0.031), 20_000)
        return again

    out = family.adjust(tests, [redo(i) for i in range(3)])
    # test 1's interval straddles alpha / 2 = 0.025 (0.02 < 0.025 <= 0.03), test 2's too (0.024 < 0.025 <= 0.026)
    assert [i for i, _ in redrawn] == [1, 2] and redrawn[0][1] == pytest.approx((0.05, 0.025, 0.05 / 3))
    assert out[0] is tests[0] and out[1].p_draws == 20_000
    assert [t.p_adj for t in out] == pytest.approx([0.03, 0.06, 0.06])
    assert all(t.family == 3 and t.correction == "Holm over 3 tests" for t in out)
    assert [t.undecided for t in out] == [False, False, False]
    edge = family.adjust([hand_paired(0.02, (0.015, 0.03), 10_000), hand_paired(0.5)])  # Holm 0.03..0.06
    assert edge[0].undecided and not edge[1].undecided
    one = family.adjust([hand_paired(0.02, (0.01, 0.03), 10_000)], [lambda th: pytest.fail("one test: no redraw")])
    assert one[0].p_adj is None and one[0].family == 1 and one[0].correction == "none (one test)"
    assert family.adjust([]) == []


def test_design_formulas_from_the_normal_quantiles():
    assert design.mde(0.01, 0.05) == pytest.approx((Z975 + Z80) * 0.01)
    assert design.mde(0.01, 0.1) == pytest.approx((sps.norm.ppf(0.95) + Z80) * 0.01)
    effect, se_total, se_user = 0.01, 0.004, 0.002
    z = Z975 + Z80
    want = math.ceil((se_total ** 2 - se_user ** 2) * 2 / ((effect / z) ** 2 - se_user ** 2))
    assert design.seeds_needed(effect, se_total, se_user, 2, 0.05) == want == 3
    z = Z975 + Z90
    want = math.ceil((se_total ** 2 - se_user ** 2) * 2 / ((effect / z) ** 2 - se_user ** 2))
    assert design.seeds_needed(effect, se_total, se_user, 2, 0.05, rule_out=True) == want == 5
    assert design.seeds_needed(0.0, se_total, se_user, 2, 0.05) is None
    assert design.seeds_needed(effect, se_total, se_user, 0, 0.05) is None
    assert design.seeds_needed(effect, 0.01, 0.0036, 2, 0.05) is None  # the user part alone is wider than the effect
    assert design.seeds_needed(effect, 0.001, 0.001, 3.5, 0.05) == 4  # no seed part: the seeds now suffice
    assert design.seeds_needed(effect, 0.001, 0.002, 1, 0.05) == 2  # se_total < se_user counts as no seed part
    assert design.seeds_needed(1.0, 0.02, 0.001, 1, 0.05) == 2  # never fewer than 2


def shares(values, points):
    return [float(np.mean(np.isclose(values, p))) for p in points]


def test_the_two_level_bootstrap_resamples_seeds_within_arms_and_users_paired():
    # one user; arm A's two seeds score 0 and 1, arm B always 0: B - A is minus the mean of 2 drawn seeds
    boot = bootstrap.Hierarchical(np.array([[0.0], [1.0]]), np.zeros((2, 1)), np.random.default_rng(0))
    boot.draw(4_500)
    d, base = boot.arrays()
    assert len(d) == 4_500 and np.array_equal(d, -base)
    assert shares(d, [-1, -0.5, 0]) == pytest.approx([0.25, 0.5, 0.25], abs=0.03)
    # one seed; B scores 1 for one of two users: B - A is the share of that user among 2 drawn users
    boot = bootstrap.Hierarchical(np.zeros((1, 2)), np.array([[0.0, 1.0]]), np.random.default_rng(1))
    boot.draw(4_000)
    assert shares(boot.arrays()[0], [0, 0.5, 1]) == pytest.approx([0.25, 0.5, 0.25], abs=0.03)
    # the same users are drawn for both arms: equal one-seed arms give a zero difference in every draw
    x = np.random.default_rng(2).random((1, 40))
    boot = bootstrap.Hierarchical(x, x.copy(), np.random.default_rng(3))
    boot.draw(100)
    assert np.all(boot.arrays()[0] == 0) and boot.pvalue().p == 1.0


def test_the_two_level_intervals_p_and_std():
    xa = np.tile(np.random.default_rng(4).random(30), (3, 1))  # seeds agree: B - A is 0.1 in every draw
    diff_ci, improv_ci, pv, std, boot = bootstrap.hierarchical(xa, xa + 0.1, 0.05, np.random.default_rng(0))
    d, base = boot.arrays()
    assert diff_ci == pytest.approx((0.1, 0.1)) and pv.p == pytest.approx(2 / (len(d) + 1)) and len(d) == 10_000
    assert improv_ci == pytest.approx(tuple(np.percentile(0.1 / base, [2.5, 97.5])))
    assert pv.method == "two-level bootstrap" and std == pytest.approx(0.0, abs=1e-12)
    xa = np.random.default_rng(4).random((3, 30))
    xb = xa + np.random.default_rng(5).normal(0.0, 0.3, xa.shape)
    diff_ci, _, pv, std, boot = bootstrap.hierarchical(xa, xb, 0.1, np.random.default_rng(0))
    d, _ = boot.arrays()
    assert diff_ci == pytest.approx(tuple(np.percentile(d, [5, 95])))
    tail = min(np.sum(d <= 0), np.sum(d >= 0))
    assert pv.p == pytest.approx(min(1.0, 2 * (tail + 1) / (len(d) + 1))) and 0.05 < pv.p < 1
    assert std == pytest.approx(np.std(d, ddof=1)) and std > 0.01
    _, improv_ci, *_ = bootstrap.hierarchical(np.zeros((2, 5)), np.ones((2, 5)), 0.05, np.random.default_rng(0))
    assert improv_ci is None  # A never hits: no relative interval


def test_user_bootstrap_std_is_the_standard_error_of_the_mean():
    d = np.random.default_rng(6).normal(0, 1, 200)
    want = np.std(d) / math.sqrt(len(d))
    assert bootstrap.user_bootstrap_std(d, np.random.default_rng(0)) == pytest.approx(want, rel=0.06)
    assert bootstrap.user_bootstrap_std(d[:1], np.random.default_rng(0)) == 0.0
    assert bootstrap.user_bootstrap_std(np.zeros(50), np.random.default_rng(0)) == 0.0


def hits(pattern: str) -> np.ndarray:
    """Ranks from a string: 1 a hit at rank 1, 0 rank 0 (no target), . a miss (rank 50)."""
    return np.array([{"1": 1, "0": 0, ".": 50}[c] for c in pattern])


def test_paired_on_one_seed_each():
    a, b = hits("1..1....1." * 3 + "0"), hits("11.1.1..1." * 3 + ".")
    c = paired([a], [b], "hr@10")
    ha, hb = (a[:30] == 1).astype(float), (b[:30] == 1).astype(float)
    assert (c.users, c.seeds_a, c.seeds_b) == (30, 1, 1)  # the user with no target in A is left out
    assert c.mean_a == pytest.approx(0.3) and c.mean_b == pytest.approx(0.5)
    assert c.seed_means_a == pytest.approx([0.3]) and c.seed_means_b == pytest.approx([0.5])
    assert c.diff == pytest.approx(0.2) and c.improv == pytest.approx(0.2 / 0.3)
    assert c.p == c.user_p == pytest.approx(brute_sign_flip([x for x in hb - ha if x]))  # 6 differing users: exact
    assert c.level == USER_LEVEL and c.provisional and c.seeds_to_detect is None and c.seeds_to_rule_out is None
    rng = np.random.default_rng(0)
    kw = dict(paired=True, vectorized=True, n_resamples=10_000, confidence_level=0.95, method="BCa", random_state=rng)
    ci = sps.bootstrap((ha, hb), lambda x, y, axis=-1: y.mean(axis) - x.mean(axis), **kw).confidence_interval
    assert c.user_diff_ci == pytest.approx((ci.low, ci.high)) and c.diff_ci == c.user_diff_ci
    ci = sps.bootstrap((ha, hb), lambda x, y, axis=-1: (y.mean(axis) - x.mean(axis)) / x.mean(axis),
                       **kw).confidence_interval
    assert c.user_improv_ci == pytest.approx((ci.low, ci.high)) and c.improv_ci == c.user_improv_ci
    se_user = bootstrap.user_bootstrap_std(hb - ha, rng)
    assert c.mde == pytest.approx((Z975 + Z80) * se_user / 0.3)
    assert paired([a], [b], "hr@10", alpha=0.2).user_diff_ci[0] > c.user_diff_ci[0]  # alpha sets the level


def test_paired_with_seeds_uses_the_two_level_bootstrap():
    rng = np.random.default_rng(7)
    a = [np.where(rng.random(200) < 0.3, 1, 50) for _ in range(2)]
    b = [np.where(rng.random(200) < 0.5, 1, 50) for _ in range(3)]
    c = paired(a, b, "hr@10", margin=1.0)  # a margin as wide as A's mean: a few seeds can detect it
    xa, xb = seed_matrix(a, "hr@10"), seed_matrix(b, "hr@10")
    assert c.level == TWO_LEVEL and not c.provisional and (c.seeds_a, c.seeds_b) == (2, 3)
    assert c.seed_means_a == pytest.approx(xa.mean(axis=1).tolist())
    assert c.mean_b == pytest.approx(xb.mean()) and c.diff == pytest.approx(xb.mean() - xa.mean())
    assert c.p != c.user_p and c.p_method == "two-level bootstrap"
    assert c.diff_ci[0] < c.diff < c.diff_ci[1] and c.diff_ci != c.user_diff_ci
    assert c.seeds_to_detect is not None and c.seeds_to_detect >= 2
    assert c.seeds_to_rule_out >= c.seeds_to_detect  # ruling out needs 90% quantile power on each side
    one_arm_seed = paired(a[:1], b, "hr@10")
    assert one_arm_seed.level == USER_LEVEL and one_arm_seed.diff_ci == one_arm_seed.user_diff_ci


def test_paired_edge_cases():
    none = paired([hits("000")], [hits("1.1")], "hr@10")
    assert none.users == 0 and none.p == 1.0 and none.p_method == "no users" and none.improv is None
    zero_a = paired([hits("...")], [hits("1.1")], "hr@10")
    assert zero_a.improv is None and zero_a.mde is None and zero_a.diff == pytest.approx(2 / 3)
    flat = paired([hits(".....")], [hits("11111")], "hr@10")  # every user differs by 1: nothing to resample
    assert flat.user_diff_ci == (1.0, 1.0) and flat.improv_ci is None
    with pytest.raises(ValueError, match="different numbers of users"):
        paired([hits("11")], [hits("111")], "hr@10")
    with pytest.raises(ValueError, match="at least one run"):
        seed_matrix([], "hr@10")
    with pytest.raises(ValueError, match=r"rank different numbers of users \(\[2, 3\]\)"):
        seed_matrix([hits("11"), hits("111")], "hr@10")


def test_the_verdict_follows_p_and_the_interval_that_decides():
    def c(**kw):
        base = dict(metric="hr@10", users=100, seeds_a=3, seeds_b=3, mean_a=0.1, mean_b=0.12, diff=0.02,
                    improv=0.2, improv_ci=(0.1, 0.3), diff_ci=(0.01, 0.03), p=0.01, level=TWO_LEVEL)
        return Paired(**{**base, **kw})

    assert c().verdict == "better" and c(diff=-0.02, improv_ci=(-0.3, -0.1)).verdict == "worse"
    assert c(p=0.05).verdict == "no detectable difference"  # p must be below alpha
    assert c(p=0.01, p_adj=0.06).verdict == "no detectable difference" and c(p=0.2, p_adj=0.01).decision_p == 0.01
    assert c(improv_ci=(0.0, 0.3)).verdict == "no detectable difference"  # the interval must exclude 0
    assert c(improv_ci=None, diff_ci=(0.01, 0.03)).interval == ((0.01, 0.03), False)
    assert c(improv_ci=None, diff_ci=(-0.01, 0.03)).verdict == "no detectable difference"
    assert c(p=0.5, improv_ci=(-0.04, 0.04)).verdict == "equivalent within ±5%"
    assert c(p=0.5, improv_ci=(-0.05, 0.04)).verdict == "no detectable difference"  # inside, not on, the margin
    assert c(p=0.5, improv_ci=(-0.04, 0.05)).verdict == "no detectable difference"
    assert c(p=0.5, improv_ci=(-0.04, 0.04), margin=0.0).verdict == "no detectable difference"
    assert c(p=0.5, improv_ci=None, diff_ci=(-0.001, 0.001)).verdict == "no detectable difference"  # absolute
    assert c(undecided=True).verdict == "undecided at this precision" and not c(undecided=True).significant
    assert c(p=0.5, improv_ci=(-0.04, 0.04), margin=0.1).verdict == "equivalent within ±10%"
    d = c(level=USER_LEVEL).to_dict()
    assert d["provisional"] and d["significant"] and not d["equivalent"] and d["verdict"] == "better"
    assert d["p"] == 0.01 and d["metric"] == "hr@10"


def test_paired_resamples_users_as_often_as_asked(monkeypatch):
    """``paired(n_resamples=...)`` reaches the user-level bootstrap (it once fell back to the default)."""
    from scipy import stats as scipy_stats

    from morec.stats import paired

    asked, real = [], scipy_stats.bootstrap

    def counting(*args, **kwargs):
        asked.append(kwargs["n_resamples"])
        return real(*args, **kwargs)

    monkeypatch.setattr(scipy_stats, "bootstrap", counting)
    rng = np.random.default_rng(3)
    a, b = rng.integers(1, 40, size=200), rng.integers(1, 30, size=200)
    paired([a], [b], "hr@10", n_resamples=321)
    assert asked and set(asked) == {321}
