"""Seeds until decided: train one more seed of each arm while a comparison is undecided.

``morec compare A B --until-decided --max-seeds N`` looks at the comparison with the seeds the arms have, and
while any metric's verdict is neither better, worse nor equivalent, trains the next seed of both arms (the
arm's saved config with ``train.seed`` = its highest seed + 1, beside its runs) and looks again, up to N seeds
per arm. Interrupted, it resumes: a finished seed run is reused, a run with a checkpoint resumes from it.

Repeated looks at growing data would inflate the false-positive rate if each used alpha. The rule here is
Bonferroni over the looks: with L planned looks (the current seed count up to N, one look per count), every
look tests at alpha / L and prints (1 - alpha / L) intervals, so the chance of any wrong "better" / "worse"
over all looks is at most alpha. (Holm over the metrics applies within each look.) Each added seed's training
time is reported, so the cost of certainty is visible.
"""
from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Callable

from .checkpoint import has_checkpoint
from .config import ConfigError, load_config
from .report.discovery import split_seed
from .stats import ALPHA, MARGIN
from .verdict import compare_arms, members

DECIDED = ("better", "worse", "equivalent")


def seed_dir(run_dir: Path, seed: int) -> Path:
    """Where seed ``seed`` of the configuration of ``run_dir`` goes: beside it, named as the sweep names seeds."""
    name = run_dir.name
    parts = split_seed(name)
    if parts:  # a sweep's sasrec-id-s3 (or sasrec_seed-3 as sweeps named it before)
        return run_dir.parent / f"{parts[0]}{parts[1]}{seed}"
    m = re.fullmatch(r"(.*?)(_?)seed-?(-?\d+)", name)
    if m:
        return run_dir.parent / f"{m.group(1)}{m.group(2)}seed-{seed}"
    return run_dir.parent / f"{name}_seed-{seed}"


def train_seed(template: Path, seed: int, log: Callable[[str], None]) -> Path:
    """Train (or resume, or reuse) seed ``seed`` of the configuration saved in ``template``."""
    from .train import Trainer

    out = seed_dir(template, seed)
    if (out / "results.json").exists():
        log(f"{out}: finished before, reused")
        return out
    if has_checkpoint(out):
        log(f"{out}: resumed")
        Trainer.from_checkpoint(out, log=log).fit()
        return out
    cfg = load_config(template / "config.yaml", [f"--train.seed={seed}", f"--out={out}"])
    Trainer(cfg, log=log).fit()
    return out


def _decided(result: dict) -> bool:
    return all(c.verdict.split()[0] in DECIDED for c in result["paired"].values())


def until_decided(a, b, metrics: list[str] | None, names=("A", "B"), max_seeds: int = 5, alpha: float = ALPHA,
                  margin: float = MARGIN, allow_unequal_budgets: bool = False, train=train_seed,
                  log: Callable[[str], None] = print) -> dict:
    """The comparison of arm B against arm A after adding seeds to both until every metric is decided or each
    arm has ``max_seeds`` seeds (see the module docstring); with ``looks``: per look, the seeds, verdicts and
    the seconds each added seed took."""
    from .report import load_arm

    arms = [[r.dir for r in members(load_arm(x))] for x in (a, b)]
    start = min(len(arms[0]), len(arms[1]))
    if max_seeds < start:
        raise ConfigError(f"--max-seeds {max_seeds} is below the seeds the arms already have ({start}); raise it")
    looks = max_seeds - start + 1
    history = []
    while True:
        arm_a, arm_b = load_arm(arms[0]), load_arm(arms[1])
        metrics = metrics or [f"hr@{arm_a.config.get('eval', {}).get('ks', [10])[0]}", arm_a.select_metric]
        result = compare_arms(arm_a, arm_b, list(dict.fromkeys(metrics)), alpha / looks, tuple(names),
                              equal_budgets=not allow_unequal_budgets, margin=margin)
        n = min(len(arms[0]), len(arms[1]))
        history.append({"seeds": n, "alpha": alpha / looks,
                        "verdicts": {m: c.verdict for m, c in result["paired"].items()}})
        if _decided(result) or n >= max_seeds:
            break
        for runs in arms:
            seeds = [arm.seed for arm in members(load_arm(runs))]
            start_time = time.perf_counter()
            runs.append(train(Path(runs[0]), max(seeds) + 1, log))
            history[-1].setdefault("seconds_per_added_seed", []).append(round(time.perf_counter() - start_time, 1))
            log(f"added seed {max(seeds) + 1} in {history[-1]['seconds_per_added_seed'][-1]} s: {runs[-1]}")
    result["looks"] = history
    result["rule"] = f"Bonferroni over {looks} planned looks: each at alpha {alpha / looks:.4g}"
    result["verdict"] += f" Seeds until decided: {result['rule']}; " + "; ".join(
        f"{h['seeds']} seeds: " + ", ".join(f"{m} {v}" for m, v in h["verdicts"].items())
        + (f" (added seeds took {h['seconds_per_added_seed']} s)" if h.get("seconds_per_added_seed") else "")
        for h in history) + "."
    return result


def undecided_configurations(runs: list, alpha: float, margin: float = MARGIN) -> list[str]:
    """The sweep configurations (``config_name``) whose comparison with the grid's first configuration, on its
    selection metric and Holm-adjusted over the configurations, is neither better, worse nor equivalent; the
    first configuration too when any is (both arms of an undecided pair get the next seed)."""
    from .report import load_arm
    from .verdict import Comparison, adjust_family

    arms: dict[str, list] = {}
    for r in runs:
        if r.status == "done":
            arms.setdefault(r.config_name, []).append(r.dir)
    if len(arms) < 2:
        return []
    names = list(arms)
    reference = load_arm(arms[names[0]])
    comparisons = {n: Comparison(reference, load_arm(arms[n]), [reference.select_metric], alpha, (names[0], n), margin)
                   for n in names[1:]}
    adjust_family(list(comparisons.values()))
    undecided = [n for n, c in comparisons.items() if not _decided(c.result())]
    return [names[0], *undecided] if undecided else []


def add_seeds_until_decided(spec, runs: list, run_many: Callable[[list, str], None], expand: Callable,
                            log: Callable[[str], None] = print) -> list[dict]:
    """A sweep with ``seeds: {min, max}``: after its first seeds, train the next seed of every undecided
    configuration (see :func:`undecided_configurations`) until none is or ``max`` is reached; Bonferroni over
    the looks as for compare. ``run_many(new_runs, tag)`` trains one added seed's runs (at once where it can).
    Appends the new runs to ``runs``; returns per added seed the configurations and the seconds it took."""
    from dataclasses import replace

    looks = spec.seeds_max - len(spec.seeds) + 1
    seed, added = max(spec.seeds), []
    while seed < spec.seeds_max:
        undecided = undecided_configurations(runs, ALPHA / looks)
        if not undecided:
            break
        seed += 1
        new = [r for r in expand(replace(spec, seeds=[seed])) if r.config_name in undecided]
        start = time.perf_counter()
        run_many(new, f"[seed {seed}] ")
        seconds = round(time.perf_counter() - start, 1)
        log(f"seed {seed} for {len(new)} undecided configurations took {seconds} s")
        added.append({"seed": seed, "configurations": undecided, "seconds": seconds,
                      "rule": f"Bonferroni over {looks} planned looks: each at alpha {ALPHA / looks:.4g}"})
        runs.extend(new)
    return added
