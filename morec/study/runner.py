"""Training the study's runs: each one a `morec train` process, several at once, resumable after a kill.

A run is the directory ``OUT/runs/KEY-sSEED``. A finished run (results.json) is read back; a run with a
checkpoint continues from it (``morec train --resume``); a run directory left without either (killed before its
first checkpoint) is started over. Its console output goes to ``OUT/logs/KEY-sSEED.log``.

Runs are separate processes, ``jobs`` at a time, each with ``threads`` torch threads, so two runs on two cores do
not oversubscribe them and a crash or kill of one never takes the study's state with it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..checkpoint import has_checkpoint


@dataclass
class RunSpec:
    key: str  # the arm
    seed: int
    args: list[str]  # `morec train` overrides of a new run (data, recipe, arm, seed)

    @property
    def name(self) -> str:
        return f"{self.key}-s{self.seed}"


def results_of(run_dir: Path) -> dict | None:
    try:
        return json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def train_command(spec: RunSpec, run_dir: Path, threads: int) -> list[str]:
    base = [sys.executable, "-m", "morec", "train"]
    if has_checkpoint(run_dir):
        return base + ["--resume", str(run_dir), f"--train.threads={threads}"]
    again = ["--overwrite"] if run_dir.exists() and any(run_dir.iterdir()) else []
    return base + [f"--out={run_dir}", *spec.args, f"--train.threads={threads}", *again]


def child_env(threads: int) -> dict:
    # the child's BLAS / OpenMP pools match its torch threads, so `jobs` children share the cores instead of
    # each spawning one thread per core
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
            "PYTHONUNBUFFERED": "1"}


def run_all(specs: list[RunSpec], runs_dir: Path, logs_dir: Path, jobs: int, threads: int,
            may_start: Callable[[RunSpec], bool], on_done: Callable[[RunSpec, dict | None, float], None],
            log: Callable[[str], None] = print) -> None:
    """Train every spec not finished yet, ``jobs`` at a time. ``may_start(spec)`` is asked before each start (the
    budget); ``on_done(spec, results or None, seconds)`` after each end."""
    logs_dir.mkdir(parents=True, exist_ok=True)
    pending = [s for s in specs if results_of(runs_dir / s.name) is None]
    running: list[tuple[RunSpec, subprocess.Popen, float, object]] = []
    try:
        while pending or running:
            while pending and len(running) < max(jobs, 1):
                spec = pending.pop(0)
                if not may_start(spec):
                    continue
                run_dir = runs_dir / spec.name
                cmd = train_command(spec, run_dir, threads)
                how = "resumes" if "--resume" in cmd else "starts"
                log(f"[study] {spec.name} {how}")
                out = open(logs_dir / f"{spec.name}.log", "a", encoding="utf-8")
                running.append((spec, subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=child_env(threads)),
                                time.monotonic(), out))
            time.sleep(0.2)
            for item in [r for r in running if r[1].poll() is not None]:
                spec, proc, started, out = item
                out.close()
                running.remove(item)
                results = results_of(runs_dir / spec.name)
                if proc.returncode != 0 or results is None:
                    log(f"[study] {spec.name} failed (exit {proc.returncode}); see {logs_dir / (spec.name + '.log')}")
                    results = None
                on_done(spec, results, time.monotonic() - started)
    finally:
        for _, proc, _, out in running:  # a killed study stops its runs; their checkpoints resume them
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            out.close()
