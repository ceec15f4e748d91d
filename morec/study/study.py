"""`morec study`: on one prepared dataset, should items be IDs, content, or both, how sure is that, and what does it
cost? A composition of the library's parts: the plan (:mod:`.plan`), `morec train` runs (:mod:`morec.run_pool`), the
verdict statistics (:mod:`.decide`) and one report (:mod:`.report`). It owns no training logic.

Steps, all resumable from ``OUT/study.json`` after a kill:

1. plan the arms from the dataset's content, and time one epoch of each (alone, one after the other) to expect
   each run's time; keep the arms (by priority) and starting seeds that fit the budget;
2. train every kept arm's seeds, ``jobs`` runs at once;
3. after each round, decide each content arm against IDRec; add one seed to every undecided arm (and IDRec)
   until each is decided, ``seeds_max`` is reached or the budget cannot hold another round;
4. write the report (Markdown and one self-contained HTML page).
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..checkpoint import atomic_write_text
from ..config import ConfigError
from ..data.dataset import PreparedDataset
from .decide import verdicts
from .plan import (Arm, dataset_content, fit_budget, format_duration, plan_arms, recipe, select_arms)
from ..run_pool import Job, Outcome, child_env, results_of, run_all

PRIMARY = "ndcg@10"
# seconds kept back from the budget for the last verdicts and the report (the plots and bootstrap of a few arms)
REPORT_RESERVE = 90.0


@dataclass
class StudyOptions:
    data: str
    out: str
    budget: float = 7200.0  # seconds of wall-clock time for calibration and training
    backbone: str = "sasrec"
    arms: list[str] = field(default_factory=list)  # arm keys to keep beside the floor and IDRec ([] = all)
    seeds_min: int = 3
    seeds_max: int = 8
    margin: float = 0.05
    alpha: float = 0.05
    jobs: int = 2
    threads: int = 1
    text_model: str = "minilm"
    vision_model: str = "efficientnet-lite0"
    extra: list[str] = field(default_factory=list)  # more `--section.key=value` overrides for every run


class StudyError(ConfigError):
    pass


class Study:
    def __init__(self, opts: StudyOptions, log: Callable[[str], None] = print):
        self.opts, self.log = opts, log
        self.out = Path(opts.out)
        self.ds = PreparedDataset(opts.data)
        self.content = dataset_content(self.ds)
        self.never_trained = int((self.ds.train_item_counts[1:] == 0).sum())
        try:
            self.arms = select_arms(plan_arms(self.content, opts.text_model, opts.vision_model), opts.arms)
        except ValueError as err:
            raise StudyError(str(err)) from None
        self.state = self._load_state()
        self._session_start = time.monotonic()

    # --- state --------------------------------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.out / "study.json"

    def _load_state(self) -> dict:
        if self.state_file.exists():
            state = json.loads(self.state_file.read_text(encoding="utf-8"))
            if state.get("data") != str(Path(self.opts.data).resolve()) or state.get("backbone") != self.opts.backbone:
                raise StudyError(f"{self.out} holds a study of {state.get('data')} ({state.get('backbone')}); give "
                                 "another --out for this dataset or backbone")
            return state
        return {"data": str(Path(self.opts.data).resolve()), "backbone": self.opts.backbone, "elapsed": 0.0,
                "calibration": {}, "targets": {}, "looks": 0, "run_seconds": {}}

    def save(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self.state["elapsed"] = self.elapsed()
        self._session_start = time.monotonic()
        atomic_write_text(self.state_file, json.dumps(self.state, indent=2))

    def elapsed(self) -> float:
        return self.state["elapsed"] + time.monotonic() - self._session_start

    # --- the plan -----------------------------------------------------------------------------------------
    def run_args(self, arm: Arm, seed: int) -> list[str]:
        # items no user trained on (new items) are nobody's negative either, in every arm alike: an ID model would
        # only learn to push them down, and a content model would push down their lookalikes with them
        pool = ["--train.negatives_from=train"] if self.never_trained else []
        return [f"--data={self.opts.data}", *recipe(self.opts.backbone), *pool, *arm.overrides,
                f"--train.seed={seed}", *self.opts.extra]

    def calibrate(self) -> dict[str, float]:
        """Seconds one full run of each arm is expected to take, from two epochs of it timed here, alone."""
        cal = self.state["calibration"]
        for arm in (a for a in self.arms if a.trains and a.key not in cal):
            run_dir = self.out / "calibration" / arm.key
            cmd = [sys.executable, "-m", "morec", "train", f"--out={run_dir}", *self.run_args(arm, 0),
                   "--train.epochs=2", "--eval.valid_from=0", "--train.checkpoints=false",
                   f"--train.threads={self.opts.threads}", "--overwrite"]
            self.log(f"[study] timing two epochs of {arm.label}")
            started = time.monotonic()
            done = subprocess.run(cmd, capture_output=True, text=True, env=child_env(self.opts.threads))
            wall = time.monotonic() - started
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
                raise StudyError(f"{arm.label} could not train two epochs: {tail[0]}")
            # the second epoch: the first may include a frozen encoder's one-off feature pass
            epoch = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])["seconds"]
            cal[arm.key] = {"wall": wall, "epoch": epoch}
            self.save()
        epochs = _epochs(recipe(self.opts.backbone) + self.opts.extra)
        # a run pays a process start and data load (IDRec's timing run less its two epochs: no features to
        # compute) and its epochs; features a frozen encoder computed in the timing run are cached for later runs
        startup = max(cal["idrec"]["wall"] - 2 * cal["idrec"]["epoch"], 0.0)
        return {k: startup + epochs * v["epoch"] for k, v in cal.items()}

    def plan(self) -> dict:
        run_seconds = self.calibrate()
        try:
            fit = fit_budget(self.arms, run_seconds, self.opts.budget - self.elapsed(), self.opts.seeds_min,
                             self.opts.jobs)
        except ValueError as err:
            raise StudyError(str(err)) from None
        notes = list(fit.left_out)
        if self.never_trained:
            notes.append(f"{self.never_trained:,} items have no training interaction (new items): every arm trains with "
                         "them left out of its negatives (train.negatives_from=train) and is scored on them at test")
        if not self.content.modalities:
            notes.insert(0, "the dataset holds no item content (no text column, no images), so only IDRec and the "
                            "most-popular floor are planned; prepare it with a title / description or image column "
                            "to compare content with IDs")
        return {"arms": fit.arms, "seeds": fit.seeds, "notes": notes, "run_seconds": run_seconds,
                "expected": fit.expected_seconds}

    def describe(self, plan: dict) -> str:
        lines = [f"study of {self.ds.name} ({self.opts.backbone}), budget {format_duration(self.opts.budget)}, "
                 f"{self.opts.jobs} run(s) at once x {self.opts.threads} thread(s); "
                 f"{format_duration(self.elapsed())} used so far"]
        for arm in plan["arms"]:
            if arm.trains:
                lines.append(f"  {arm.label:<34} {plan['seeds']} seed(s) x ~{format_duration(plan['run_seconds'][arm.key])}"
                             f" per run  ({arm.key})")
            else:
                lines.append(f"  {arm.label:<34} no training")
        lines.append(f"expected for the first seeds: ~{format_duration(plan['expected'])} (more seeds are added to "
                     f"undecided arms, up to {self.opts.seeds_max}, while the budget lasts)")
        lines += [f"note: {n}" for n in plan["notes"]]
        return "\n".join(lines)

    # --- training and deciding ----------------------------------------------------------------------------
    def run_dirs(self, key: str) -> list[Path]:
        seeds = range(1, self.state["targets"].get(key, 0) + 1)
        return [d for s in seeds if results_of(d := self.out / "runs" / f"{key}-s{s}") is not None]

    def expected(self, key: str, run_seconds: dict[str, float]) -> float:
        """A run's expected seconds: the longer of its timing-run estimate and its arm's runs so far (runs beside
        each other on the cores can take longer than the timing, which ran alone)."""
        seen = self.state["run_seconds"].get(key) or []
        return max(run_seconds[key], sum(seen) / len(seen)) if seen else run_seconds[key]

    def _train_round(self, trained: list[Arm], run_seconds: dict[str, float]) -> None:
        jobs = [self.job(a, s) for a in trained for s in range(1, self.state["targets"][a.key] + 1)]
        todo = [j for j in jobs if results_of(j.run_dir) is None]
        done = [0]

        def may_start(job: Job) -> bool:
            need = self.expected(job.owner.key, run_seconds)
            if self.elapsed() + need + REPORT_RESERVE <= self.opts.budget:
                return True
            self.log(f"[study] {job.name} not started: about {format_duration(need)} needed, "
                     f"{format_duration(self.opts.budget - self.elapsed())} of the budget left "
                     f"({format_duration(REPORT_RESERVE)} of it kept for the report)")
            return False

        def on_done(job: Job, outcome: Outcome) -> None:
            done[0] += 1
            self.state["run_seconds"].setdefault(job.owner.key, []).append(outcome.seconds)
            self.save()
            left = self.opts.budget - self.elapsed()
            self.log(f"[study] {done[0]}/{len(todo)} runs of this round done ({job.name} in "
                     f"{format_duration(outcome.seconds)}); {format_duration(self.elapsed())} used, "
                     f"{format_duration(max(left, 0))} of the budget left")

        run_all(jobs, self.opts.jobs, self.opts.threads, on_done, may_start, log=self.log, prefix="[study] ")

    def job(self, arm: Arm, seed: int) -> Job:
        """Seed ``seed`` of ``arm``: the run ``OUT/runs/KEY-sSEED``, its console output in ``OUT/logs/``."""
        name = f"{arm.key}-s{seed}"
        return Job(name, self.out / "runs" / name, self.run_args(arm, seed), self.out / "logs" / f"{name}.log",
                   owner=arm)

    def decide(self, trained: list[Arm]) -> dict:
        looks = self.opts.seeds_max - self.opts.seeds_min + 1
        arms = {a.key: self.run_dirs(a.key) for a in trained if a.kind != "id"}
        return verdicts(self.run_dirs("idrec"), arms, PRIMARY, self.opts.alpha, self.opts.margin, looks)

    def decide_new_items(self, trained: list[Arm]) -> dict:
        """Each content arm against IDRec over the test users whose target no user trained on (HR@10): a family
        of its own, read once at the end (it never decides whether seeds are added)."""
        from ..evaluate import subset_users

        users = subset_users(self.ds, "test", "new")
        if not len(users):
            return {}
        arms = {a.key: self.run_dirs(a.key) for a in trained if a.kind != "id"}
        return verdicts(self.run_dirs("idrec"), arms, "hr@10", self.opts.alpha, self.opts.margin, 1, users=users)

    def run(self) -> dict:
        plan = self.plan()
        self.log(self.describe(plan))
        trained = [a for a in plan["arms"] if a.trains]
        for a in trained:
            self.state["targets"].setdefault(a.key, plan["seeds"])
        self.save()
        while True:
            self._train_round(trained, plan["run_seconds"])
            decided = self.decide(trained)
            self.state["looks"] += 1
            undecided = [k for k, v in decided.items() if not v.decided]
            for k, v in decided.items():
                self.log(f"[study] {k}: {v.verdict} ({v.seeds} seed(s))")
            grow = [k for k in undecided if self.state["targets"][k] < self.opts.seeds_max]
            next_cost = sum(self.expected(k, plan["run_seconds"]) for k in grow + ["idrec"]) / max(self.opts.jobs, 1)
            if not grow or self.elapsed() + next_cost + REPORT_RESERVE > self.opts.budget:
                break
            self.log(f"[study] one more seed for {', '.join(grow)} and IDRec (~{format_duration(next_cost)})")
            for k in grow + ["idrec"]:
                self.state["targets"][k] += 1
            self.save()
        self.save()
        return {"plan": plan, "verdicts": decided, "new_items": self.decide_new_items(trained), "trained": trained}


def _epochs(args: list[str]) -> int:
    value = 200
    for a in args:
        if a.startswith("--train.epochs="):
            value = int(a.split("=", 1)[1])
    return value




def method_text(opts: StudyOptions, looks: int) -> str:
    level = opts.alpha / looks
    return (f"each content arm against IDRec on test {PRIMARY.upper()}, paired by user. Each look (a round of seeds) "
            f"tests at alpha {opts.alpha:g} / {looks} = {level:.4g} (Bonferroni over up to {looks} looks as seeds are "
            f"added), so intervals are {100 * (1 - level):.1f}% intervals; they resample seeds, then users (two-level) "
            f"once both arms have two seeds. p is Holm-adjusted over the arms' tests; 'better' / 'worse' need that p "
            f"under {level:.4g} and the interval clear of 0; 'equivalent' means the interval lies within "
            f"±{opts.margin * 100:g}% of IDRec.")


def run_study(opts: StudyOptions, dry_run: bool = False, log: Callable[[str], None] = print,
              command: str = "") -> dict:
    """Plan (and with ``dry_run`` stop there), train, decide and write the report; returns what it did."""
    from ..report import copy_run_summary
    from .report import floor_summary, summarize_arm, write_report

    study = Study(opts, log)
    if dry_run:
        plan = study.plan()
        log(study.describe(plan))
        return {"plan": plan}
    done = study.run()
    report_dir = study.out / "report"
    summaries = {}
    for arm in done["plan"]["arms"]:
        if arm.trains:
            # each run's small files (config, results, curves, per-user ranks; no weights) beside the report, so
            # the report folder alone reproduces every number in it
            copies = []
            for run in study.run_dirs(arm.key):
                copy_run_summary(run, report_dir / "runs" / run.name)
                copies.append(report_dir / "runs" / run.name)
            summaries[arm.key] = summarize_arm(arm, copies, PRIMARY)
        else:
            summaries[arm.key] = floor_summary(arm, study.ds)
    looks = opts.seeds_max - opts.seeds_min + 1
    context = {"dataset": study.ds.name, "margin": opts.margin, "method": method_text(opts, looks),
               "command": command or f"morec study {opts.data} --out {opts.out}", "notes": done["plan"]["notes"]}
    page = write_report(report_dir, summaries, done["verdicts"], context, done["new_items"])
    log(f"[study] report: {page} and {page.with_suffix('.md')} ({format_duration(study.elapsed())} used of "
        f"{format_duration(opts.budget)})")
    return {**done, "report": page, "summaries": summaries}
