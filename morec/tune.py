"""Hyper-parameter search with Optuna: ``morec tune TUNE.yaml`` (``morec tune --example`` prints a commented file).

A tune file (YAML)::

    base:                        # the config every trial starts from, as a sweep's base
      config: configs/ml100k_sasrec_id.yaml
    trial: {train: {epochs: 30, patience: 5}}   # over the base for search trials only (a short budget)
    space:                       # dotted keys -> a distribution
      train.lr: {log_uniform: [1.0e-4, 1.0e-2]}       # the learning rate of the non-encoder parameter groups
      model.encoder.lr: {log_uniform: [1.0e-5, 1.0e-3]}
      model.dim: {choice: [32, 64, 128]}
      model.n_layers: {int: [1, 3]}
      model.dropout: {uniform: [0.0, 0.5]}
      train.weight_decay: {log_uniform: [1.0e-3, 0.3]}
      model.encoder.mode: {choice: [e2e, frozen]}
    trials: 20                   # finished trials (complete or pruned) the study should hold
    pruner: median               # median | halving | none: stop a trial from its per-epoch validation curve
    seed: 0                      # the sampler's (TPE)
    group_by: []                 # one chosen trial per group (e.g. [model.encoder.mode]), as a sweep's
    seeds: [1, 2, 3]             # after the search: the chosen configuration under the base budget, per seed,
    compare_base: true           #   and the base config itself with the same seeds (the default to beat)
    out: runs/tune-ml100k

The objective is the validation ``eval.select_metric`` (NDCG@10 by default) of a trial's best epoch; trials
never read the test split. After the search, the best trial of each group on validation is scored on test once.
The study lives in ``out/study.db`` (SQLite): running the command again resumes it (finished trials are not
re-run; a trial that was interrupted is retried with the same parameters, from its checkpoint), and several
processes may run the same command at once to share the work. A trial that collapses (morec's detection,
train.collapse_*) is pruned, so it is never chosen. The summary is a sweep's (``sweep.json`` / ``sweep.md``,
:func:`morec.sweep.summarize`), so ``morec report`` reads a tune directory as it reads a sweep's.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .checkpoint import atomic_write_text, has_checkpoint
from .config import Config, ConfigError, deep_merge, from_dict, to_dict
from .evaluate import metrics_from_ranks, rank_users, subset_metrics
from .ranks import load_ranks, save_ranks
from .run_pool import DEFAULT_JOBS, pinned_threads
from .runlock import run_lock
from .runs import load_run
from .sweep import (SweepRun, SweepSpec, get_dotted, load_base, nest_dotted, parse_sweep, read_spec_file, run_sweep,
                    same_config, summarize, summary_markdown, write_summary)
from .stats.seeds import metrics_mean_std
from .train import Trainer, TrainingCollapsed
from .tune_processes import Search, search_in_processes
from .compare import chosen_vs_base
from .yamlfile import shown

# `morec tune --example`: a tune file to start from, every key explained (tests parse it)
EXAMPLE = """\
# A morec tune file: Optuna searches `space` over `base`, choosing on validation (the test split is read once,
# for the chosen configuration). Run it with `morec tune THIS.yaml`; run it again to resume.
base:                        # the config every trial starts from (or `config: path.yaml` plus keys over it)
  data: data/prepared/ml-100k
  model: {backbone: sasrec, encoder: {kind: id}}
  train: {epochs: 100, patience: 10}
trial: {train: {epochs: 30, patience: 5}}    # over the base for search trials only (a shorter budget)
space:                       # dotted config keys -> one distribution each
  train.lr: {log_uniform: [1.0e-4, 1.0e-2]}  # log_uniform / uniform: [low, high] floats
  model.n_layers: {int: [1, 3]}              # int: [low, high], both included
  model.dropout: {uniform: [0.0, 0.5]}
  model.dim: {choice: [32, 64, 128]}         # choice: a list of values
trials: 20                   # finished trials (complete or pruned) the study should hold
pruner: median               # median | halving | none: stop a trial early from its validation curve
warmup_epochs: 3             # median: epochs every trial runs before it can be pruned
startup_trials: 5            # median: trials that finish before any is pruned
seed: 0                      # the TPE sampler's seed
group_by: []                 # one chosen trial per group, e.g. [model.encoder.mode]
seeds: [1, 2, 3]             # after the search: the chosen configuration under the base budget, per seed
compare_base: true           # and the base config itself with the same seeds (the default to beat)
out: runs/tune-ml100k        # the study (study.db), every trial's run and the summary (sweep.json, sweep.md)
"""
DISTRIBUTIONS = ("log_uniform", "uniform", "int", "choice")
PRUNERS = ("median", "halving", "none")


class TuneError(ConfigError):
    pass


@dataclass
class TuneSpec:
    base: dict
    space: dict[str, tuple[str, list]]  # dotted key -> (distribution, arguments)
    out: Path
    trials: int = 20
    trial: dict = field(default_factory=dict)  # over the base, for search trials only
    pruner: str = "median"
    warmup_epochs: int = 3  # median: epochs every trial runs before it can be pruned; halving: epochs of the first rung
    startup_trials: int = 5  # median: trials that finish before any is pruned
    seed: int = 0
    group_by: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    compare_base: bool = False
    source: Path | None = None

    @property
    def storage(self) -> str:
        return f"sqlite:///{(self.out / 'study.db').resolve()}"


KEYS = {"base", "config", "trial", "space", "trials", "pruner", "warmup_epochs", "startup_trials", "seed",
        "group_by", "seeds", "compare_base", "out"}


def load_tune(path: str | Path, overrides: dict | None = None) -> TuneSpec:
    """Read a tune file; ``overrides`` (nested, e.g. from --train.threads=1) go over its base config."""
    path = Path(path)
    return parse_tune(read_spec_file(path, "tune file", "base, space, trials and out", TuneError), overrides, path)


def parse_tune(spec: dict, overrides: dict | None = None, source: Path | None = None) -> TuneSpec:
    where = f"{source}: " if source else "tune: "
    unknown = set(spec) - KEYS
    if unknown:
        raise TuneError(f"{where}unknown key(s) {sorted(unknown)}; a tune file has {', '.join(sorted(KEYS))}")
    base = load_base(spec, overrides, source)
    space = {}
    for key, dist in (spec.get("space") or {}).items():
        if not isinstance(dist, dict) or len(dist) != 1 or next(iter(dist)) not in DISTRIBUTIONS:
            raise TuneError(f"{where}space {key!r} must be one of {{log_uniform: [low, high]}}, {{uniform: [low, high]}}, "
                            f"{{int: [low, high]}} or {{choice: [values]}}, not {shown(dist)}")
        (kind, args), = dist.items()
        if not isinstance(args, list) or not args:
            raise TuneError(f"{where}space {key!r}: {kind} takes a list, got {shown(args)}")
        if kind != "choice":
            if len(args) != 2 or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args) \
                    or not args[0] < args[1] or (kind == "log_uniform" and args[0] <= 0):
                raise TuneError(f"{where}space {key!r}: {kind} takes [low, high] with low < high"
                                f"{' and low > 0' if kind == 'log_uniform' else ''}, got {shown(args)}")
        space[str(key)] = (kind, list(args))
    if not space:
        raise TuneError(f"{where}space must name at least one dotted key and its distribution")
    pruner = str(spec.get("pruner", "median"))
    if pruner not in PRUNERS:
        raise TuneError(f"{where}pruner must be one of {', '.join(PRUNERS)}, not {pruner!r}")
    out = spec.get("out")
    if not out:
        raise TuneError(f"{where}out (the tune directory) must be set")
    seeds = spec.get("seeds") or []
    if not isinstance(seeds, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise TuneError(f"{where}seeds must be a list of integers, got {shown(seeds)}")
    numbers = {}
    for key, low in (("trials", 1), ("warmup_epochs", 0), ("startup_trials", 0)):
        value = spec.get(key, TuneSpec.__dataclass_fields__[key].default)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise TuneError(f"{where}{key} must be an integer >= {low}, got {shown(value)}")
        numbers[key] = value
    group_by = spec.get("group_by") or []
    tune = TuneSpec(base=base, space=space, out=Path(out), trial=dict(spec.get("trial") or {}), pruner=pruner,
                    seed=int(spec.get("seed", 0)), group_by=[group_by] if isinstance(group_by, str) else list(group_by),
                    seeds=list(seeds), compare_base=bool(spec.get("compare_base", False)), source=source, **numbers)
    trial_config(tune, {}, "check")  # the base (with the trial budget) must be a valid config by itself
    return tune


def trial_config(spec: TuneSpec, params: dict[str, Any], name: str, search: bool = True) -> Config:
    """The config of a trial: base, then (in the search) the trial budget, then the sampled parameters."""
    values = deep_merge(spec.base, spec.trial) if search else spec.base
    for key, value in params.items():
        values = deep_merge(values, nest_dotted(key, value))
    values = deep_merge(values, {"out": str(spec.out / "trials" / name)})
    try:
        return from_dict(Config, values).validate()
    except ConfigError as err:
        raise TuneError(f"tune {name}: {err}") from None


# --- the search -------------------------------------------------------------------------------

def _optuna():
    try:
        import optuna
    except ImportError:
        raise TuneError("morec tune needs Optuna: pip install 'morec[tune]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _suggest(trial, key: str, kind: str, args: list) -> Any:
    if kind == "log_uniform":
        return trial.suggest_float(key, float(args[0]), float(args[1]), log=True)
    if kind == "uniform":
        return trial.suggest_float(key, float(args[0]), float(args[1]))
    if kind == "int":
        return trial.suggest_int(key, int(args[0]), int(args[1]))
    return trial.suggest_categorical(key, args)


def open_study(spec: TuneSpec):
    from filelock import FileLock

    optuna = _optuna()
    spec.out.mkdir(parents=True, exist_ok=True)
    pruner = {"median": lambda: optuna.pruners.MedianPruner(n_startup_trials=spec.startup_trials,
                                                            n_warmup_steps=spec.warmup_epochs),
              "halving": lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=max(spec.warmup_epochs, 1)),
              "none": lambda: optuna.pruners.NopPruner()}[spec.pruner]()
    # processes starting together would each create the database's tables (and one would fail): one at a time.
    # A process killed mid-trial stops beating; another process (or the next run) then marks its trial failed.
    with FileLock(str(spec.out / "study.db.lock")), warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # the heartbeat is "experimental"
        storage = optuna.storages.RDBStorage(spec.storage, heartbeat_interval=30, grace_period=120,
                                             engine_kwargs={"connect_args": {"timeout": 60}})
        study = optuna.create_study(study_name="morec", storage=storage, direction="maximize", load_if_exists=True,
                                    pruner=pruner)
    # a process that joins later draws its own sequence; one uninterrupted process is reproducible
    study.sampler = optuna.samplers.TPESampler(seed=spec.seed + len(study.trials))
    return study


def _finished(study) -> int:
    TrialState = _optuna().trial.TrialState

    return sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials)


def _retry_interrupted(study) -> None:
    """Queue every interrupted trial (failed without an error of its own) once more, with its parameters and its
    run directory, so it continues from its checkpoint."""
    TrialState = _optuna().trial.TrialState

    retried = {t.user_attrs.get("resumes") for t in study.trials}
    for t in study.trials:
        if t.state == TrialState.FAIL and "error" not in t.user_attrs and t.number not in retried \
                and t.user_attrs.get("resumes") is None:
            study.enqueue_trial(t.params, user_attrs={"resumes": t.number, "dir": t.user_attrs.get("dir")})


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _trial_trainer(cfg: Config, trial, metric: str, tag: str, log: Callable[[str], None]) -> Trainer:
    """A trial's trainer: resumed from its checkpoint (its earlier epochs reported as the trial's curve) or new."""
    if has_checkpoint(Path(cfg.out)):
        trainer = Trainer.from_checkpoint(cfg.out, log=lambda s: None, overrides=to_dict(cfg))
        for record in trainer.state.log:  # the epochs before the interruption, as this trial's curve
            trial.report(record[f"valid_{metric}"], record["epoch"] + 1)
        log(f"{tag}: resumed at epoch {trainer.state.epoch}")
        return trainer
    log(f"{tag}: started")
    return Trainer(cfg, log=lambda s: None)


def trial_setup(spec: TuneSpec, trial, log: Callable[[str], None]) -> tuple[Config, str, dict | None]:
    """A trial's config, its log tag and the results its directory holds already (None to train). An impossible
    combination (dim not divisible by heads, ...) raises TrialPruned: counted, never chosen."""
    params = {key: _suggest(trial, key, kind, args) for key, (kind, args) in spec.space.items()}
    name = trial.user_attrs.get("dir") or f"trial-{trial.number:03d}"
    trial.set_user_attr("dir", name)
    try:
        cfg = trial_config(spec, params, name)
    except TuneError as err:
        trial.set_user_attr("stop", f"invalid: {err}")
        log(f"[trial {trial.number}] {name}: {err}; pruned")
        raise _optuna().TrialPruned(str(err)) from None
    tag = f"[trial {trial.number}] {name} " + " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                                       for k, v in params.items())
    results = _read_json(Path(cfg.out) / "results.json")
    if results is not None and not same_config(results.get("config") or {}, to_dict(cfg)):
        raise TuneError(f"{cfg.out} holds a finished run of another config than trial {trial.number}'s; "
                        "give the tune file a new out directory or remove that run")
    return cfg, tag, results


def trial_value(results: dict, trial, metric: str, tag: str, log: Callable[[str], None]) -> float:
    """The objective of a trial that ran to its end; a collapsed one raises TrialPruned (never chosen)."""
    if results.get("stop_reason") == "collapsed":
        trial.set_user_attr("stop", "collapsed")
        log(f"{tag}: collapsed, pruned: {results.get('collapse', '')}")
        raise _optuna().TrialPruned("collapsed")
    score = results["valid"][metric]
    log(f"{tag}: valid {metric} {score:.4f} (best epoch {results['best_epoch']} of {results['epochs_run']})")
    return score


def make_objective(spec: TuneSpec, log: Callable[[str], None]):
    optuna = _optuna()

    def objective(trial) -> float:
        cfg, tag, results = trial_setup(spec, trial, log)
        metric = cfg.eval.select_metric
        if results is None:

            # the curve's step is the number of epochs trained (the pruners' resource)
            def on_epoch(epoch: int, valid: dict) -> None:
                trial.report(valid[metric], epoch + 1)
                if trial.should_prune():
                    trial.set_user_attr("stop", f"pruned after epoch {epoch}")
                    raise optuna.TrialPruned(f"valid {metric} {valid[metric]:.4f} at epoch {epoch}")

            try:
                with run_lock(cfg.out, "train into"):  # a retried trial's folder may still have a live writer
                    trainer = _trial_trainer(cfg, trial, metric, tag, log)
                    trainer.on_epoch = on_epoch
                    results = trainer.fit(test=False)  # a search never reads the test split
            except TrainingCollapsed as err:
                results = {"stop_reason": "collapsed", "collapse": str(err)}
            except optuna.TrialPruned:
                log(f"{tag}: {trial.user_attrs.get('stop')}")
                raise
            except Exception as err:  # this trial's own failure (the search goes on); an interruption is not one
                trial.set_user_attr("error", f"{type(err).__name__}: {err}")
                log(f"{tag}: failed: {type(err).__name__}: {err}")
                raise
        return trial_value(results, trial, metric, tag, log)

    return objective


def search(spec: TuneSpec, log: Callable[[str], None] = print, jobs: int = DEFAULT_JOBS):
    """Run trials until the study holds ``spec.trials`` finished ones (complete or pruned); returns the study.
    With ``jobs`` > 1, ``jobs`` trials train at once as processes (:mod:`morec.tune_processes`)."""
    optuna = _optuna()
    study = open_study(spec)
    optuna.storages.fail_stale_trials(study)  # a killed process's trials, so that they are retried now
    _retry_interrupted(study)
    done = _finished(study)
    if done < spec.trials:
        log(f"{spec.out}: {done} of {spec.trials} trials finished before; running the rest")
        if jobs > 1:
            search_in_processes(processes_search(spec, jobs, log), study)
            return study
        stop = optuna.study.MaxTrialsCallback(spec.trials, states=(optuna.trial.TrialState.COMPLETE,
                                                                   optuna.trial.TrialState.PRUNED))
        # a trial's own error is recorded and the search goes on; Ctrl-C stops it (the trial is retried next time)
        study.optimize(make_objective(spec, log), callbacks=[stop, _StopOnRepeatedFailure(log)], catch=(Exception,),
                       gc_after_trial=True)
    return study


def processes_search(spec: TuneSpec, jobs: int, log: Callable[[str], None]) -> Search:
    """The search of ``spec`` as rounds of ``jobs`` `morec train` processes (morec.tune_processes)."""
    threads = pinned_threads(jobs, from_dict(Config, spec.base).train.threads)
    return Search(spec.trials, jobs, threads, lambda trial: trial_setup(spec, trial, log),
                  lambda results, trial, cfg, tag: trial_value(results, trial, cfg.eval.select_metric, tag, log),
                  spec.out / "logs", log)


class _StopOnRepeatedFailure:
    """Three trials in a row failing with an error of their own (a missing dataset, ...) end the search."""

    def __init__(self, log: Callable[[str], None], limit: int = 3):
        self.log, self.limit, self.failures = log, limit, 0

    def __call__(self, study, trial) -> None:
        TrialState = _optuna().trial.TrialState

        self.failures = self.failures + 1 if trial.state == TrialState.FAIL and "error" in trial.user_attrs else 0
        if self.failures >= self.limit:
            self.log(f"{self.limit} trials in a row failed (last: {trial.user_attrs['error']}); search stopped")
            study.stop()


# --- the result -------------------------------------------------------------------------------

def score_test(run_dir: Path) -> dict:
    """Score a finished trial's best model on test (once: a result that has it is returned as it is)."""
    results = _read_json(run_dir / "results.json")
    if results.get("test") is not None:
        return results
    cfg, model, dataset = load_run(run_dir)
    e = cfg.eval
    ranks = rank_users(model, dataset, "test", cfg.model.max_len, e.mask_history, e.user_batch)
    results["test"] = metrics_from_ranks(ranks, e.ks)
    results["test_subsets"] = subset_metrics(ranks, dataset, "test", e.ks, e.subsets, e.cold_threshold)
    kept = load_ranks(run_dir)  # the trial kept its valid ranks; the test ranks join them
    valid = kept["valid"] if kept else rank_users(model, dataset, "valid", cfg.model.max_len, e.mask_history, e.user_batch)
    save_ranks(run_dir, valid, ranks)
    atomic_write_text(run_dir / "results.json", json.dumps(results, indent=2))
    return results


def trial_runs(spec: TuneSpec, study) -> list[SweepRun]:
    """The study's trials as a sweep's runs: done (complete), pruned, collapsed (pruned as such), failed, running."""
    TrialState = _optuna().trial.TrialState

    runs = []
    for t in sorted(study.trials, key=lambda t: t.number):
        if t.user_attrs.get("resumes") is None and t.state == TrialState.FAIL and "error" not in t.user_attrs \
                and any(o.user_attrs.get("resumes") == t.number for o in study.trials):
            continue  # an interrupted trial that was retried: the retry stands for it
        name = t.user_attrs.get("dir") or f"trial-{t.number:03d}"
        try:
            cfg = trial_config(spec, t.params, name)
        except TuneError:
            cfg = from_dict(Config, deep_merge(spec.base, {"out": str(spec.out / "trials" / name)}))
        run = SweepRun(name, dict(t.params), cfg, group={k: get_dotted(to_dict(cfg), k) for k in spec.group_by})
        results = _read_json(run.dir / "results.json")
        stop = t.user_attrs.get("stop", "")
        if t.state == TrialState.COMPLETE and results:
            run.status, run.results = "done", results
        elif stop == "collapsed":
            run.status, run.results = "collapsed", results
        elif t.state == TrialState.PRUNED:
            run.status, run.error = "pruned", stop
            curve = t.intermediate_values
            if curve:  # the best validation score it reached, for the table; never chosen
                run.results = {"valid": {cfg.eval.select_metric: max(curve.values())}, "best_epoch": max(curve, key=curve.get) - 1,
                               "stop_reason": "pruned"}
        elif t.state == TrialState.FAIL:
            run.status, run.error = "failed", t.user_attrs.get("error", "interrupted")
        else:
            run.status = "pending"
        run.how = f"trial {t.number}"
        runs.append(run)
    return runs


def finish(spec: TuneSpec, study, log: Callable[[str], None] = print, seeds: bool = True,
           jobs: int = DEFAULT_JOBS) -> dict:
    """Choose on validation (best trial per group), score each choice on test once, run the seeds (unless
    ``seeds`` is false: a later run does them), summarize."""
    runs = trial_runs(spec, study)
    sweep = SweepSpec(spec.base, [], spec.group_by, spec.out, spec.source)
    for best in summarize(sweep, runs)["best"]:
        if best["dir"]:
            chosen = next(r for r in runs if r.name == best["name"])
            chosen.results = score_test(chosen.dir)  # the only time a trial's test split is read
    summary = summarize(sweep, runs)
    summary["tune"] = {"trials": spec.trials, "pruner": spec.pruner, "storage": spec.storage,
                       "finished": _finished(study), "pruned": sum(r.status == "pruned" for r in runs),
                       "space": {k: {kind: args} for k, (kind, args) in spec.space.items()}}
    summary["seeds"] = []
    if spec.seeds and seeds:
        arms = [("chosen" + "".join(f"_{v}" for v in b["group"].values()), b) for b in summary["best"] if b["dir"]]
        if spec.compare_base:
            arms.append(("base", {"group": {}, "overrides": {}}))
        for label, b in arms:
            arm, params = label.split("_")[0], b["overrides"]
            out = spec.out / "seeds" / label
            cfg = trial_config(spec, params, "unused", search=False)  # the base budget, not the trial's
            base = {k: v for k, v in to_dict(cfg).items() if k != "out"}
            log(f"{label}: {len(spec.seeds)} seeds of {'the chosen configuration' if arm == 'chosen' else 'the base config'}")
            result = run_sweep(parse_sweep({"base": base, "grid": {"train.seed": spec.seeds}, "out": str(out)}), log,
                               jobs=jobs)
            summary["seeds"].append({"arm": arm, "group": b["group"], "overrides": params, "out": str(out), "runs": [
                {"seed": r["overrides"]["train.seed"], "dir": r["dir"], "status": r["status"],
                 "test": (_read_json(Path(r["dir"]) / "results.json") or {}).get("test")} for r in result["runs"]]})
    summary["verdicts"] = chosen_vs_base(summary["seeds"], log)  # the chosen configurations against the base
    write_summary(spec.out, summary)
    atomic_write_text(spec.out / "sweep.md", tune_markdown(summary))
    return summary


def run_tune(spec: TuneSpec, log: Callable[[str], None] = print, seeds: bool = True,
             jobs: int = DEFAULT_JOBS) -> dict | None:
    """Search, then (when no trial of the study is still running elsewhere) choose, test once and summarize;
    ``jobs`` trials (and seed runs) at once."""
    TrialState = _optuna().trial.TrialState

    study = search(spec, log, jobs)
    running = [t.number for t in study.trials if t.state == TrialState.RUNNING]
    if running:
        log(f"trials {running} are still running in other processes; the last process to finish writes the summary")
        return None
    from filelock import FileLock

    with FileLock(str(spec.out / "finish.lock")):  # several processes: one finishes, the next finds it done
        return finish(spec, study, log, seeds, jobs)


def tune_markdown(summary: dict) -> str:
    t = summary["tune"]
    lines = [summary_markdown(summary), "## Study", "",
             f"{t['finished']} of {t['trials']} trials finished ({t['pruned']} pruned, pruner {t['pruner']}); "
             f"storage {t['storage']}", ""]
    for s in summary.get("seeds", []):
        tests = [r["test"] for r in s["runs"] if r["test"]]
        if tests:
            means, sds = metrics_mean_std(tests)
            lines.append(f"- {s['arm']} {s['group'] or ''} {s['overrides'] or '(the base config)'}: seeds "
                         f"{[r['seed'] for r in s['runs'] if r['test']]}, {s['out']}: " + ", ".join(
                             f"test {k} {means[k]:.4f}" + (f" ± {sds[k]:.4f} (sd)" if len(tests) > 1 else " (one seed)")
                             for k in means))
    if summary.get("verdicts"):
        lines += ["", "## Chosen vs base", ""] + [f"- {v}" for v in summary["verdicts"]]
    return "\n".join(lines) + "\n"
