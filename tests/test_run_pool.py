"""Several runs at once (morec.run_pool): `morec sweep --jobs 2` trains the same runs to the same numbers as one
at a time, its children have their threads pinned, a killed parallel sweep resumes, and `morec tune --jobs 2`
finishes its trials, never reading test, reproducibly for a seed."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import morec.run_pool
from morec.sweep import parse_sweep, run_sweep

ROOT = Path(__file__).resolve().parents[1]


def sweep_spec(data, out, epochs=2, threads=1):
    return {"base": {"data": str(data), "model": {"dim": 16, "max_len": 10, "n_heads": 1},
                     "train": {"epochs": epochs, "threads": threads, "progress": False, "batch_size": 64,
                               "tensorboard": False}},
            "grid": {"train.lr": [1e-3, 3e-3]}, "seeds": [1, 2], "out": str(out)}


@pytest.fixture
def children(monkeypatch):
    """Every `morec train` process the pool starts: its command, its environment, and how many ran beside it."""
    seen = {"cmds": [], "envs": [], "live": [], "most_at_once": 0}
    popen = subprocess.Popen

    def recording(cmd, *args, **kwargs):
        seen["live"] = [p for p in seen["live"] if p.poll() is None]
        proc = popen(cmd, *args, **kwargs)
        seen["live"].append(proc)
        seen["most_at_once"] = max(seen["most_at_once"], len(seen["live"]))
        seen["cmds"].append(cmd)
        seen["envs"].append(kwargs["env"])
        return proc

    monkeypatch.setattr(morec.run_pool.subprocess, "Popen", recording)
    monkeypatch.chdir(ROOT)  # the children import this checkout's morec
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    return seen


def per_run(summary) -> dict:
    return {Path(r["dir"]).name: json.loads((Path(r["dir"]) / "results.json").read_text()) for r in summary["runs"]}


def numbers(results: dict) -> tuple:
    return results["best_epoch"], results["valid"], results["test"]


@pytest.mark.parametrize("seeds", [[1, 2], {"min": 1, "max": 2}], ids=["seeds", "seeds-until-decided"])
def test_sweep_with_two_jobs_trains_the_same_runs_to_the_same_numbers(tmp_path, tiny_data, children, seeds):
    spec = {**sweep_spec(tiny_data, tmp_path / "one"), "seeds": seeds}
    serial = run_sweep(parse_sweep(spec), log=lambda s: None)
    assert children["cmds"] == []  # one at a time stays in this process
    parallel = run_sweep(parse_sweep({**spec, "out": str(tmp_path / "two")}), log=lambda s: None, jobs=2)
    one, two = per_run(serial), per_run(parallel)
    assert sorted(one) == sorted(two) and len(two) >= 2
    for name in one:  # training is deterministic per seed on CPU: the same seed gives the same numbers
        assert numbers(two[name]) == numbers(one[name]), name
    assert [r["status"] for r in parallel["runs"]] == ["done"] * len(two)
    strip = lambda rows: [{k: v for k, v in b.items() if k not in ("dir", "dirs")} for b in rows]  # noqa: E731
    assert strip(parallel["best"]) == strip(serial["best"])
    assert [{k: v for k, v in a.items() if k != "seconds"} for a in parallel.get("added_seeds", [])] == \
        [{k: v for k, v in a.items() if k != "seconds"} for a in serial.get("added_seeds", [])]
    # two `morec train` children at once, each with one torch thread and its OpenMP / MKL pools pinned to it
    assert len(children["cmds"]) == len(two) and children["most_at_once"] == 2
    for cmd, env in zip(children["cmds"], children["envs"]):
        assert cmd[1:4] == ["-m", "morec", "train"] and cmd.count("--train.threads=1") == 1
        assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "1"


def test_threads_per_run_never_oversubscribe_the_cores(monkeypatch):
    monkeypatch.setattr(morec.run_pool, "cores", lambda: 8)
    assert morec.run_pool.pinned_threads(2) == 4  # train.threads 0 (torch's default): the cores' share
    assert morec.run_pool.pinned_threads(2, 2) == 2
    assert morec.run_pool.pinned_threads(2, 8) == 4  # asked for more than its share: capped
    assert morec.run_pool.pinned_threads(16, 1) == 1


def _trainers_of(out: Path) -> list[str]:
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return [line for line in ps.splitlines() if "morec train" in line and str(out) in line]


def _until_more_finish(proc: subprocess.Popen, runs: Path, than: int) -> None:
    deadline = time.monotonic() + 300
    while len(list(runs.glob("*/results.json"))) <= than and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)


def test_a_killed_parallel_sweep_resumes_without_training_a_run_twice(tmp_path, tiny_data):
    spec = {**sweep_spec(tiny_data, tmp_path / "sw", epochs=4), "grid": {"train.lr": [1e-3, 2e-3, 3e-3]}}
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(yaml.safe_dump(spec))
    runs = tmp_path / "sw"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "morec", "sweep", str(sweep_file), "--jobs", "2"]

    def start():
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)

    # 1: SIGTERM to the sweep alone stops its training processes too
    first = start()
    _until_more_finish(first, runs, 0)
    first.send_signal(signal.SIGTERM)
    first.wait(timeout=60)
    time.sleep(1)
    assert not _trainers_of(runs), _trainers_of(runs)
    # 2: SIGKILL to the whole process group, as a lost terminal would, after one more run finished
    second = start()
    _until_more_finish(second, runs, len(list(runs.glob("*/results.json"))))
    os.killpg(second.pid, signal.SIGKILL)
    second.wait()
    finished = {p.parent.name: p.stat().st_mtime_ns for p in runs.glob("*/results.json")}
    assert 2 <= len(finished) < 6, second.stdout.read()
    # 3: the rest, nothing trained twice
    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    for name, mtime in finished.items():  # read back, not trained again
        assert (runs / name / "results.json").stat().st_mtime_ns == mtime
        assert f"{name}: finished before" in again.stdout
    summary = json.loads((runs / "sweep.json").read_text())
    assert [r["status"] for r in summary["runs"]] == ["done"] * 6
    for run in summary["runs"]:  # a resumed run continued its epochs, none twice
        epochs = [json.loads(x)["epoch"] for x in (Path(run["dir"]) / "metrics.jsonl").read_text().splitlines()]
        assert epochs == list(range(4)), run["name"]
    reference = run_sweep(parse_sweep({**spec, "out": str(tmp_path / "ref")}), log=lambda s: None)
    assert {k: numbers(v) for k, v in per_run(summary).items()} == {k: numbers(v) for k, v in per_run(reference).items()}


def test_cli_refuses_zero_jobs(tmp_path, tiny_data, capsys):
    from morec.cli import main

    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(yaml.safe_dump(sweep_spec(tiny_data, tmp_path / "sw")))
    assert main(["sweep", str(sweep_file), "--jobs", "0"]) == 2
    assert "--jobs must be at least 1" in capsys.readouterr().err


def test_tune_with_two_jobs_finishes_its_trials_reproducibly(tmp_path, tiny_data, children):
    pytest.importorskip("optuna")
    from morec.tune import open_study, parse_tune, run_tune

    def spec(out):
        return parse_tune({**{k: v for k, v in sweep_spec(tiny_data, out).items() if k in ("base", "out")},
                           "space": {"train.lr": {"log_uniform": [1e-3, 1e-2]}, "model.dropout": {"uniform": [0.0, 0.3]}},
                           "trials": 4, "pruner": "median", "startup_trials": 2, "warmup_epochs": 0, "seed": 3})

    summary = run_tune(spec(tmp_path / "a"), log=lambda s: None, jobs=2)
    study = open_study(spec(tmp_path / "a"))
    TrialState = pytest.importorskip("optuna").trial.TrialState
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials) == 4
    assert len(study.trials) == 4 and children["most_at_once"] == 2
    assert all("--no-test" in cmd for cmd in children["cmds"])  # a search trial never reads test
    best = summary["best"][0]["name"]
    for t in study.trials:  # (a pruned trial's process may have been stopped before it wrote results)
        if t.state == TrialState.COMPLETE:
            results = json.loads((tmp_path / "a" / "trials" / t.user_attrs["dir"] / "results.json").read_text())
            assert (results["test"] is not None) == (t.user_attrs["dir"] == best)  # only the choice, once
    run_tune(spec(tmp_path / "b"), log=lambda s: None, jobs=2)
    again = open_study(spec(tmp_path / "b"))
    assert [t.params for t in again.trials] == [t.params for t in study.trials]
    assert [t.value for t in again.trials] == [t.value for t in study.trials]
    assert [t.state for t in again.trials] == [t.state for t in study.trials]  # pruned alike, however busy


def test_a_trial_that_ends_between_two_looks_is_pruned_as_if_watched(tmp_path, tiny_data, monkeypatch):
    """On a busy machine the watcher may never see a trial's epochs before its process ends: the pruner then
    sees them when it ends, so the same trials are pruned (seed 3: a trial below the median after epoch 0)."""
    optuna = pytest.importorskip("optuna")
    import morec.tune_processes as tp
    from morec.tune import open_study, parse_tune, run_tune

    def spec(out):
        return parse_tune({**{k: v for k, v in sweep_spec(tiny_data, out).items() if k in ("base", "out")},
                           "space": {"train.lr": {"log_uniform": [1e-3, 1e-2]}, "model.dropout": {"uniform": [0.0, 0.3]}},
                           "trials": 4, "pruner": "median", "startup_trials": 2, "warmup_epochs": 0, "seed": 3})

    run_tune(spec(tmp_path / "watched"), log=lambda s: None, jobs=2)
    run_all = tp.run_all
    monkeypatch.setattr(tp, "run_all", lambda *a, watch=None, **kw: run_all(*a, watch=lambda job: False, **kw))
    run_tune(spec(tmp_path / "blind"), log=lambda s: None, jobs=2)
    watched, blind = open_study(spec(tmp_path / "watched")), open_study(spec(tmp_path / "blind"))
    assert [t.state for t in blind.trials] == [t.state for t in watched.trials]
    assert [t.value for t in blind.trials] == [t.value for t in watched.trials]
    assert optuna.trial.TrialState.PRUNED in [t.state for t in blind.trials]
