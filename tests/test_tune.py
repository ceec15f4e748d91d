"""morec tune: an Optuna study in SQLite that resumes without re-running finished trials, never reads test while
searching, prunes from the validation curve, and never chooses a collapsed trial."""
import json

import pytest

import morec.tune
import morec.train
from morec.cli import main
from morec.train import Trainer, TrainingCollapsed
from morec.tune import open_study, parse_tune, run_tune

optuna = pytest.importorskip("optuna")
TrialState = optuna.trial.TrialState


def tune_spec(data, out, **extra):
    spec = {
        "base": {"data": str(data), "model": {"dim": 16, "n_heads": 1},
                 "train": {"batch_size": 64, "epochs": 2, "threads": 1, "progress": False, "tensorboard": False}},
        "space": {"train.lr": {"log_uniform": [1e-3, 1e-2]}, "model.dropout": {"uniform": [0.0, 0.3]},
                  "model.n_layers": {"choice": [1, 2]}},
        "trials": 4, "pruner": "none", "seed": 0, "out": str(out)}
    spec.update(extra)
    return parse_tune(spec)


@pytest.fixture
def watched(monkeypatch):
    """Which splits were ranked, and which run directories were trained, in order."""
    seen = {"splits": [], "fits": []}
    for module in (morec.train, morec.tune):
        original = module.rank_users

        def ranked(model, dataset, split, *args, _original=original, **kwargs):
            seen["splits"].append(split)
            return _original(model, dataset, split, *args, **kwargs)

        monkeypatch.setattr(module, "rank_users", ranked)
    fit = Trainer.fit

    def fitted(self, *args, **kwargs):
        seen["fits"].append((self.out.name, self.resumed))
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "fit", fitted)
    return seen


def test_interrupted_study_resumes_without_rerunning_and_reads_test_once(synth_prepared, tmp_path, monkeypatch, watched):
    spec = tune_spec(synth_prepared, tmp_path / "tune")
    run_epoch = Trainer._run_epoch

    def interrupt(self):
        run_epoch(self)
        if self.out.name == "trial-002" and self.state.epoch == 1:
            raise KeyboardInterrupt  # Ctrl-C after trial 2's first epoch (and its checkpoint)

    monkeypatch.setattr(Trainer, "_run_epoch", interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_tune(spec, log=lambda s: None)
    study = open_study(spec)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.FAIL]
    assert "test" not in watched["splits"]
    assert watched["fits"] == [("trial-000", False), ("trial-001", False), ("trial-002", False)]
    interrupted_params = study.trials[2].params

    monkeypatch.setattr(Trainer, "_run_epoch", run_epoch)
    watched["splits"].clear()
    summary = run_tune(spec, log=lambda s: None)
    # trials 0 and 1 are not trained again; trial 2 continues from its checkpoint with its parameters, then trial 3
    # (the retry is trial 3 of the study, in trial 2's directory; the next new trial is number 4)
    assert watched["fits"][3:] == [("trial-002", True), ("trial-004", False)]
    study = open_study(spec)
    retry = next(t for t in study.trials if t.user_attrs.get("resumes") == 2)
    assert retry.params == interrupted_params and retry.state == TrialState.COMPLETE
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 4
    # the search ranked valid only; test was read once, for the chosen trial
    assert watched["splits"].count("test") == 1 and watched["splits"][-1] == "test"
    assert set(watched["splits"][:-1]) == {"valid"}
    runs = {r["name"]: r for r in summary["runs"]}
    assert sorted(runs) == ["trial-000", "trial-001", "trial-002", "trial-004"]
    (best,) = summary["best"]
    assert best["valid"]["ndcg@10"] == max(r["valid_score"] for r in runs.values()) == study.best_value
    assert best["test"] is not None and best["overrides"] == study.best_trial.params
    for name in runs:
        results = json.loads((tmp_path / "tune" / "trials" / name / "results.json").read_text())
        assert (results["test"] is not None) == (name == best["name"])  # no other trial was scored on test
    assert (tmp_path / "tune" / "study.db").exists() and (tmp_path / "tune" / "sweep.md").exists()

    # finished: running again trains nothing and does not read test again
    watched["splits"].clear()
    again = run_tune(spec, log=lambda s: None)
    assert len(watched["fits"]) == 5 and watched["splits"] == []
    assert again["best"] == summary["best"]


def test_pruned_and_collapsed_trials_are_never_chosen(synth_prepared, tmp_path, monkeypatch, watched):
    spec = tune_spec(synth_prepared, tmp_path / "tune", trials=3, pruner="median", startup_trials=1, warmup_epochs=0,
                     space={"train.lr": {"choice": [0.01, 1e-7, 0.003]}})
    study = open_study(spec)
    for lr in (0.01, 1e-7, 0.003):  # a learning rate far too small: its first epoch is under the median, pruned
        study.enqueue_trial({"train.lr": lr})
    fit = Trainer.fit

    def collapse_third(self, *args, **kwargs):
        if self.out.name == "trial-002":  # as morec's detection stops a run whose loss is NaN before any epoch
            raise TrainingCollapsed("training collapsed at epoch 0: the training loss is nan")
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "fit", collapse_third)
    summary = run_tune(spec, log=lambda s: None)
    status = {r["name"]: r["status"] for r in summary["runs"]}
    assert status == {"trial-000": "done", "trial-001": "pruned", "trial-002": "collapsed"}
    assert [t.state for t in open_study(spec).trials] == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.PRUNED]
    assert summary["runs"][1]["best_epoch"] == 0 and summary["best"][0]["name"] == "trial-000"
    assert summary["best"][0]["collapsed"] == 1 and summary["tune"]["pruned"] == 1


def test_seeds_of_the_chosen_configuration_and_the_base(synth_prepared, tmp_path, capsys):
    path = tmp_path / "tune.yaml"
    spec = {"base": {"data": str(synth_prepared), "model": {"dim": 16, "n_heads": 1},
                     "train": {"batch_size": 64, "epochs": 2, "threads": 1, "progress": False, "tensorboard": False}},
            "trial": {"train": {"epochs": 1}},
            "space": {"train.lr": {"log_uniform": [1e-3, 1e-2]}}, "trials": 2, "pruner": "none",
            "seeds": [1, 2], "compare_base": True, "out": str(tmp_path / "tune")}
    path.write_text(json.dumps(spec))
    assert main(["tune", str(path)]) == 0
    summary = json.loads((tmp_path / "tune" / "sweep.json").read_text())
    arms = {s["arm"]: s for s in summary["seeds"]}
    assert arms["chosen"]["overrides"] == summary["best"][0]["overrides"] and arms["base"]["overrides"] == {}
    for arm in arms.values():
        assert [r["seed"] for r in arm["runs"]] == [1, 2] and all(r["test"] for r in arm["runs"])
        for r in arm["runs"]:
            cfg = json.loads((tmp_path / "tune" / r["dir"].split("tune/", 1)[1] / "results.json").read_text())["config"]
            assert cfg["train"]["epochs"] == 2  # the base budget, not the trials' epoch cap
    assert "seeds [1, 2]" in capsys.readouterr().out
    # the tune directory reads like a sweep's: the report finds the chosen trial and the seeds' runs, not the others
    from morec.report import find_runs

    usable = sorted(str(r.dir.relative_to(tmp_path / "tune")) for r in find_runs([tmp_path / "tune"]) if r.usable)
    assert usable == sorted([f"trials/{summary['best'][0]['name']}"] + [f"seeds/{a}/sasrec-id-s{s}" for a in ("base", "chosen")
                                                                          for s in (1, 2)])


def test_bad_tune_files_name_the_key(tmp_path, capsys):
    path = tmp_path / "tune.yaml"
    path.write_text("base: {data: x}\nspace: {train.lr: {loguniform: [1, 2]}}\nout: o\n")
    assert main(["tune", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("morec: error:") and "train.lr" in err and "log_uniform" in err


def test_two_processes_share_one_study(synth_prepared, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    spec = {"base": {"data": str(synth_prepared), "model": {"dim": 16, "n_heads": 1},
                     "train": {"batch_size": 64, "epochs": 1, "threads": 1, "progress": False, "tensorboard": False}},
            "space": {"train.lr": {"log_uniform": [1e-3, 1e-2]}}, "trials": 4, "pruner": "none",
            "out": str(tmp_path / "tune")}
    path = tmp_path / "tune.yaml"
    path.write_text(json.dumps(spec))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "morec", "tune", str(path)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    study = open_study(parse_tune(spec))
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert 4 <= len(done) <= 5 and len(done) == len(study.trials)  # the second process may start one more
    assert len({t.user_attrs["dir"] for t in done}) == len(done)  # no trial directory shared
    summary = json.loads((tmp_path / "tune" / "sweep.json").read_text())
    assert summary["best"][0]["test"] is not None and summary["tune"]["finished"] == len(done)
