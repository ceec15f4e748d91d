"""Sweeps: a grid of runs, one after another (or ``--jobs N`` at once), resumable, with the best of each group
chosen on validation.

A sweep file (YAML)::

    base:                      # a config (as `morec train --config`), or `config: path` plus keys over it
      config: configs/ml100k.yaml
      train: {epochs: 50}
    grid:                      # dotted keys -> values; every combination is one run
      model.encoder.kind: [id, text]
      model.backbone: [sasrec, dssm]
      train.lr,model.encoder.lr: [[1e-3, 1e-4], [1e-4, 1e-4]]   # keys joined by "," vary together
    group_by: [model.encoder.kind, model.backbone]   # one best run per group (default: one group)
    seeds: [1, 2, 3]           # optional: every combination once per seed (train.seed), runs named ...-sN
                               # or {min: 3, max: 8}: seeds 1-3, then more while a configuration's comparison
                               # with the grid's first is undecided (morec/sequential.py)
    out: runs/sweep-ml100k

Each run gets its own directory under ``out``, named short by what tells it apart (``sasrec-id-s1``,
``sasrec-minilm-frozen-mlp2-s3``: :func:`morec.report.names.short_names`); its full settings are in its
``config.yaml``. A sweep directory whose runs carry the long names of earlier versions keeps them. Running the sweep again skips the
runs that finished (results.json present), resumes an interrupted run from its checkpoint (or restarts it
when it has none), and runs the rest. A run that collapsed (``stop_reason: collapsed``) or failed is never
chosen. The best configuration of each group is the one with the highest validation ``eval.select_metric``
(with seeds: its mean over the configuration's finished seeds); its test metrics (mean and standard deviation
over seeds) are the only test numbers in the summary (``sweep.json``, ``sweep.md``). Test never selects.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import re
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .checkpoint import atomic_write_text, has_checkpoint
from .config import Config, ConfigError, deep_merge, from_dict, save_config, to_dict
from .report.discovery import split_seed
from .report.arms import INDEX, Arm, make_arms
from .report.index import runs_index
from .report.names import get_dotted, nest_dotted, safe_text, short_names
from .report.tables import format_table
from .run_pool import DEFAULT_JOBS, Job, Outcome, pinned_threads, run_all
from .runlock import RunDirBusy, run_lock
from .stats.seeds import mean_std, metrics_mean_std
from .train import Trainer, TrainingCollapsed
from .runlog import capped
from .yamlfile import load_yaml_file, shown

# keys that may differ between a finished run's config and the sweep's without making it another run
IGNORED_KEYS = {("out",), ("train", "threads"), ("train", "progress"), ("train", "device")}
SHORT_PREFIXES = ("model.", "train.")


@dataclass
class SweepSpec:
    base: dict
    grid: list[tuple[list[str], list[list[Any]]]]  # (keys, values per combination, one per key)
    group_by: list[str]
    out: Path
    source: Path | None = None
    seeds: list[int] | None = None  # every grid combination once per seed
    seeds_max: int | None = None  # seeds: {min, max}: more seeds for undecided configurations, up to this


@dataclass
class SweepRun:
    name: str
    overrides: dict[str, Any]  # dotted key -> value
    config: Config
    status: str = "pending"  # pending | done | collapsed | failed
    how: str = ""  # skipped (finished before) | resumed | trained | restarted
    results: dict | None = None
    error: str = ""
    group: dict[str, Any] = field(default_factory=dict)
    config_name: str = ""  # the name without the seed: runs differing only in train.seed share it

    @property
    def dir(self) -> Path:
        return Path(self.config.out)


class SweepError(ConfigError):
    pass


# --- the sweep file ---------------------------------------------------------------------------



def load_sweep(path: str | Path, overrides: dict | None = None) -> SweepSpec:
    """Read a sweep file; ``overrides`` (nested dict, e.g. from --train.threads=1) go over its base config."""
    path = Path(path)
    return parse_sweep(read_spec_file(path, "sweep file", "base, grid, group_by and out", SweepError), overrides, path)


def read_spec_file(path: Path, what: str, keys: str, error: type[ConfigError]) -> dict:
    """A sweep or tune file as one mapping, read by morec's strict YAML loader (an empty file is {})."""
    spec = load_yaml_file(path, what) or {}
    if not isinstance(spec, dict):
        raise error(f"{path}: expected a mapping with {keys}")
    return spec


def load_base(spec: dict, overrides: dict | None = None, source: Path | None = None) -> dict:
    """A sweep's (or tune file's) base config as one nested dict: ``base`` (or ``config: path`` plus keys over
    it; a relative path is also looked up beside the file), then ``overrides`` over it."""
    where = f"{source}: " if source else "sweep: "
    base = dict(spec.get("base") or {})
    config_path = base.pop("config", None) or spec.get("config")
    if config_path:
        config_path = Path(config_path)
        if not config_path.is_absolute() and source is not None and not config_path.exists():
            config_path = source.parent / config_path
        if not config_path.exists():
            raise SweepError(f"{where}base config {config_path} does not exist")
        config = load_yaml_file(config_path, "base config") or {}
        if not isinstance(config, dict):
            raise SweepError(f"{where}base config {config_path}: expected a YAML mapping at the top level")
        base = deep_merge(config, base)
    if overrides:
        base = deep_merge(base, overrides)
    return base


def parse_sweep(spec: dict, overrides: dict | None = None, source: Path | None = None) -> SweepSpec:
    where = f"{source}: " if source else "sweep: "
    unknown = set(spec) - {"base", "config", "grid", "group_by", "seeds", "out"}
    if unknown:
        raise SweepError(f"{where}unknown key(s) {sorted(unknown)}; a sweep has base (or config), grid, group_by, "
                         "seeds and out")
    base = load_base(spec, overrides, source)
    grid_spec = spec.get("grid") or {}
    if not isinstance(grid_spec, dict):
        raise SweepError(f"{where}grid must map dotted keys to lists of values")
    grid = []
    for key, values in grid_spec.items():
        keys = [k.strip() for k in str(key).split(",")]
        if not isinstance(values, list) or not values:
            raise SweepError(f"{where}grid {key!r} must be a non-empty list of values")
        rows = []
        for v in values:
            if len(keys) == 1:
                rows.append([v])
            elif isinstance(v, list) and len(v) == len(keys):
                rows.append(list(v))
            else:
                raise SweepError(f"{where}grid {key!r} varies {len(keys)} keys together: each value must be a "
                                 f"list of {len(keys)}, got {shown(v)}")
        grid.append((keys, rows))
    group_by = spec.get("group_by") or []
    if isinstance(group_by, str):
        group_by = [group_by]
    out = spec.get("out")
    if not out:
        raise SweepError(f"{where}out (the sweep's directory) must be set")
    seeds, seeds_max = spec.get("seeds"), None
    if isinstance(seeds, dict):
        seeds, seeds_max = seed_range(seeds, where)
    if seeds is not None:
        if not isinstance(seeds, list) or not seeds or not all(isinstance(x, int) and not isinstance(x, bool) for x in seeds) \
                or len(set(seeds)) != len(seeds):
            raise SweepError(f"{where}seeds must be a non-empty list of distinct integers, got {shown(seeds)}")
        if any("train.seed" in keys for keys, _ in grid):
            raise SweepError(f"{where}train.seed is both a grid key and the seeds axis; keep one (seeds: [...])")
    # out is relative to the working directory, as --out
    return SweepSpec(base, grid, list(group_by), Path(out), source, seeds, seeds_max)


def seed_range(seeds: dict, where: str) -> tuple[list[int], int]:
    """``{min: 3, max: 8}`` -> seeds 1..3 first, at most 8."""
    low, high = seeds.get("min"), seeds.get("max")
    if set(seeds) != {"min", "max"} or not all(isinstance(x, int) and not isinstance(x, bool) for x in (low, high)) \
            or not 1 <= low <= high:
        raise SweepError(f"{where}seeds as a range must be {{min: M, max: N}} with 1 <= M <= N, got {seeds!r}")
    return list(range(1, low + 1)), high


def _short(key: str, all_keys: list[str]) -> str:
    for prefix in SHORT_PREFIXES:
        if key.startswith(prefix):
            short = key[len(prefix):]
            clash = [k for k in all_keys if k != key and any(k == p + short for p in SHORT_PREFIXES)]
            return key if clash else short
    return key


def run_name(overrides: dict[str, Any]) -> str:
    """The long directory name sweeps gave a run before short names (``encoder.kind-text_lr-0.001``), kept so that
    a sweep directory named that way resumes under its own names; a long one is shortened with a hash."""
    keys = list(overrides)
    if not keys:
        return "run"
    name = "_".join(f"{_short(k, keys)}-{safe_text(v, strip='-')}" for k, v in overrides.items())
    if len(name) > 150:
        digest = hashlib.sha1(json.dumps(overrides, sort_keys=True, default=str).encode()).hexdigest()[:10]
        name = f"{name[:120]}_{digest}"
    return name


def _long_names_used(out: Path, long_names: list[str]) -> bool:
    """Whether ``out`` holds a run named the old, long way: then the whole sweep keeps that naming, so it
    resumes (and adds seeds) beside its finished runs instead of training them again."""
    if not out.is_dir():
        return False
    wanted = set(long_names)
    for d in out.iterdir():
        parts = split_seed(d.name)
        if d.is_dir() and (d.name in wanted or (parts and parts[1] == "_seed-" and parts[0] in wanted)
                           or re.fullmatch(r"seed-\d+", d.name) and "run" in wanted):
            return True
    return False


def config_names(spec: SweepSpec, combos: list[dict[str, Any]]) -> tuple[list[str], Callable[[str, int], str]]:
    """Each grid combination's name (without its seed) and how a seed joins it: short names
    (``sasrec-minilm-frozen-mlp2`` + ``-s3``), or the long ones where ``spec.out`` already holds runs named so."""
    long_names = [run_name(c) for c in combos]
    if _long_names_used(spec.out, long_names):
        return long_names, lambda name, seed: f"{name}_seed-{seed}" if name != "run" else f"seed-{seed}"
    return short_names(spec.base, combos), lambda name, seed: f"{name}-s{seed}"


def expand(spec: SweepSpec) -> list[SweepRun]:
    """Every combination of the grid, in grid order, as configs with their run directories."""
    runs, names = [], set()
    all_keys = [k for keys, _ in spec.grid for k in keys]
    combos = list(itertools.product(*[rows for _, rows in spec.grid])) if spec.grid else [()]
    grid = [{k: v for (keys, _), row in zip(spec.grid, combo) for k, v in zip(keys, row)} for combo in combos]
    base_names, with_seed = config_names(spec, [{k: c[k] for k in all_keys} for c in grid])
    # seed-major: every combination runs with the first seed before any runs with the second, so a sweep
    # stopped early has every cell at some seeds rather than some cells at all of them
    for seed, (config_name, combo) in itertools.product(spec.seeds or [None], list(zip(base_names, grid))):
        overrides = dict(combo)
        if seed is not None:
            overrides["train.seed"] = seed
        values = spec.base
        for k, v in overrides.items():
            values = deep_merge(values, nest_dotted(k, v))
        name = config_name if seed is None else with_seed(config_name, seed)
        if name in names:
            raise SweepError(f"two runs of the sweep would share the directory {name!r}")
        names.add(name)
        values = deep_merge(values, {"out": str(spec.out / name)})
        try:
            cfg = from_dict(Config, values).validate()
        except ConfigError as err:
            raise SweepError(f"sweep run {name}: {err}") from None
        group = {k: get_dotted(to_dict(cfg), k) for k in spec.group_by}
        runs.append(SweepRun(name, overrides, cfg, group=group, config_name=config_name))
    return runs


# --- running ----------------------------------------------------------------------------------

def _comparable(values: dict, path: tuple = ()) -> Any:
    if isinstance(values, dict):
        return {k: _comparable(v, path + (k,)) for k, v in values.items() if path + (k,) not in IGNORED_KEYS}
    return values


def same_config(finished: dict, wanted: dict) -> bool:
    """Whether a finished run's saved config is the sweep's. The saved one is read through today's config
    classes first, so a setting that a later morec version added (at its default) is not a difference."""
    try:
        finished = to_dict(from_dict(Config, finished))
    except ConfigError:
        pass  # a key this version does not know: compared as saved, so it differs
    wanted_enc, finished_enc = wanted.get("model", {}).get("encoder", {}), finished.get("model", {}).get("encoder", {})
    wanted_text, finished_text = wanted_enc.get("text", {}), finished_enc.get("text", {})
    if wanted_text.get("fields") == [] and isinstance(finished_text, dict) and "fields" in finished_text:
        # the default ([] = the dataset's text columns) is saved resolved; the same data path resolves it the same way
        finished = json.loads(json.dumps(finished))
        finished["model"]["encoder"]["text"]["fields"] = []
    return _comparable(json.loads(json.dumps(finished))) == _comparable(json.loads(json.dumps(wanted)))


def default_runner(run: SweepRun, resume: bool, log: Callable[[str], None]) -> dict:
    """Train (or resume) one run; returns its results. Raises TrainingCollapsed when it collapsed before any epoch."""
    with run_lock(run.dir, "train into"):  # before the checkpoint is read: another sweep process may be writing it
        if resume:
            trainer = Trainer.from_checkpoint(run.dir, log=log, overrides=to_dict(run.config))
        else:
            trainer = Trainer(run.config, log=log)
        return trainer.fit()


def _read_results(run_dir: Path) -> dict | None:
    f = run_dir / "results.json"
    if not f.exists():
        return None
    try:
        return json.loads(f.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None


def _status(results: dict) -> str:
    return "collapsed" if results.get("stop_reason") == "collapsed" else "done"


def _finished_before(run: SweepRun, tag: str, log: Callable[[str], None]) -> bool:
    """Read back a run that finished before (results.json of this very config); False when it has to train."""
    results = _read_results(run.dir)
    if results is None:
        return False
    if not same_config(results.get("config") or {}, to_dict(run.config)):
        raise SweepError(f"{run.dir} holds a finished run of another config than this sweep's {run.name}; "
                         "give the sweep a new out directory or remove that run")
    run.results, run.status, run.how = results, _status(results), "skipped"
    log(f"{tag}: finished before ({run.status}), skipped")
    return True


def _how(run: SweepRun) -> str:
    return "resumed" if has_checkpoint(run.dir) else ("restarted" if run.dir.exists() else "trained")


def run_one(run: SweepRun, tag: str, runner, log: Callable[[str], None]) -> None:
    """Skip (finished before), resume or train one run of the sweep; a failure is recorded on the run."""
    if _finished_before(run, tag, log):
        return
    resume = has_checkpoint(run.dir)
    run.how = _how(run)
    log(f"{tag}: {run.how}")
    try:
        run.results = runner(run, resume, log)
        run.status = _status(run.results)
    except TrainingCollapsed as err:
        run.results, run.status, run.error = _read_results(run.dir), "collapsed", str(err)
    except (KeyboardInterrupt, SystemExit):
        raise
    except RunDirBusy as err:  # another process of this sweep trains it: left to that one, nothing written
        run.how = "running elsewhere"
        log(f"{tag}: skipped: {err}")
    except Exception as err:  # one bad combination must not end the sweep; it is reported
        _failed(run, f"{type(err).__name__}: {err}", traceback.format_exc(), tag, log)
    if run.status == "collapsed":
        log(f"{tag}: collapsed: {(run.results or {}).get('collapse') or run.error}")


def _failed(run: SweepRun, error: str, detail: str, tag: str, log: Callable[[str], None]) -> None:
    run.status, run.error = "failed", error
    log(f"{tag}: failed: {run.error}")
    run.dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run.dir / "error.txt", detail)


def run_in_processes(out: Path, runs: list[SweepRun], jobs: int, log: Callable[[str], None], tag: str = "") -> None:
    """:func:`run_one` for many runs at once: each pending run a `morec train` process (morec.run_pool), ``jobs``
    at a time, threads pinned so that they share the cores. The config a run trains is written beside its console
    log (``out/logs/NAME.yaml``, ``NAME.log``); a run fails with the last line its process printed."""
    pending = [r for r in runs if not _finished_before(r, f"{tag}{r.name}", log)]
    if not pending:
        return
    threads = pinned_threads(jobs, pending[0].config.train.threads)
    items = []
    for run in pending:
        config_file = out / "logs" / f"{run.name}.yaml"
        config_file.parent.mkdir(parents=True, exist_ok=True)
        save_config(run.config, config_file)
        run.how = _how(run)
        items.append(Job(run.name, run.dir, [f"--config={config_file}"], out / "logs" / f"{run.name}.log", owner=run))

    def on_done(job: Job, outcome: Outcome) -> None:
        run: SweepRun = job.owner
        if outcome.results is not None:
            run.results, run.status = outcome.results, _status(outcome.results)
            log(f"{tag}{run.name}: {run.status} in {outcome.seconds:.0f} s"
                + (f": {run.results.get('collapse')}" if run.status == "collapsed" else ""))
            return
        printed = job.log_file.read_text(encoding="utf-8", errors="replace").strip().splitlines() \
            if job.log_file.exists() else []
        _failed(run, (printed or [f"exit status {outcome.returncode}"])[-1], "\n".join(printed[-40:]),
                f"{tag}{run.name}", log)

    run_all(items, jobs, threads, on_done, log=log, prefix=tag)


def run_sweep(spec: SweepSpec, log: Callable[[str], None] = print,
              runner: Callable[[SweepRun, bool, Callable], dict] | None = None, jobs: int = DEFAULT_JOBS) -> dict:
    """Run every pending run of ``spec``, then write and return the summary (see :func:`summarize`). With
    ``jobs`` > 1 the runs train as ``jobs`` processes at once (:func:`run_in_processes`; ``runner`` is unused)."""
    runner = runner or default_runner
    runs = expand(spec)
    spec.out.mkdir(parents=True, exist_ok=True)

    def run_many(batch: list[SweepRun], tag: str) -> None:
        if jobs > 1:
            run_in_processes(spec.out, batch, jobs, log, tag)
        else:
            for i, run in enumerate(batch, 1):
                run_one(run, f"{tag or f'[{i}/{len(batch)}] '}{run.name}", runner, log)

    run_many(runs, "")
    added = []
    if spec.seeds_max:
        from .sequential import add_seeds_until_decided

        added = add_seeds_until_decided(spec, runs, run_many, expand, log)
    summary = summarize(spec, runs)
    arms = label_arms(summary, runs)
    if spec.seeds_max:
        summary["added_seeds"] = added
    write_summary(spec.out, summary, arms)
    return summary


# --- the summary ------------------------------------------------------------------------------

def _select_metric(run: SweepRun) -> str:
    return run.config.eval.select_metric


def _mean(values: list[float]) -> float:
    return mean_std(values)[0]


def _mean_std_metrics(splits: list[dict | None]) -> tuple[dict[str, float] | None, dict[str, float] | None]:
    """Metric means and sample standard deviations over seeds (0.0 for one seed); None where a split was not
    scored (a search trial's unread test split)."""
    if any(s is None for s in splits):
        return None, None
    return metrics_mean_std(splits)


def summarize(spec: SweepSpec, runs: list[SweepRun]) -> dict:
    """{"runs": [...], "best": [...]}: every run with its validation score and status; per group the configuration
    with the best validation score (mean over its seeds) among the finished, non-collapsed runs, with its test
    metrics (mean and standard deviation over seeds)."""
    rows = []
    for run in runs:
        metric = _select_metric(run)
        valid = (run.results or {}).get("valid") or {}
        rows.append({
            "name": run.name, "dir": str(run.dir), "overrides": run.overrides, "group": run.group,
            "status": run.status, "how": run.how, "select_metric": metric, "valid_score": valid.get(metric),
            "valid": valid or None, "best_epoch": (run.results or {}).get("best_epoch"),
            "stop_reason": (run.results or {}).get("stop_reason"), "capped": capped(run.results or {}),
            "seed": run.config.train.seed,
            **({"collapse": run.results.get("collapse")} if run.results and run.results.get("collapse") else {}),
            **({"error": run.error} if run.error and run.status == "failed" else {}),
        })
    groups: dict[str, list[int]] = {}
    for i, run in enumerate(runs):
        groups.setdefault(json.dumps(run.group, sort_keys=True, default=str), []).append(i)
    best = []
    for key, members in groups.items():
        entry: dict[str, Any] = {"group": json.loads(key), "runs": len(members),
                                 "collapsed": sum(runs[i].status == "collapsed" for i in members),
                                 "failed": sum(runs[i].status == "failed" for i in members)}
        configs: dict[str, list[int]] = {}  # configuration -> its finished seeds
        for i in members:
            if runs[i].status == "done" and rows[i]["valid_score"] is not None:
                configs.setdefault(runs[i].config_name or runs[i].name, []).append(i)
        if configs:
            # highest (mean over seeds) validation score; the earlier configuration in grid order on a tie.
            # Test plays no part.
            order = list(configs)
            pick = max(order, key=lambda c: (_mean([rows[i]["valid_score"] for i in configs[c]]), -order.index(c)))
            chosen = configs[pick]
            first = runs[chosen[0]]
            test, test_std = _mean_std_metrics([runs[i].results.get("test") for i in chosen])
            entry.update({"name": pick if spec.seeds else first.name, "dir": str(first.dir),
                          "overrides": {k: v for k, v in first.overrides.items() if not (spec.seeds and k == "train.seed")},
                          "select_metric": rows[chosen[0]]["select_metric"],
                          "valid": _mean_std_metrics([runs[i].results["valid"] for i in chosen])[0],
                          "test": test, "test_std": test_std,
                          "test_subsets": first.results.get("test_subsets") if len(chosen) == 1 else None,
                          "seeds": [runs[i].config.train.seed for i in chosen],
                          "dirs": [str(runs[i].dir) for i in chosen]})
        else:
            entry.update({"name": None, "dir": None, "test": None})
        best.append(entry)
    return {"out": str(spec.out), "group_by": spec.group_by, "runs": rows, "best": best,
            "pending": sum(r.status == "pending" for r in runs)}


def label_arms(summary: dict, runs: list[SweepRun]) -> list[Arm]:
    """Give every configuration of the summary its arm label (``arm``, ``anchor``: the runs index's row)."""
    configs: dict[str, list[SweepRun]] = {}
    for run in runs:
        configs.setdefault(run.config_name or run.name, []).append(run)
    arms = make_arms([(to_dict(rs[0].config), Path(rs[0].config.data).name, [r.dir for r in rs],
                       [r.config.train.seed for r in rs]) for rs in configs.values()])
    by_name = dict(zip(configs, arms))
    for row, run in zip(summary["runs"], runs):
        arm = by_name[run.config_name or run.name]
        row["arm"], row["anchor"] = arm.label, arm.anchor
    for entry in summary["best"]:
        if entry.get("name") in by_name:
            entry["arm"], entry["anchor"] = by_name[entry["name"]].label, by_name[entry["name"]].anchor
    return arms


def _arm(entry: dict) -> str:
    """An arm's label linked to the runs index (summaries written before labels: the run's name)."""
    return f"[{entry['arm']}]({INDEX}#{entry['anchor']})" if entry.get("arm") else entry["name"]


def summary_markdown(summary: dict) -> str:
    group_by = summary["group_by"]
    lines = [f"# Sweep {summary['out']}", "",
             "Best configuration of each group, chosen on the validation metric (mean over its seeds); test metrics "
             "(mean ± standard deviation over seeds) are shown only for that choice.", ""]
    rows = []
    for b in summary["best"]:
        row = {k: str(b["group"].get(k)) for k in group_by}
        row["arm"] = _arm(b) if b["name"] else "(none finished)"
        if b["name"]:
            m = b["select_metric"]
            row[f"valid {m}"] = b["valid"][m]
            std = b.get("test_std") or {}
            for k, v in (b["test"] or {}).items():
                row[f"test {k}"] = f"{v:.4f} ± {std[k]:.4f}" if len(b.get("seeds") or []) > 1 else v
            row["seeds"] = str(len(b.get("seeds") or [1]))
        row["collapsed"] = str(b["collapsed"])
        row["failed"] = str(b["failed"])
        rows.append(row)
    cols = list(dict.fromkeys(c for r in rows for c in r))
    lines += [format_table(rows, cols), "", "## Every run (validation only)", ""]
    rows = []
    for r in summary["runs"]:
        rows.append({"arm": _arm(r), "seed": str(r["seed"]), "status": r["status"],
                     f"valid {r['select_metric']}": r["valid_score"] if r["valid_score"] is not None else "",
                     "best epoch": "" if r["best_epoch"] is None else str(r["best_epoch"]),
                     "stop": (r["stop_reason"] or "") + (" (capped)" if r.get("capped") else ""), "note": r.get("collapse") or r.get("error") or ""})
    lines += [format_table(rows, list(rows[0]) if rows else ["arm"]), "",
              f"Arms link to [{INDEX}]({INDEX}): each one's run directories and key settings.", ""]
    return "\n".join(lines)


def write_summary(out: Path, summary: dict, arms: list[Arm] | None = None) -> None:
    atomic_write_text(out / "sweep.json", json.dumps(summary, indent=2, default=str))
    atomic_write_text(out / "sweep.md", summary_markdown(summary))
    if arms:
        atomic_write_text(out / INDEX, runs_index(arms, out))
