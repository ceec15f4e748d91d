"""Sweeps: every combination runs once, an interrupted sweep resumes without redoing finished runs, the best
of each group is chosen on validation (never test), and collapsed runs are detected and never chosen."""
import json

import pytest
import yaml

from morec import cli
from morec.sweep import SweepError, default_runner, expand, load_sweep, parse_sweep, run_name, run_sweep
from morec.train import Trainer, TrainingCollapsed, train

from metric_reference import plain_metrics


def base(data, **train):
    return {"data": str(data), "model": {"dim": 16, "max_len": 10},
            "train": {"epochs": 2, "threads": 1, "progress": False, "batch_size": 64, **train}}


def quiet(s):
    pass


def test_grid_expands_to_named_runs(tmp_path, tiny_data):
    spec = parse_sweep({"base": base(tiny_data), "out": str(tmp_path / "sw"),
                        "grid": {"model.backbone": ["sasrec", "dssm"], "train.lr,model.encoder.lr": [[1e-3, 1e-4], [1e-4, 5e-5]]},
                        "group_by": ["model.backbone"]})
    runs = expand(spec)
    # named by what tells them apart: the encoder lr goes with the lr, and 0.001 is the base's lr
    assert [r.name for r in runs] == ["sasrec-id", "sasrec-id-trainlr0.0001", "dssm-id", "dssm-id-trainlr0.0001"]
    assert runs[1].config.train.lr == 1e-4 and runs[1].config.model.encoder.lr == 5e-5
    assert runs[2].config.out == str(tmp_path / "sw" / runs[2].name) and runs[2].group == {"model.backbone": "dssm"}
    # the long names of earlier versions (kept for their sweep directories)
    assert run_name({"train.lr": 1e-3, "model.lr": 2}) == "train.lr-0.001_model.lr-2"  # short keys would clash
    with pytest.raises(SweepError, match="varies 2 keys"):
        parse_sweep({"base": {}, "out": "x", "grid": {"train.lr,model.encoder.lr": [1e-3]}})
    with pytest.raises(SweepError, match="unknown config key"):
        expand(parse_sweep({"base": base(tiny_data), "out": "x", "grid": {"train.lrr": [1]}}))


def test_interrupted_sweep_resumes_without_redoing_finished_runs(tmp_path, tiny_data):
    spec = parse_sweep({"base": base(tiny_data, epochs=3), "out": str(tmp_path / "sw"),
                        "grid": {"model.backbone": ["sasrec", "dssm"], "train.lr": [1e-3, 3e-3]},
                        "group_by": ["model.backbone"]})
    calls = []

    def crash_in_third(run, resume, log):
        calls.append((run.name, resume))
        if len(calls) == 3:  # interrupted after the 2nd epoch of the 3rd run (its epoch-0 checkpoint written)
            def log_then_crash(line):
                if line.startswith("epoch   1"):
                    raise KeyboardInterrupt
            return default_runner(run, resume, log_then_crash)
        return default_runner(run, resume, log)

    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, quiet, crash_in_third)
    names = [r.name for r in expand(spec)]
    assert [c[0] for c in calls] == names[:3]
    finished = {n: (tmp_path / "sw" / n / "results.json").stat().st_mtime_ns for n in names[:2]}
    assert not (tmp_path / "sw" / names[2] / "results.json").exists()

    calls.clear()
    counting = lambda run, resume, log: calls.append((run.name, resume)) or default_runner(run, resume, log)  # noqa: E731
    summary = run_sweep(spec, quiet, counting)
    assert calls == [(names[2], True), (names[3], False)]  # the finished two are not trained again
    assert {n: (tmp_path / "sw" / n / "results.json").stat().st_mtime_ns for n in names[:2]} == finished
    assert [r["how"] for r in summary["runs"]] == ["skipped", "skipped", "resumed", "trained"]
    epochs = [json.loads(line)["epoch"] for line in (tmp_path / "sw" / names[2] / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [0, 1, 2]  # the resumed run continued from its checkpoint: every epoch logged once

    calls.clear()
    again = run_sweep(spec, quiet, counting)  # all done: nothing runs, same choice
    assert calls == [] and again["best"] == summary["best"]
    assert (tmp_path / "sw" / "sweep.json").exists() and "Best configuration of each group" in (tmp_path / "sw" / "sweep.md").read_text()


def fake_runner(numbers):
    """A runner that trains nothing: writes results with the given (valid, test, stop_reason) per lr."""
    calls = []

    def runner(run, resume, log):
        from morec.config import to_dict

        valid, test, stop = numbers[run.config.train.lr]
        calls.append(run.name)
        results = {"best_epoch": 1, "valid": {"hr@10": valid, "ndcg@10": valid}, "test": {"hr@10": test, "ndcg@10": test},
                   "test_subsets": None, "stop_reason": stop, "config": to_dict(run.config)}
        if stop == "collapsed":
            results["collapse"] = "training collapsed at epoch 1: lower train.lr and model.encoder.lr"
        run.dir.mkdir(parents=True, exist_ok=True)
        (run.dir / "results.json").write_text(json.dumps(results))
        return results

    runner.calls = calls
    return runner


def test_best_is_chosen_on_validation_never_test(tmp_path, tiny_data):
    # lr 1e-3: best valid, worse test; 1e-4: worse valid, best test; 1e-2: even better valid, but collapsed
    numbers = {1e-3: (0.30, 0.10, "epochs"), 1e-4: (0.20, 0.50, "patience"), 1e-2: (0.90, 0.90, "collapsed")}
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(yaml.safe_dump({
        "base": base(tiny_data), "out": str(tmp_path / "sw"), "group_by": ["model.backbone"],
        "grid": {"model.backbone": ["sasrec", "dssm"], "train.lr": [1e-3, 1e-4, 1e-2]}}))
    runner = fake_runner(numbers)
    summary = run_sweep(load_sweep(sweep_file), quiet, runner)
    assert len(runner.calls) == 6
    assert [b["group"] for b in summary["best"]] == [{"model.backbone": "sasrec"}, {"model.backbone": "dssm"}]
    for b in summary["best"]:
        assert b["overrides"]["train.lr"] == 1e-3 and b["test"]["hr@10"] == 0.10 and b["valid"]["ndcg@10"] == 0.30
        assert b["collapsed"] == 1
    statuses = {r["overrides"]["train.lr"]: r["status"] for r in summary["runs"]}
    assert statuses == {1e-3: "done", 1e-4: "done", 1e-2: "collapsed"}
    assert all("test" not in r for r in summary["runs"])  # test only for the choice
    saved = json.loads((tmp_path / "sw" / "sweep.json").read_text())
    assert saved["best"] == json.loads(json.dumps(summary["best"]))
    md = (tmp_path / "sw" / "sweep.md").read_text()
    assert "collapsed" in md and "0.5000" not in md  # the non-chosen run's better test number is nowhere


def test_finished_run_of_another_config_is_refused(tmp_path, tiny_data):
    spec = {"base": base(tiny_data), "out": str(tmp_path / "sw"), "grid": {"train.lr": [1e-3]}}
    run_sweep(parse_sweep(spec), quiet, fake_runner({1e-3: (0.3, 0.1, "epochs")}))
    spec["base"]["model"]["dim"] = 32
    with pytest.raises(SweepError, match="another config"):
        run_sweep(parse_sweep(spec), quiet, fake_runner({1e-3: (0.3, 0.1, "epochs")}))
    # threads / progress may change between invocations
    spec["base"]["model"]["dim"] = 16
    spec["base"]["train"]["threads"] = 2
    runner = fake_runner({1e-3: (0.3, 0.1, "epochs")})
    run_sweep(parse_sweep(spec), quiet, runner)
    assert runner.calls == []
    # a run finished by an older morec, before a setting existed (now at its default), is the same run
    path = next((tmp_path / "sw").glob("*/results.json"))
    results = json.loads(path.read_text())
    del results["config"]["train"]["collapse_ratio"]
    path.write_text(json.dumps(results))
    run_sweep(parse_sweep(spec), quiet, runner)
    assert runner.calls == []


def test_divergence_is_collapse_and_the_sweep_marks_it(tmp_path, tiny_data):
    spec = parse_sweep({"base": base(tiny_data, epochs=4), "out": str(tmp_path / "sw"),
                        "grid": {"train.lr": [1e-3, 1e5]}})
    summary = run_sweep(spec, quiet)
    ok, bad = summary["runs"]
    assert ok["status"] == "done" and bad["status"] == "collapsed"
    results = json.loads((tmp_path / "sw" / bad["name"] / "results.json").read_text())
    assert results["stop_reason"] == "collapsed"
    assert "train.lr (now 100000.0)" in results["collapse"] and "model.encoder.lr (now 0.0001)" in results["collapse"]
    assert summary["best"][0]["name"] == ok["name"]


def test_nan_before_any_epoch_writes_collapsed_results(tmp_path, tiny_data, monkeypatch):
    from morec.config import from_dict, Config

    monkeypatch.setattr(Trainer, "train_epoch", lambda self, epoch: float("nan"))
    cfg = from_dict(Config, {**base(tiny_data), "out": str(tmp_path / "run")})
    with pytest.raises(TrainingCollapsed, match="train.lr"):
        train(cfg, log=quiet)
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["stop_reason"] == "collapsed" and results["valid"] is None and results["best_epoch"] == -1


def test_validation_collapse_stops_the_run(tmp_path, tiny_data, monkeypatch):
    from morec.config import from_dict, Config

    scores = iter([0.05, 0.16, 0.10, 0.012, 0.003, 0.0, 0.0, 0.0])  # Figure 5: 16% -> ~0

    def fake_evaluate(self, split, users=None):
        s = next(scores, 0.0) if split == "valid" else 0.0
        return {"hr@10": s, "ndcg@10": s}

    monkeypatch.setattr(Trainer, "evaluate", fake_evaluate)
    cfg = from_dict(Config, {**base(tiny_data, epochs=8, patience=50), "out": str(tmp_path / "run")})
    lines = []
    results = train(cfg, log=lines.append)
    assert results["stop_reason"] == "collapsed" and results["epochs_run"] == 5 and results["best_epoch"] == 1
    assert "under 0.1 x its best (0.16" in results["collapse"] and "train.lr (now 0.001)" in results["collapse"]
    assert any("collapsed" in line for line in lines)


@pytest.mark.parametrize("settings, stops_at", [({}, 5), ({"collapse_epochs": 4}, 7),
                                                 ({"collapse_ratio": 0.07}, 6), ({"collapse_floor": 0.2}, None)])
def test_collapse_thresholds_are_settings(tmp_path, tiny_data, monkeypatch, settings, stops_at):
    """train.collapse_ratio / collapse_epochs / collapse_floor decide when a falling validation score is a collapse."""
    from morec.config import from_dict, Config

    scores = iter([0.05, 0.16, 0.10, 0.012, 0.009, 0.003, 0.0, 0.0, 0.0, 0.0])

    def fake_evaluate(self, split, users=None):
        s = next(scores, 0.0) if split == "valid" else 0.0
        return {"hr@10": s, "ndcg@10": s}

    monkeypatch.setattr(Trainer, "evaluate", fake_evaluate)
    cfg = from_dict(Config, {**base(tiny_data, epochs=10, patience=50), "out": str(tmp_path / "run")})
    for key, value in settings.items():
        setattr(cfg.train, key, value)
    results = train(cfg.validate(), log=quiet)
    if stops_at is None:  # the best (0.16) never reached the floor: a run that never learned is not a collapse
        assert results["stop_reason"] == "epochs" and results["epochs_run"] == 10
    else:
        assert results["stop_reason"] == "collapsed" and results["epochs_run"] == stops_at


def test_cli_sweep(tmp_path, tiny_data, capsys):
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(yaml.safe_dump({"base": base(tiny_data, epochs=1), "out": str(tmp_path / "sw"),
                                          "grid": {"model.backbone": ["dssm"]}, "group_by": ["model.backbone"]}))
    assert cli.main(["sweep", str(sweep_file), "--train.threads=1"]) == 0
    out = capsys.readouterr().out
    assert "DSSM · ID" in out and "sweep.json" in out
    assert (tmp_path / "sw" / "dssm-id" / "results.json").exists()
    assert cli.main(["sweep", str(tmp_path / "missing.yaml")]) == 2


def saved_model_ranks(run_dir, split: str) -> list[int]:
    """Each user's rank under the run's saved model, ranked one user at a time in plain Python: 1 + the
    unmasked items (history masked, padding never) scoring at least the target."""
    import torch

    from morec.runs import load_run

    _, model, ds = load_run(run_dir)
    model.eval()
    out = []
    with torch.no_grad():
        inputs = model.encode_all_items()
        table = model.backbone.item_output(inputs).float()
        for u in range(ds.n_users):
            hist, target = ds.history(u, split).tolist(), int(ds.targets(split)[u])
            h = torch.tensor([hist[-10:]])
            vec = (model.user_vectors(torch.tensor([u]), h, inputs[h]) if model.backbone.uses_history
                   else model.user_vectors(torch.tensor([u]), None))[0].float()
            row = (table @ vec).tolist()
            out.append(1 + sum(1 for j, x in enumerate(row) if j not in (0, target) and j not in hist
                               and (x != x or x >= row[target])))
    return out


def test_seeds_axis_runs_each_combination_per_seed_and_keeps_per_user_ranks(tmp_path, tiny_data):
    from morec.data.dataset import PreparedDataset
    from morec.ranks import load_ranks

    order = [r.name for r in expand(parse_sweep({"base": base(tiny_data), "out": "x", "seeds": [1, 2],
                                                 "grid": {"model.backbone": ["sasrec", "dssm"]}}))]
    assert order == ["sasrec-id-s1", "dssm-id-s1", "sasrec-id-s2", "dssm-id-s2"]
    spec = parse_sweep({"base": base(tiny_data, epochs=2, patience=5), "out": str(tmp_path / "sw"), "seeds": [1, 2],
                        "grid": {"model.backbone": ["dssm"]}, "group_by": ["model.backbone"]})
    runs = expand(spec)
    assert [r.name for r in runs] == ["dssm-id-s1", "dssm-id-s2"]
    assert [r.config.train.seed for r in runs] == [1, 2] and {r.config_name for r in runs} == {"dssm-id"}
    summary = run_sweep(spec, quiet)
    (best,) = summary["best"]
    assert best["name"] == "dssm-id" and best["seeds"] == [1, 2] and len(best["dirs"]) == 2
    tests = [json.loads((r.dir / "results.json").read_text()) for r in runs]
    assert tests[0]["test"] != tests[1]["test"]  # the seeds are different runs
    assert best["test"]["hr@10"] == pytest.approx((tests[0]["test"]["hr@10"] + tests[1]["test"]["hr@10"]) / 2)
    ds = PreparedDataset(tiny_data)
    for r, res in zip(runs, tests):
        # every run keeps each user's valid and test rank; the metrics are their means; it ran to its
        # epoch cap (2 epochs, patience 5); its dataset is identified
        ranks = load_ranks(r.dir)
        assert ranks["valid"].shape == ranks["test"].shape == (ds.n_users,)
        for split in ("valid", "test"):  # the saved model's ranks, user by user, and their plain means
            want = saved_model_ranks(r.dir, split)
            assert ranks[split].tolist() == want
            assert res[split]["hr@10"] == pytest.approx(plain_metrics(want, 10)["hr@10"])
            assert res[split]["ndcg@10"] == pytest.approx(plain_metrics(want, 10)["ndcg@10"])
        # capped only while validation was still rising: its last validated epoch was its best
        log = [json.loads(line) for line in (r.dir / "metrics.jsonl").read_text().splitlines()]
        validated = [x["epoch"] for x in log if any(k.startswith("valid_") for k in x)]
        assert res["stop_reason"] == "epochs" and res["capped"] == (validated[-1] == res["best_epoch"])
        assert res["dataset"]["fingerprint"] == ds.identity()["fingerprint"] and res["dataset"]["n_users"] == ds.n_users
    sweep_md = (tmp_path / "sw" / "sweep.md").read_text()
    assert "± " in sweep_md and ("(capped)" in sweep_md) == any(t["capped"] for t in tests)
    with pytest.raises(SweepError, match="seeds must be"):
        parse_sweep({"base": {}, "out": "x", "seeds": [1, 1]})
    with pytest.raises(SweepError, match="both a grid key and the seeds axis"):
        parse_sweep({"base": {}, "out": "x", "seeds": [1], "grid": {"train.seed": [3]}})


def test_configuration_is_chosen_on_mean_validation_over_seeds(tmp_path, tiny_data):
    # lr 1e-3 has the single best validation run (seed 1) but the lower mean; lr 1e-4 wins on the mean
    valid = {(1e-3, 1): 0.9, (1e-3, 2): 0.1, (1e-4, 1): 0.6, (1e-4, 2): 0.6}

    def runner(run, resume, log):
        from morec.config import to_dict

        v = valid[(run.config.train.lr, run.config.train.seed)]
        results = {"best_epoch": 1, "valid": {"hr@10": v, "ndcg@10": v}, "test": {"hr@10": v / 2, "ndcg@10": v / 2},
                   "stop_reason": "patience", "config": to_dict(run.config)}
        run.dir.mkdir(parents=True, exist_ok=True)
        (run.dir / "results.json").write_text(json.dumps(results))
        return results

    spec = parse_sweep({"base": base(tiny_data), "out": str(tmp_path / "sw"), "seeds": [1, 2],
                        "grid": {"train.lr": [1e-3, 1e-4]}})
    (best,) = run_sweep(spec, quiet, runner)["best"]
    assert best["overrides"] == {"train.lr": 1e-4} and best["test"]["ndcg@10"] == pytest.approx(0.3)
    assert best["test_std"]["ndcg@10"] == pytest.approx(0.0)
