"""Several runs at once: each run a `morec train` process, ``jobs`` at a time, resumable after a kill.

`morec study`, `morec sweep --jobs N` and `morec tune --jobs N` train through this pool. A run is a directory:
a finished run (results.json) is read back and never started; a run with a checkpoint continues from it
(``morec train --resume``); a directory left without either (killed before its first checkpoint) is started
over. A run's console output goes to its log file.

Runs are separate processes, each with ``threads`` torch threads and its OpenMP / MKL pools pinned to the same
number, so ``jobs`` runs share the cores instead of each spawning one thread per core, and a crash or kill of one
never takes the caller's state with it. A killed caller stops its runs; their checkpoints resume them.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from .checkpoint import has_checkpoint
from .config import ConfigError

# runs trained at once by the API's sweep and tune (in this process); the command line's default is cli_jobs()
DEFAULT_JOBS = 1
# On 2 cores, a 3-arm x 3-seed sweep of fast runs took 0.83x the wall time as two 1-thread runs at once than as one
# 2-thread run at a time (benchmarks/bench_recipes.py; benchmarks/README.md): small models leave a second thread idle
CLI_JOBS_CAP = 2
POLL_SECONDS = 0.2


@dataclass
class Job:
    name: str
    run_dir: Path
    args: list[str]  # `morec train` arguments of a new run, without --out and --train.threads
    log_file: Path
    resume_args: list[str] = field(default_factory=list)  # given on a resume too (e.g. --no-test)
    owner: Any = None  # the caller's object behind this run (a study's arm and seed, a sweep run, a trial)


@dataclass
class Outcome:
    results: dict | None  # results.json after the process ended (None: it failed or was stopped first)
    returncode: int | None
    seconds: float
    how: str  # started | resumed | restarted
    stopped: bool = False  # ended by the caller's watch (a pruned trial), not by itself


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def pinned_threads(jobs: int, configured: int = 0) -> int:
    """Torch threads per run so that ``jobs`` runs never ask for more threads than the cores: ``configured``
    (train.threads) when it fits, else the cores' share (at least one)."""
    share = max(1, cores() // max(jobs, 1))
    return min(configured, share) if configured > 0 else share


def results_of(run_dir: Path) -> dict | None:
    try:
        return json.loads((Path(run_dir) / "results.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def train_command(job: Job, threads: int) -> list[str]:
    base = [sys.executable, "-m", "morec", "train"]
    if has_checkpoint(job.run_dir):
        return base + ["--resume", str(job.run_dir), *job.resume_args, f"--train.threads={threads}"]
    again = ["--overwrite"] if job.run_dir.exists() and any(job.run_dir.iterdir()) else []
    return base + [f"--out={job.run_dir}", *job.args, f"--train.threads={threads}", *again]


def child_env(threads: int) -> dict:
    # the child's BLAS / OpenMP pools match its torch threads
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}


@dataclass
class _Running:
    job: Job
    proc: subprocess.Popen
    started: float
    out: Any
    how: str
    stopped: bool = False


def _start(job: Job, threads: int, log: Callable[[str], None], prefix: str) -> _Running:
    cmd = train_command(job, threads)
    how = "resumed" if "--resume" in cmd else ("restarted" if "--overwrite" in cmd else "started")
    log(f"{prefix}{job.name} {'resumes' if how == 'resumed' else 'starts'}")
    job.log_file.parent.mkdir(parents=True, exist_ok=True)
    out = open(job.log_file, "a", encoding="utf-8")
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=child_env(threads))
    return _Running(job, proc, time.monotonic(), out, how)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _finish(r: _Running, log: Callable[[str], None], prefix: str) -> Outcome:
    r.out.close()
    # a run that collapsed before its first epoch writes results.json and exits non-zero: its results are kept
    results = None if r.stopped else results_of(r.job.run_dir)
    if not r.stopped and (r.proc.returncode != 0 or results is None):
        log(f"{prefix}{r.job.name} failed (exit {r.proc.returncode}); see {r.job.log_file}")
    return Outcome(results, r.proc.returncode, time.monotonic() - r.started, r.how, r.stopped)


def run_all(jobs: list[Job], n_jobs: int, threads: int,
            on_done: Callable[[Job, Outcome], None] = lambda job, outcome: None,
            may_start: Callable[[Job], bool] = lambda job: True,
            watch: Callable[[Job], bool] = lambda job: False,
            log: Callable[[str], None] = print, prefix: str = "") -> None:
    """Train every job not finished yet, ``n_jobs`` at a time, in order. ``may_start(job)`` is asked before each
    start (a budget); ``watch(job)`` at every poll of a running job (True stops it: a pruned trial);
    ``on_done(job, outcome)`` after each end. A finished job (results.json) is neither started nor reported."""
    pending = [j for j in jobs if results_of(j.run_dir) is None]
    running: list[_Running] = []
    with _terminate_as_exit(), _stopping(running):
        while pending or running:
            while pending and len(running) < max(n_jobs, 1):
                job = pending.pop(0)
                if may_start(job):
                    running.append(_start(job, threads, log, prefix))
            time.sleep(POLL_SECONDS)
            for r in running:
                if r.proc.poll() is None and watch(r.job):
                    r.stopped = True
                    _stop(r.proc)
            for r in [r for r in running if r.proc.poll() is not None]:
                running.remove(r)
                on_done(r.job, _finish(r, log, prefix))


@contextmanager
def _stopping(running: list[_Running]) -> Iterator[None]:
    try:
        yield
    finally:  # a killed caller stops its runs; their checkpoints resume them
        for r in running:
            _stop(r.proc)
            r.out.close()


@contextmanager
def _terminate_as_exit() -> Iterator[None]:
    """SIGTERM ends the caller as Ctrl-C does, so that its runs are stopped rather than left training beside the
    next command of the same folder (only the main thread may set a handler)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def add_jobs_argument(parser, default: int | None = None) -> None:
    """`--jobs N` of `morec sweep` (default: cli_jobs()) and `morec tune` (default 1: a round of N trials tells
    Optuna its results only at its end, so TPE would sample each round from fewer finished trials)."""
    jobs = cli_jobs() if default is None else default
    said = f"the cores, at most {CLI_JOBS_CAP}: {jobs} here" if default is None else str(jobs)
    parser.add_argument("--jobs", type=int, default=jobs, metavar="N",
                        help=f"runs trained at once, each a process with --train.threads threads (0 = the cores' share) "
                             f"and its OpenMP / MKL threads pinned, so N x threads stays within the cores (default: "
                             f"{said}; 1 trains in this process)")


def cli_jobs() -> int:
    """The command line's --jobs default: one run per core, at most CLI_JOBS_CAP."""
    return max(1, min(CLI_JOBS_CAP, cores()))


def check_jobs(jobs: int) -> int:
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs}; give --jobs 1 or more")
    return jobs
