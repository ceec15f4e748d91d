"""`morec study`: the plan follows the dataset's content, the budget is honoured or refused, a killed study resumes
without training a run twice, a tie never names a winner, and the HTML report renders in a real browser."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from browser import check_in_chromium
from morec.data.synthetic import SynthConfig, write_synthetic
from morec.ranks import save_ranks
from morec.study.decide import verdicts
from morec.study.plan import Content, dataset_content, fit_budget, format_duration, parse_duration, plan_arms
from morec.study.report import ArmSummary, decision

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--model.dim=16", "--train.epochs=3", "--eval.valid_from=0", "--train.batch_size=64"]


def morec(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "morec", *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                          **kw)


def prepared(tmp: Path, name: str, image_size: int, n_new: int = 0) -> Path:
    raw = write_synthetic(SynthConfig(n_users=120, n_items=60, n_topics=4, image_size=image_size, n_new_items=n_new,
                                      seq_len_min=6, seq_len_max=12), tmp / f"{name}-raw")
    done = morec("data", "prepare", raw, "--out", tmp / name)
    assert done.returncode == 0, done.stderr
    return tmp / name


@pytest.fixture(scope="module")
def text_data(tmp_path_factory) -> Path:
    return prepared(tmp_path_factory.mktemp("study"), "shop", image_size=0, n_new=6)


def test_plan_follows_the_datasets_content(tmp_path, text_data):
    keys = lambda arms: [a.key for a in arms]  # noqa: E731
    assert dataset_content(PreparedDatasetOf(text_data)) == Content(text=True, images=False)
    assert keys(plan_arms(Content(True, False))) == ["most-popular", "idrec", "text-ts", "text-side", "text-side-id",
                                                     "text-top1"]
    both = keys(plan_arms(Content(True, True)))
    assert {"image-ts", "image-side", "text-image-side-id"} <= set(both) and "text-side-id" not in both
    assert keys(plan_arms(Content(False, True))) == ["most-popular", "idrec", "image-ts", "image-side", "image-side-id"]
    assert keys(plan_arms(Content(False, False))) == ["most-popular", "idrec"]


def PreparedDatasetOf(path):  # noqa: N802 - reads like the class it wraps
    from morec.data.dataset import PreparedDataset

    return PreparedDataset(path)


def test_a_dataset_without_content_plans_idrec_only_and_says_why(tmp_path):
    rng = np.random.default_rng(0)
    rows = [(u, int(i), t) for u in range(60) for t, i in enumerate(rng.choice(40, size=8, replace=False))]
    pd.DataFrame(rows, columns=["user", "item", "timestamp"]).to_csv(tmp_path / "clicks.csv", index=False)
    assert morec("data", "prepare", tmp_path / "clicks.csv", "--out", tmp_path / "p").returncode == 0
    done = morec("study", tmp_path / "p", "--out", tmp_path / "s", "--budget", "30m", "--dry-run", *TINY)
    assert done.returncode == 0, done.stderr
    assert "IDRec" in done.stdout and "TS" not in done.stdout
    assert "holds no item content" in done.stdout


def test_fit_budget_keeps_arms_by_priority_then_lowers_seeds():
    arms = plan_arms(Content(True, False))
    seconds = {"idrec": 10, "text-ts": 10, "text-side": 20, "text-side-id": 20, "text-top1": 100}
    fit = fit_budget(arms, seconds, budget=3 * 60, seeds_min=3, jobs=1)
    # 3 seeds: IDRec 30 + TS 30 + Side+ID 60 + Side 60 = 180 fits; top-1 does not
    assert [a.key for a in fit.arms if a.trains] == ["idrec", "text-ts", "text-side", "text-side-id"]
    assert fit.seeds == 3 and fit.expected_seconds == 180
    assert any("top-1" in n for n in fit.left_out)
    small = fit_budget(arms, seconds, budget=25, seeds_min=3, jobs=1)  # only one seed of IDRec + TS fits
    assert small.seeds == 1 and [a.key for a in small.arms if a.trains] == ["idrec", "text-ts"]
    with pytest.raises(ValueError, match=r"too small for even one seed of IDRec, which needs about 10s"):
        fit_budget(arms, seconds, budget=5, seeds_min=3, jobs=2)


def test_durations_read_and_print():
    assert parse_duration("40m") == 2400 and parse_duration("1h30m") == 5400 and parse_duration("90") == 90
    assert format_duration(5400) == "1h30m" and format_duration(75) == "1m15s"
    with pytest.raises(ValueError, match="--budget"):
        parse_duration("soon")


def test_a_budget_too_small_for_one_idrec_seed_is_refused_with_the_time_needed(tmp_path, text_data):
    done = morec("study", text_data, "--out", tmp_path / "s", "--budget", "1s", "--arms", "text-ts", *TINY)
    assert done.returncode == 2
    assert "too small for even one seed of IDRec, which needs about" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "s" / "runs").exists()


def _fake_run(path: Path, ranks: np.ndarray) -> Path:
    path.mkdir(parents=True)
    save_ranks(path, ranks, ranks)
    return path


def test_a_tie_is_equivalent_or_undecided_never_a_winner(tmp_path):
    rng = np.random.default_rng(0)
    users = 400
    ref, arm = [], []
    for seed in range(3):
        ranks = rng.integers(1, 60, size=users)
        ref.append(_fake_run(tmp_path / f"idrec-s{seed}", ranks))
        arm.append(_fake_run(tmp_path / f"ts-s{seed}", ranks.copy()))  # the same ranks: a perfect tie
    found = verdicts(ref, {"text-ts": arm}, "ndcg@10", alpha=0.05, margin=0.05, looks=3)
    assert found["text-ts"].verdict.split(" ")[0] in ("equivalent", "no")
    summaries = {}
    for a in plan_arms(Content(True, False))[:3]:
        s = ArmSummary(a, test={"hr@10": [0.1] * 3, "ndcg@10": [0.05] * 3})
        summaries[a.key] = s
    text = decision(summaries, found, "shop", 0.05)
    assert "use **" not in text.lower() and "beats" not in text.split("\n")[0].replace("no arm beats", "")


def _run_study(args, **kw):
    return subprocess.Popen([sys.executable, "-m", "morec", "study", *map(str, args)], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, **kw)


def _wait_for_results(runs: Path, count: int, proc) -> None:
    deadline = time.time() + 300
    while time.time() < deadline and len(list(runs.glob("*/results.json"))) < count and proc.poll() is None:
        time.sleep(0.3)
    assert len(list(runs.glob("*/results.json"))) >= count, "no run finished in time"


def _trainers_of(out: Path) -> list[str]:
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return [line for line in ps.splitlines() if "morec train" in line and str(out) in line]


def _started(log: str) -> set[str]:
    return {line.split()[1] for line in log.splitlines() if line.startswith("[study] ")
            and line.split()[2:3] in (["starts"], ["resumes"])}


@pytest.mark.integration
def test_study_runs_resumes_after_kills_and_reports(tmp_path, text_data):
    out = tmp_path / "study"
    runs = out / "runs"
    args = [text_data, "--out", out, "--budget", "20m", "--arms", "text-ts", "--seeds-min", "2", "--seeds-max", "2",
            *TINY]
    # 1: SIGTERM to the study alone stops its training processes too (none left writing beside a resumed study)
    first = _run_study(args)
    _wait_for_results(runs, 1, first)
    first.send_signal(signal.SIGTERM)
    first.wait(timeout=60)
    time.sleep(1)
    assert not _trainers_of(out), _trainers_of(out)
    finished = {p.parent.name: p.stat().st_mtime_ns for p in runs.glob("*/results.json")}
    # 2: SIGKILL to the whole process group, as a lost terminal would, after one more run finished
    second = _run_study(args)
    _wait_for_results(runs, len(finished) + 1, second)
    os.killpg(second.pid, signal.SIGKILL)
    second.wait()
    log2 = second.stdout.read()
    assert not _started(log2) & set(finished), f"trained twice: {_started(log2) & set(finished)}"
    finished = {p.parent.name: p.stat().st_mtime_ns for p in runs.glob("*/results.json")}
    # 3: the study finishes what is left and trains nothing twice
    third = _run_study(args)
    log3, _ = third.communicate(timeout=600)
    assert third.returncode == 0, log3
    assert not _started(log3) & set(finished), f"trained twice: {_started(log3) & set(finished)}"
    for name, mtime in finished.items():
        assert (runs / name / "results.json").stat().st_mtime_ns == mtime
    assert sorted(p.parent.name for p in runs.glob("*/results.json")) == ["idrec-s1", "idrec-s2", "text-ts-s1",
                                                                          "text-ts-s2"]
    for run in (d for d in runs.iterdir() if d.is_dir()):  # a resumed run continued its epochs, none twice
        epochs = [json.loads(x)["epoch"] for x in (run / "metrics.jsonl").read_text().splitlines()]
        assert epochs == list(range(len(epochs)))
    report = (out / "report" / "study.md").read_text()
    assert report.startswith("# Is content worth it on") and "Text TS (two-stage) vs IDRec" in report
    html_page = out / "report" / "study.html"
    assert "data:image/png;base64," in html_page.read_text()
    check_in_chromium(html_page, tmp_path, ["Is content worth it on", "vs IDRec"])
