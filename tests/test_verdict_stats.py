"""Verdicts that hold across seeds, on fixtures with known structure: the two-level interval, equivalence,
Holm's correction, Monte-Carlo precision near alpha, exact p-values, degenerate arms, the budget check, what
"capped" means, seeds until decided, and the tune summary's verdict. Every expectation is computed here
independently (binomial tests, hand-worked Holm), never by the function under test."""
import json
import warnings

import numpy as np
import pytest
from scipy.stats import binomtest
from statsmodels.stats.multitest import multipletests

from morec import cli
from morec.ranks import per_user_metric
from morec.report import load_arm
from morec.sequential import seed_dir, until_decided
from morec.stats import Paired, adjust, format_improv, paired, sign_flip
from morec.compare import chosen_vs_base
from morec.runlog import capped
from morec.verdict import ComparisonError, budget_notes, compare_arms
from test_stats import N_USERS, arm_ranks, write_run


def ranks_at(rate: float, seed: int, n: int = 943) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.where(rng.random(n) < rate, rng.integers(1, 11, n), rng.integers(11, 500, n))


def test_a_user_level_difference_that_seeds_do_not_bear_out_is_no_detectable_difference():
    """Seed means spread 0.10-0.30 in each arm: over users alone B is far ahead (p < 0.001), but another
    training run could reverse it, so the primary (two-level) interval holds 0 and the verdict says so."""
    a = [ranks_at(r, s) for r, s in ((0.10, 1), (0.20, 2), (0.30, 3))]
    b = [ranks_at(r, s) for r, s in ((0.16, 11), (0.26, 12), (0.36, 13))]
    c = paired(a, b, "hr@10")
    assert c.level == "seeds and users" and not c.provisional
    assert c.user_p < 0.001 and c.user_improv_ci[0] > 0  # users alone: clearly better
    assert c.improv_ci[0] < 0 < c.improv_ci[1] and c.p > 0.05
    assert c.verdict == "no detectable difference"
    # the interval printed is the one that decided
    assert format_improv(c).endswith(f"[{100 * c.improv_ci[0]:+.2f}%, {100 * c.improv_ci[1]:+.2f}%]")


def test_arms_within_the_margin_are_equivalent_and_too_wide_an_interval_is_not():
    base = ranks_at(0.2, 7, 2000)
    a, b = [], []
    for s in range(3):  # each seed moves 4 users (of 2000) up or down: tiny seed and arm differences
        rng = np.random.default_rng(100 + s)
        for arm in (a, b):
            r = base.copy()
            r[rng.integers(0, 2000, 4)] = rng.integers(1, 60, 4)
            arm.append(r)
    c = paired(a, b, "hr@10", margin=0.05)
    assert -0.05 < c.improv_ci[0] and c.improv_ci[1] < 0.05
    assert c.verdict == "equivalent within ±5%"
    assert paired(a, b, "hr@10", margin=0.0).verdict == "no detectable difference"
    wide = paired([ranks_at(0.2, 1, 300)], [ranks_at(0.2, 2, 300)], "hr@10")  # 300 users: interval ±30%
    assert wide.improv_ci[1] - wide.improv_ci[0] > 0.2 and wide.verdict == "no detectable difference"
    assert wide.provisional and wide.seeds_to_detect is None and wide.mde > 0.2


def _fixed(p: float) -> Paired:
    return Paired("hr@10", 100, 3, 3, 0.2, 0.25, improv=0.25, improv_ci=(0.1, 0.4), diff=0.05, diff_ci=(0.02, 0.08),
                  p=p, p_mc=(p, p))


def test_holm_matches_statsmodels_and_a_hand_worked_family():
    raw = [0.01, 0.04, 0.03, 0.005]
    tests = adjust([_fixed(p) for p in raw])
    # by hand: sorted 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 -> max(0.06, 0.04) = 0.06
    assert [t.p_adj for t in tests] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert [t.p_adj for t in tests] == pytest.approx(list(multipletests(raw, method="holm")[1]))
    assert [t.verdict for t in tests] == ["better", "no detectable difference", "no detectable difference", "better"]
    assert all(t.family == 4 and t.correction == "Holm over 4 tests" for t in tests)
    (one,) = adjust([_fixed(0.04)])
    assert one.p_adj is None and one.correction == "none (one test)" and one.verdict == "better"


def _plus_minus(n_plus: int, n: int):
    """1 seed per arm, n users: n_plus users hit only in B, the rest only in A (HR@10 differences of ±1)."""
    d = np.arange(n) < n_plus
    return [np.where(d, 50, 1)], [np.where(d, 1, 50)]


def test_a_p_value_near_alpha_is_not_decided_by_too_few_draws():
    a, b = _plus_minus(220, 400)  # sign-flip p = binomial p(220 of 400) = 0.0510: next to alpha
    exact_p = binomtest(220, 400).pvalue
    few = paired(a, b, "hr@10", max_draws=10_000)
    assert few.p_mc[0] < 0.05 <= few.p_mc[1] and few.p_mc[0] <= exact_p <= few.p_mc[1]
    assert few.undecided and few.verdict == "undecided at this precision"
    a, b = _plus_minus(532, 1000)  # p = 0.0463: 10,000 draws cannot tell it from 0.05; more can
    c = paired(a, b, "hr@10")
    assert c.p_draws > 10_000 and not c.undecided and c.p_mc[1] < 0.05
    assert c.p_mc[0] <= binomtest(532, 1000).pvalue <= c.p_mc[1]


def test_identical_differences_and_few_users_get_the_exact_p():
    rng = np.random.default_rng(0)
    assert sign_flip(np.zeros(3), np.full(3, 0.3), rng).p == 0.25  # 2 of 8 sign patterns as extreme
    c = paired([np.array([11, 11, 11])], [np.array([1, 1, 1])], "hr@10")
    assert c.p == 0.25 and c.p_draws == 0 and c.verdict == "no detectable difference"
    # arbitrary differences: every sign pattern, as scipy's exact permutation test enumerates them
    from scipy import stats

    d = np.random.default_rng(3).normal(size=12)
    ref = stats.permutation_test((d,), lambda x, axis=-1: np.mean(x, axis=axis), permutation_type="samples",
                                 vectorized=True, n_resamples=np.inf).pvalue
    assert sign_flip(np.zeros(12), d, rng).p == pytest.approx(ref)
    # 15 users, 12 better in B: the exact sign-flip p of ±1 differences is the binomial test's
    a, b = _plus_minus(12, 15)
    assert paired(a, b, "hr@10").p == pytest.approx(binomtest(12, 15).pvalue)


def test_no_hits_and_rank_zero_users_raise_no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ndcg = per_user_metric(np.array([0, 1, 3, 20]), "ndcg@10")
        c = paired([np.full(50, 40), np.full(50, 30)], [np.full(50, 20), np.full(50, 60)], "ndcg@10")
    assert np.isnan(ndcg[0]) and ndcg[1:].tolist() == pytest.approx([1.0, 0.5, 0.0])
    assert c.mean_a == c.mean_b == 0 and c.improv is None and c.p == 1.0
    assert c.verdict == "no detectable difference" and format_improv(c).startswith("diff +0.0000")


def test_the_budget_check_covers_learning_rates_and_the_validation_schedule(tmp_path):
    write_run(tmp_path / "a", "id", 1, arm_ranks(0.2, 1))
    for name, section, key, value in (("lr", "train", "lr", 0.01), ("every", "eval", "valid_every", 5),
                                      ("users", "eval", "valid_users", 100), ("from", "eval", "valid_from", 3)):
        write_run(tmp_path / name, "id", 1, arm_ranks(0.2, 2))
        f = tmp_path / name / "results.json"
        results = json.loads(f.read_text())
        results["config"][section][key] = value
        f.write_text(json.dumps(results))
        notes = budget_notes(load_arm(tmp_path / "a"), load_arm(tmp_path / name))
        assert any(n.startswith("unequal budgets") and str(value) in n for n in notes), (name, notes)
        with pytest.raises(ComparisonError, match="different budgets"):
            compare_arms(load_arm(tmp_path / "a"), load_arm(tmp_path / name), ["hr@10"], equal_budgets=True)
    assert not budget_notes(load_arm(tmp_path / "a"), load_arm(tmp_path / "a"))
    # the encoder's learning rate is a budget between two modality encoders, not against an ID embedding
    for name, kind, lr in (("text1", "text", 1e-4), ("text2", "text", 3e-3), ("id2", "id", 3e-3)):
        write_run(tmp_path / name, kind, 1, arm_ranks(0.2, 3))
        f = tmp_path / name / "results.json"
        results = json.loads(f.read_text())
        results["config"]["model"]["encoder"]["lr"] = lr
        f.write_text(json.dumps(results))
    assert any("encoder learning rate" in n for n in budget_notes(load_arm(tmp_path / "text1"), load_arm(tmp_path / "text2")))
    assert not budget_notes(load_arm(tmp_path / "a"), load_arm(tmp_path / "text2"))


def test_capped_means_the_cap_came_while_validation_was_still_rising():
    assert capped({"stop_reason": "epochs", "valid_rising_at_cap": True})
    assert not capped({"stop_reason": "epochs", "valid_rising_at_cap": False})  # a cosine run that had levelled off
    assert not capped({"stop_reason": "patience", "valid_rising_at_cap": True})
    # runs saved before the flag: the best epoch (0-based) was the last of the cap
    assert capped({"stop_reason": "epochs", "best_epoch": 11, "config": {"train": {"epochs": 12}}})
    assert not capped({"stop_reason": "epochs", "best_epoch": 8, "config": {"train": {"epochs": 12}}})


def _synthetic_trainer(rate: float):
    """Stands in for training in the loop test: writes seed ``seed`` of a run with known ranks."""
    def train(template, seed, log):
        out = seed_dir(template, seed)
        if not (out / "results.json").exists():
            kind = json.loads((template / "results.json").read_text())["config"]["model"]["encoder"]["kind"]
            write_run(out, kind, seed, arm_ranks(rate, seed + (10 if kind == "text" else 0)))
        return out
    return train


def test_seeds_are_added_until_decided_with_bonferroni_over_the_looks(tmp_path):
    assert seed_dir(tmp_path / "sw" / "kind-id_seed-3", 4) == tmp_path / "sw" / "kind-id_seed-4"
    assert seed_dir(tmp_path / "runs" / "seed-2", 3) == tmp_path / "runs" / "seed-3"
    assert seed_dir(tmp_path / "idrec", 2) == tmp_path / "idrec_seed-2"
    for seed in (1, 2):
        write_run(tmp_path / "sw" / f"kind-id_seed-{seed}", "id", seed, arm_ranks(0.20, seed))
        write_run(tmp_path / "sw" / f"kind-text_seed-{seed}", "text", seed, arm_ranks(0.20, seed + 10))
    out = until_decided(tmp_path / "sw" / "kind-id", tmp_path / "sw" / "kind-text", ["hr@10"], max_seeds=4,
                        train=_synthetic_trainer(0.20), log=lambda m: None)
    assert [h["seeds"] for h in out["looks"]] == [2, 3, 4]  # never decided: stops at max
    assert all(h["alpha"] == pytest.approx(0.05 / 3) for h in out["looks"])
    assert len(out["looks"][0]["seconds_per_added_seed"]) == 2 and "Bonferroni over 3 planned looks" in out["verdict"]
    assert out["paired"]["hr@10"].seeds_a == 4 and (tmp_path / "sw" / "kind-text_seed-4" / "ranks.npz").exists()
    # resumable: a second call finds the seeds and looks once
    again = until_decided(tmp_path / "sw" / "kind-id", tmp_path / "sw" / "kind-text", ["hr@10"], max_seeds=4,
                          train=_synthetic_trainer(0.20), log=lambda m: None)
    assert [h["seeds"] for h in again["looks"]] == [4]
    with pytest.raises(Exception, match="max-seeds 1"):
        until_decided(tmp_path / "sw" / "kind-id", tmp_path / "sw" / "kind-text", ["hr@10"], max_seeds=1)


def test_compare_prints_both_levels_and_takes_a_margin(tmp_path, capsys):
    for seed in (1, 2, 3):
        write_run(tmp_path / f"kind-id_seed-{seed}", "id", seed, arm_ranks(0.20, seed))
        write_run(tmp_path / f"kind-text_seed-{seed}", "text", seed, arm_ranks(0.35, seed + 10))
    assert cli.main(["compare", str(tmp_path / "kind-id"), str(tmp_path / "kind-text"), "--metric", "hr@10",
                     "--margin", "10%"]) == 0
    text = capsys.readouterr().out
    assert "one test, no family correction" in text and "given these trained models" in text
    assert "seeds per arm to detect ±10%" in text
    with pytest.raises(SystemExit) as exit_:  # a usage error, one line, status 2
        cli.main(["compare", str(tmp_path / "kind-id"), str(tmp_path / "kind-text"), "--margin", "x"])
    assert exit_.value.code == 2
    assert "--margin 'x'" in capsys.readouterr().err


def test_the_tune_summary_states_chosen_against_base(tmp_path):
    arms = []
    for arm, rate in (("base", 0.2), ("chosen", 0.35)):
        runs = []
        for seed in (1, 2, 3):
            d = tmp_path / arm / f"seed-{seed}"
            write_run(d, "id", seed, arm_ranks(rate, seed + (10 if arm == "chosen" else 0)))
            runs.append({"seed": seed, "dir": str(d), "status": "done"})
        arms.append({"arm": arm, "group": {}, "overrides": {}, "out": str(tmp_path / arm), "runs": runs})
    (line,) = chosen_vs_base(arms[::-1])
    assert line.startswith("chosen vs base on test (3 vs 3 seeds, 600 users; Holm over 2 tests): HR@10 better")
    assert chosen_vs_base(arms[1:]) == []  # no base arm: nothing to compare


def test_a_sweep_with_a_seed_range_adds_seeds_to_undecided_configurations(tmp_path):
    import yaml

    from morec.config import to_dict
    from morec.evaluate import metrics_from_ranks
    from morec.ranks import save_ranks
    from morec.sweep import SweepError, parse_sweep, run_sweep

    trained = []

    def runner(run, resume, log):  # stands in for training: known ranks, the same rate for both learning rates
        cfg = to_dict(run.config)
        seed, lr = cfg["train"]["seed"], cfg["train"]["lr"]
        ranks = arm_ranks(0.2, seed + (10 if lr > 0.0015 else 0))
        metrics = metrics_from_ranks(ranks, [10])
        results = {"best_epoch": 1, "valid": metrics, "test": metrics, "stop_reason": "patience", "config": cfg,
                   "dataset": {"name": "toy", "n_users": N_USERS, "prepare": {}, "fingerprint": "abc"}}
        run.dir.mkdir(parents=True, exist_ok=True)
        (run.dir / "results.json").write_text(json.dumps(results))
        (run.dir / "config.yaml").write_text(yaml.safe_dump(cfg))
        save_ranks(run.dir, ranks, ranks)
        trained.append(run.name)
        return results

    spec = {"base": {"data": str(tmp_path / "data"), "eval": {"ks": [10]}}, "grid": {"train.lr": [0.001, 0.002]},
            "seeds": {"min": 2, "max": 4}, "out": str(tmp_path / "sw")}
    summary = run_sweep(parse_sweep(spec), log=lambda m: None, runner=runner)
    assert [a["seed"] for a in summary["added_seeds"]] == [3, 4]  # equal arms: never decided, so up to max
    assert all(a["configurations"] == ["sasrec-id", "sasrec-id-lr0.002"] for a in summary["added_seeds"])
    assert "Bonferroni over 3 planned looks" in summary["added_seeds"][0]["rule"]
    assert len(trained) == 8
    again = run_sweep(parse_sweep(spec), log=lambda m: None, runner=runner)  # resumable: nothing retrained
    assert len(trained) == 8 and [a["seed"] for a in again["added_seeds"]] == [3, 4]
    with pytest.raises(SweepError, match="min: M, max: N"):
        parse_sweep({**spec, "seeds": {"min": 3, "max": 2}})


def test_compare_of_several_pairs_is_one_holm_family(tmp_path, capsys):
    for seed in (1, 2, 3):
        write_run(tmp_path / f"kind-id_seed-{seed}", "id", seed, arm_ranks(0.20, seed))
        write_run(tmp_path / f"kind-text_seed-{seed}", "text", seed, arm_ranks(0.35, seed + 10))
    a, b = str(tmp_path / "kind-id"), str(tmp_path / "kind-text")
    from morec import api

    first, second = api.comparisons([(a, b), (b, a)], ["hr@10"])
    for out in (first, second):
        assert "Holm over 2 tests" in out["verdict"] and out["metrics"]["hr@10"]["family"] == 2
    assert first["metrics"]["hr@10"]["verdict"] == "better" and second["metrics"]["hr@10"]["verdict"] == "worse"
    assert cli.main(["compare", a, b, b, a, "--metric", "hr@10"]) == 0
    assert capsys.readouterr().out.count("Holm over 2 tests") == 2
    assert cli.main(["compare", a, b, a]) == 2  # an odd number of arms: a one-line usage error
    assert "pairs of arms" in capsys.readouterr().err
