"""Paired statistics over users, on runs with known per-user ranks: the report's mean ± std over seeds,
Improv. with its interval and p, the significance mark and the verdicts; `morec compare` and its refusals."""
import json
import shutil

import numpy as np
import pytest
import yaml

from morec import cli
from morec.evaluate import metrics_from_ranks
from morec.ranks import save_ranks
from morec.report import find_runs, group_seeds, load_arm, write_report
from morec.stats import format_improv, paired, user_scores
from morec.verdict import ComparisonError, compare_arms

N_USERS, N_ITEMS = 600, 500


def arm_ranks(hit_rate: float, seed: int) -> np.ndarray:
    """Ranks where a user hits the top 10 with probability hit_rate (rank 1..10), else rank 11..N_ITEMS."""
    rng = np.random.default_rng(seed)
    hit = rng.random(N_USERS) < hit_rate
    return np.where(hit, rng.integers(1, 11, N_USERS), rng.integers(11, N_ITEMS, N_USERS))


def write_run(path, kind: str, seed: int, ranks: np.ndarray, epochs=300, patience=10, stop="patience",
              fingerprint="abc"):
    path.mkdir(parents=True)
    enc = {"kind": kind, "mode": "e2e" if kind == "id" else "frozen", "mlp_layers": 0, "fusion": "none",
           "pretrained": "minilm"}
    config = {"data": "data/prepared/toy", "out": str(path), "model": {"backbone": "sasrec", "encoder": enc},
              "train": {"seed": seed, "epochs": epochs, "patience": patience},
              "eval": {"ks": [10], "select_metric": "ndcg@10", "mask_history": True}}
    metrics = metrics_from_ranks(ranks, [10])
    (path / "results.json").write_text(json.dumps({
        "best_epoch": epochs - 1 if stop == "epochs" else 5, "valid": metrics, "test": metrics, "stop_reason": stop,
        "capped": stop == "epochs", "valid_rising_at_cap": stop == "epochs",
        "dataset": {"name": "toy", "n_users": N_USERS, "prepare": {}, "fingerprint": fingerprint},
        "config": config}))
    save_ranks(path, ranks, ranks)


def test_paired_statistics_on_known_ranks():
    a = [arm_ranks(0.20, s) for s in (1, 2, 3)]
    better = [arm_ranks(0.35, s + 10) for s in (1, 2, 3)]
    c = paired(a, better, "hr@10")
    hr_a = np.mean([metrics_from_ranks(r, [10])["hr@10"] for r in a])
    hr_b = np.mean([metrics_from_ranks(r, [10])["hr@10"] for r in better])
    # the means pool every seed; Improv. is their relative difference; the interval holds it and excludes 0
    assert c.mean_a == pytest.approx(hr_a) and c.mean_b == pytest.approx(hr_b)
    assert c.improv == pytest.approx((hr_b - hr_a) / hr_a)
    assert c.improv_ci[0] < c.improv < c.improv_ci[1] and c.improv_ci[0] > 0
    assert c.p < 0.001 and c.significant and c.verdict == "better"
    assert paired(better, a, "hr@10").verdict == "worse"
    # the same data with 1 in 300 users changed: no detectable difference, p far from significance
    near = [r.copy() for r in a]
    for r in near:
        r[:2] = 1
    c = paired(a, near, "ndcg@10")
    assert c.verdict == "no detectable difference" and not c.significant and c.p > 0.05
    # the shift worked out by hand: users 0 and 1 of each seed go from their NDCG@10 to 1
    ndcg = lambda r: 1 / np.log2(r + 1) if r <= 10 else 0.0  # noqa: E731
    shift = np.mean([sum(1 - ndcg(r[u]) for u in (0, 1)) for r in a]) / N_USERS
    assert c.diff == pytest.approx(shift) and shift > 0
    assert c.diff_ci[0] < 0 < c.diff_ci[1] and c.user_diff_ci[0] <= 0 < c.user_diff_ci[1]
    # a user's score is its mean over seeds; rank 0 (no target in the split) is left out
    s = user_scores([np.array([1, 11, 0]), np.array([11, 11, 0])], "hr@10")
    assert s[:2].tolist() == [0.5, 0.0] and np.isnan(s[2])
    same = paired(a, a, "hr@10")
    assert same.p == 1.0 and same.verdict == "no detectable difference" and same.improv == 0.0


def make_sweep(root, better_rate: float, stop_b="patience", epochs_b=300):
    for seed in (1, 2, 3):
        write_run(root / f"kind-id_seed-{seed}", "id", seed, arm_ranks(0.20, seed))
        write_run(root / f"kind-text_seed-{seed}", "text", seed, arm_ranks(better_rate, seed + 10),
                  stop=stop_b if seed == 2 else "patience", epochs=epochs_b)


def test_few_hits_give_no_unbounded_improv_interval_and_no_warnings():
    """A new-item subset has a handful of hits: some bootstrap resamples of A hold none, so (B - A) / A is
    infinite there. The absolute interval still decides; Improv. is shown without an interval, never as inf/nan."""
    import warnings

    a, b = np.full(300, 50), np.full(300, 50)  # rank 50 misses HR@10
    a[:2], b[100:109] = 1, 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c = paired([a], [b], "hr@10")
        gone = paired([b], [np.full(300, 50)], "hr@10")  # B never hits: Improv. -100% in every defined resample
    assert c.improv == pytest.approx(3.5) and c.improv_ci is None
    # the absolute interval decides, so it is the one printed
    low, high = c.diff_ci
    assert format_improv(c) == f"+350.00% (few hits: diff +0.0233 [{low:+.4f}, {high:+.4f}])"
    assert np.all(np.isfinite(c.diff_ci)) and c.diff_ci[0] < c.diff < c.diff_ci[1]
    assert gone.improv == -1 and gone.improv_ci is None and gone.verdict == "worse"


def test_report_on_seeded_runs_shows_spread_seeds_interval_and_verdict(tmp_path):
    make_sweep(tmp_path / "sig", 0.35, stop_b="epochs")
    groups = group_seeds(find_runs([tmp_path / "sig"]))
    assert sorted(len(g.runs) for g in groups) == [3, 3]
    write_report([tmp_path / "sig"], tmp_path / "out")
    t5 = (tmp_path / "out" / "table5_ts_vs_e2e.md").read_text()
    ids = metrics_from_ranks(np.concatenate([arm_ranks(0.20, s) for s in (1, 2, 3)]), [10])
    hrs = [100 * metrics_from_ranks(arm_ranks(0.20, s), [10])["hr@10"] for s in (1, 2, 3)]
    assert f"{np.mean(hrs):.2f} ± {np.std(hrs, ddof=1):.2f}" in t5  # mean ± sample std over the 3 seeds
    # the hit share drawn by arm_ranks' generator, read straight from it
    assert ids["hr@10"] == pytest.approx(np.mean([np.random.default_rng(s).random(N_USERS) < 0.20 for s in (1, 2, 3)]))
    row = next(line for line in t5.splitlines() if "Improv." in line)
    assert " *" in row and "[+" in row and "<0.001" in row  # significant: interval, p, mark
    assert "capped 1/3" in t5  # seed 2 of MoRec stopped at its epoch cap
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## Verdicts" in report and "HR@10 better" in report and "capped" in report.split("## Verdicts")[1]
    assert "kind-text_seed-{1,2,3}" in (tmp_path / "out" / "runs.md").read_text()  # the arm, in the runs index

    make_sweep(tmp_path / "same", 0.20)  # MoRec drawn like IDRec (other seeds): no real difference
    write_report([tmp_path / "same"], tmp_path / "out2")
    row = next(line for line in (tmp_path / "out2" / "table5_ts_vs_e2e.md").read_text().splitlines() if "Improv." in line)
    assert " *" not in row
    assert "no detectable difference" in (tmp_path / "out2" / "report.md").read_text()


def test_compare_command_and_its_refusals(tmp_path, capsys):
    make_sweep(tmp_path / "sw", 0.35)
    arm = load_arm(tmp_path / "sw" / "kind-id")  # a sweep configuration without its _seed-N suffix
    assert len(arm.runs) == 3
    assert cli.main(["compare", str(tmp_path / "sw" / "kind-id"), str(tmp_path / "sw" / "kind-text"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["metrics"]["ndcg@10"]["verdict"] == "better" and out["metrics"]["hr@10"]["seeds_a"] == 3
    assert "B vs A on test (3 vs 3 seeds, 600 users; Holm over 2 tests)" in out["verdict"]
    # another dataset (fingerprint) is refused with the reason
    write_run(tmp_path / "other", "text", 1, arm_ranks(0.3, 5), fingerprint="zzz")
    with pytest.raises(ComparisonError, match="different prepared datasets"):
        compare_arms(arm, load_arm(tmp_path / "other"), ["hr@10"])
    # unequal budgets are refused unless allowed, and then the verdict says so
    write_run(tmp_path / "short", "text", 1, arm_ranks(0.3, 5), patience=6)
    assert cli.main(["compare", str(tmp_path / "sw" / "kind-id"), str(tmp_path / "short")]) == 2
    assert "different budgets" in capsys.readouterr().err
    res = compare_arms(arm, load_arm(tmp_path / "short"), ["hr@10"])
    assert "unequal budgets: patience 10 vs 6" in res["verdict"]
    # a folder mixing configurations is not one arm
    with pytest.raises(FileNotFoundError, match="2 configurations"):
        load_arm(tmp_path / "sw")


def test_seeds_group_across_a_setting_added_between_them(tmp_path):
    """A seed trained before a setting existed (absent from its saved config) groups with seeds saved with that
    setting at its default; a seed with another value of it is another configuration."""
    for seed in (1, 2, 3):
        write_run(tmp_path / f"kind-id_seed-{seed}", "id", seed, arm_ranks(0.20, seed))
    for seed, schedule in ((2, "constant"), (3, "cosine")):
        f = tmp_path / f"kind-id_seed-{seed}" / "results.json"
        results = json.loads(f.read_text())
        results["config"]["train"]["schedule"] = schedule
        f.write_text(json.dumps(results))
    groups = group_seeds(find_runs([tmp_path]))
    assert sorted(len(g.runs) for g in groups) == [1, 2]


def test_the_api_and_morec_compare_give_one_answer_from_the_stored_ranks(tmp_path, capsys):
    from morec import api

    make_sweep(tmp_path / "sw", 0.35)
    ids = [tmp_path / "sw" / f"kind-id_seed-{s}" for s in (1, 2, 3)]
    texts = [tmp_path / "sw" / f"kind-text_seed-{s}" for s in (1, 2, 3)]
    for run in ids + texts:  # no weights: only the stored per-user ranks can answer
        assert not (run / "model.safetensors").exists()
    got = api.compare_runs(ids, texts, "ndcg@10", names=("IDRec", "MoRec"))
    assert cli.main(["compare", str(tmp_path / "sw" / "kind-id"), str(tmp_path / "sw" / "kind-text"),
                     "--metric", "ndcg@10", "--json"]) == 0
    cmd = json.loads(capsys.readouterr().out)["metrics"]["ndcg@10"]
    def ndcg(ranks):  # plain NDCG@10 per user, not morec's
        return np.where(ranks <= 10, 1 / np.log2(ranks + 1.0), 0.0)

    expected = (np.mean([ndcg(arm_ranks(0.35, s + 10)).mean() for s in (1, 2, 3)])
                - np.mean([ndcg(arm_ranks(0.20, s)).mean() for s in (1, 2, 3)]))
    assert got["difference"] == cmd["diff"] == pytest.approx(expected)
    assert got["ci95"] == cmd["diff_ci"] and got["ci95"][0] < expected < got["ci95"][1] and got["ci95"][0] > 0
    assert got["p"] == cmd["p"] < 0.05 and got["improv_ci95"] == cmd["improv_ci"]
    assert got["verdict"] == "MoRec better" and cmd["verdict"] == "better" and got["seeds"] == 3
    # the same refusals as the command: another dataset, or another budget unless allowed
    write_run(tmp_path / "other", "text", 1, arm_ranks(0.3, 5), fingerprint="zzz")
    with pytest.raises(ComparisonError, match="different prepared datasets"):
        api.compare_runs(ids, [tmp_path / "other"])
    write_run(tmp_path / "short", "text", 1, arm_ranks(0.3, 5), patience=6)
    with pytest.raises(ComparisonError, match="different budgets"):
        api.compare_runs(ids, [tmp_path / "short"])
    assert "unequal budgets" in api.compare_runs(ids, [tmp_path / "short"], allow_unequal_budgets=True)["verdict_line"]


def test_a_copied_or_repeated_seed_counts_once(tmp_path, capsys):
    """A report over both the runs and their committed copies (or a rerun of one seed) must not pool a seed
    twice: that would show 4 seeds and narrow the interval without new evidence."""
    make_sweep(tmp_path / "sw", 0.35)
    shutil.copytree(tmp_path / "sw" / "kind-id_seed-1", tmp_path / "copies" / "idrec" / "seed-1")
    groups = group_seeds(find_runs([tmp_path / "sw", tmp_path / "copies"]))
    assert sorted(len(g.runs) for g in groups) == [3, 3]
    assert "repeats seed 1" in capsys.readouterr().err
    write_report([tmp_path / "sw", tmp_path / "copies"], tmp_path / "out")
    t5 = (tmp_path / "out" / "table5_ts_vs_e2e.md").read_text()
    assert "(3 vs 3 seeds" in t5 and "4 seeds" not in t5
    verdicts = (tmp_path / "out" / "verdicts.md").read_text().splitlines()
    assert len([v for v in verdicts if v.startswith("- ")]) == len({v for v in verdicts if v.startswith("- ")})
