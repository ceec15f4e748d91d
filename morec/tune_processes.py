"""`morec tune --jobs N`: N trials at once, each a `morec train --no-test` process (morec.run_pool).

The search goes in rounds: ask N trials from the study, train them at once, then tell the study their values in
trial order. A trial's validation curve is read from its ``metrics.jsonl`` as it trains and reported epoch by
epoch; when the pruner says so, its process is stopped (its checkpoint stays, as an in-process trial's).

Why rounds: the sampler (TPE) and the median pruner look only at finished trials, and those change only between
rounds, so the trials asked and the trials pruned depend on the seed and N alone, never on which process happened
to finish first. The same tune file with the same ``seed`` and ``--jobs N`` therefore samples the same parameters
and prunes the same trials; a different N samples differently (the sampler sees the results N at a time), and
the ``halving`` pruner compares a trial with running ones too, so it is not reproducible with N > 1. The cost: a
round waits for its longest trial, so a slot whose trial was pruned early idles until then.
"""
from __future__ import annotations

import json
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .config import Config, save_config
from .extras import need
from .run_pool import Job, Outcome, run_all

FAILURES_TO_STOP = 3  # trials in a row failing with an error of their own (a missing dataset, ...) end the search


@dataclass
class _Trial:
    trial: Any  # optuna.Trial
    cfg: Config | None = None
    tag: str = ""
    results: dict | None = None  # read back (finished before) or written by its process
    state: str = ""  # complete | pruned | fail, decided when it ends; told at the end of the round
    value: float | None = None
    reported: set = field(default_factory=set)  # epochs of its curve already reported


def _optuna():
    return need("optuna", "morec tune")


@dataclass
class Search:
    """What a round needs from morec.tune: ``setup(trial)`` -> (config, log tag, results it holds already, or
    None), raising TrialPruned for an impossible combination; ``value(results, trial, config, tag)`` -> the objective,
    raising TrialPruned for a collapsed run."""
    trials: int  # finished (complete or pruned) trials the study should hold
    jobs: int
    threads: int
    setup: Callable[[Any], tuple[Config, str, dict | None]]
    value: Callable[[dict, Any, Config, str], float]
    logs: Path  # the trials' configs and console logs
    log: Callable[[str], None] = print


def _finished(study) -> int:
    return sum(t.state in (_optuna().trial.TrialState.COMPLETE, _optuna().trial.TrialState.PRUNED) for t in study.trials)


def search_in_processes(search: Search, study) -> None:
    """Rounds of ``jobs`` trials until the study holds ``trials`` finished ones (see the module docstring)."""
    failures = 0
    while (left := search.trials - _finished(study)) > 0:
        round_: list[_Trial] = []
        try:
            for _ in range(min(search.jobs, left)):
                round_.append(_ask(search, study))
            _train_round(search, round_)
        except BaseException:  # Ctrl-C, a kill: the unfinished trials fail without an error, so they are retried
            for t in round_:
                t.state = t.state or "fail"
                _tell(study, t)
            raise
        for t in round_:
            failures = failures + 1 if t.state == "fail" and "error" in t.trial.user_attrs else 0
            _tell(study, t)
        if failures >= FAILURES_TO_STOP:
            search.log(f"{FAILURES_TO_STOP} trials in a row failed (last: {round_[-1].trial.user_attrs['error']}); "
                       "search stopped")
            return


def _ask(search: Search, study) -> _Trial:
    t = _Trial(study.ask())
    try:
        t.cfg, t.tag, t.results = search.setup(t.trial)
    except _optuna().TrialPruned:
        t.state = "pruned"
    except Exception as err:  # noqa: BLE001 - its own error (another run in its folder, ...): recorded, never chosen
        t.trial.set_user_attr("error", f"{type(err).__name__}: {err}")
        search.log(f"[trial {t.trial.number}] failed: {type(err).__name__}: {err}")
        t.state = "fail"
    return t


def _train_round(search: Search, round_: list[_Trial]) -> None:
    todo = [t for t in round_ if not t.state and t.results is None]
    for t in round_:
        if not t.state and t.results is not None:  # finished before its process could tell the study
            _ended(search, t, t.results)
    items = []
    for t in todo:
        config_file = search.logs / f"{Path(t.cfg.out).name}.yaml"
        config_file.parent.mkdir(parents=True, exist_ok=True)
        save_config(t.cfg, config_file)
        items.append(Job(t.tag, Path(t.cfg.out), [f"--config={config_file}", "--no-test"],
                         config_file.with_suffix(".log"), resume_args=["--no-test"], owner=t))

    def on_done(job: Job, outcome: Outcome) -> None:
        t: _Trial = job.owner
        # a trial that finished between two looks still shows the pruner every epoch, so that whether it is
        # pruned depends on its epochs, never on how busy the machine was when its process ended
        if outcome.stopped or (outcome.results is not None and _pruned(t)):
            t.state = "pruned"
            search.log(f"{t.tag}: {t.trial.user_attrs.get('stop')}")
        elif outcome.results is not None:
            _ended(search, t, outcome.results)
        else:
            printed = job.log_file.read_text(encoding="utf-8", errors="replace").strip().splitlines()
            t.trial.set_user_attr("error", (printed or [f"exit status {outcome.returncode}"])[-1])
            t.state = "fail"

    with ExitStack() as beating:  # heartbeats: a killed search's trials are failed later, then retried
        get_heartbeat_thread = need("optuna.storages._heartbeat", "morec tune").get_heartbeat_thread

        for t in todo:  # optuna's own optimize() beats this way; ask/tell has no public hook for it
            beating.enter_context(get_heartbeat_thread(t.trial._trial_id, t.trial.study._storage))
        run_all(items, search.jobs, search.threads, on_done, watch=lambda job: _pruned(job.owner), log=search.log)


def _ended(search: Search, t: _Trial, results: dict) -> None:
    try:
        t.value, t.state = search.value(results, t.trial, t.cfg, t.tag), "complete"
    except _optuna().TrialPruned:
        t.state = "pruned"


def _pruned(t: _Trial) -> bool:
    """Report the epochs its process finished since the last look; whether the pruner stops it."""
    metric = f"valid_{t.cfg.eval.select_metric}"
    try:
        text = (Path(t.cfg.out) / "metrics.jsonl").read_text(encoding="utf-8")
    except OSError:
        return False
    for line in text.splitlines(keepends=True):
        if not line.endswith("\n"):
            break  # still being written
        record = json.loads(line)
        epoch = record["epoch"]
        if metric not in record or epoch in t.reported:
            continue
        t.reported.add(epoch)
        t.trial.report(record[metric], epoch + 1)  # the step is the epochs trained (the pruners' resource)
        if t.trial.should_prune():
            t.trial.set_user_attr("stop", f"pruned after epoch {epoch}")
            return True
    return False


def _tell(study, t: _Trial) -> None:
    TrialState = _optuna().trial.TrialState
    if t.state == "complete":
        study.tell(t.trial, t.value)
    else:
        study.tell(t.trial, state=TrialState.PRUNED if t.state == "pruned" else TrialState.FAIL)
