"""Whether two arms (runs or seed groups) may be compared, whether their budgets were equal, and the verdict.

Shared by ``morec compare`` and the Improv. rows of ``morec report``. An arm is any object with ``config``
and ``results`` (a run's saved config and results.json) and ``ranks(split)`` (the per-seed per-user ranks,
or None where a run kept none); a seed group lists its runs in ``members``.

- :func:`comparability_problems`: reasons the arms cannot be compared at all (another prepared dataset or
  split, other evaluation settings, no per-user ranks) — ``morec compare`` refuses with them;
- :func:`budget_notes`: differences of training budget (max epochs, patience, selection metric, learning rates,
  how often and on which users validation ran) and runs that hit their epoch cap while validation was still
  rising ("capped") or collapsed — said in every verdict;
- :func:`compare_arms`: the paired statistics (:mod:`morec.stats`) on each metric, Holm-adjusted over the
  metrics compared, with the notes and a one-line verdict.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .config import Config, ConfigError, from_dict, to_dict
from .runlog import capped
from .stats import ALPHA, MARGIN, Paired, adjust, metric_sentence, paired

BUDGET_KEYS = (("train", "epochs", "max epochs"), ("train", "patience", "patience"),
               ("eval", "select_metric", "selection metric"), ("train", "lr", "learning rate"),
               ("model.encoder", "lr", "encoder learning rate"), ("eval", "valid_every", "eval.valid_every"),
               ("eval", "valid_from", "eval.valid_from"), ("eval", "valid_users", "eval.valid_users"))
EVAL_KEYS = ("mask_history",)


class ComparisonError(ConfigError):
    """Two arms that cannot be compared (or only with unequal budgets, which was not allowed): the reasons."""


def members(arm) -> list:
    return list(getattr(arm, "members", None) or [arm])


def _get(config: dict, section: str, key: str) -> Any:
    for part in section.split("."):
        config = config.get(part) or {}
    return config.get(key)


def _resolved(config: dict) -> dict:
    """The saved config with settings added later at their defaults, so an absent key reads as its default."""
    try:
        return to_dict(from_dict(Config, config))
    except (ConfigError, TypeError, ValueError):
        return config


def _dataset_key(run) -> tuple:
    """The dataset a run was trained and scored on: its recorded identity (fingerprint of sequences and split),
    or for runs from before it was recorded the prepared directory's name and the user count."""
    ident = run.results.get("dataset") or {}
    if ident.get("fingerprint"):
        return ("fingerprint", ident["fingerprint"])
    return ("path", Path(str(run.config.get("data", ""))).name)


def comparability_problems(a, b, metric: str) -> list[str]:
    """Why arms ``a`` and ``b`` cannot be compared on ``metric`` (empty: they can)."""
    problems = []
    runs_a, runs_b = members(a), members(b)
    keys = {_dataset_key(r) for r in runs_a + runs_b}
    if len(keys) > 1:
        named = sorted({f"{r.config.get('data', '?')} ({_dataset_key(r)[1][:12]})" for r in runs_a + runs_b})
        problems.append("the runs were trained on different prepared datasets or splits: " + ", ".join(named))
    for key in EVAL_KEYS:
        values = {str(_get(r.config, "eval", key)) for r in runs_a + runs_b}
        if len(values) > 1:
            problems.append(f"the runs differ in eval.{key} ({', '.join(sorted(values))}): their ranks are not comparable")
    for r in runs_a + runs_b:
        if r.results.get("stop_reason") == "collapsed" or not r.results.get("test"):
            continue
        if metric not in r.results["test"]:
            problems.append(f"{r.dir} has no test {metric} (eval.ks {_get(r.config, 'eval', 'ks')})")
    for name, arm in (("A", a), ("B", b)):
        if not arm_ranks(arm):
            problems.append(f"arm {name} ({arm.dir}) has no usable run with per-user test ranks (ranks.npz); "
                            "runs trained before morec kept them must be trained again")
    return problems


def budget_notes(a, b) -> list[str]:
    """Budget differences between the arms and capped / collapsed runs, as sentences for a verdict."""
    notes = []
    runs_a, runs_b = members(a), members(b)
    id_arm = any(_get(r.config, "model.encoder", "kind") == "id" for r in runs_a + runs_b)
    for section, key, label in BUDGET_KEYS:
        if id_arm and section == "model.encoder":
            continue  # an ID embedding trains at train.lr: the encoder's own rate is no budget of that arm
        va = sorted({str(_get(_resolved(r.config), section, key)) for r in runs_a})
        vb = sorted({str(_get(_resolved(r.config), section, key)) for r in runs_b})
        if va != vb or len(va) > 1:
            notes.append(f"unequal budgets: {label} {'/'.join(va)} vs {'/'.join(vb)}")
    for name, runs in (("A", runs_a), ("B", runs_b)):
        hit = [r for r in runs if capped(r.results)]
        if hit:
            notes.append(f"{name}: {len(hit)} of {len(runs)} runs stopped at their epoch cap "
                         f"({_get(hit[0].config, 'train', 'epochs')}) while validation was still rising (capped)")
        collapsed = [r for r in runs if r.results.get("stop_reason") == "collapsed"]
        if collapsed:
            notes.append(f"{name}: {len(collapsed)} of {len(runs)} runs collapsed and are left out")
    return notes


def arm_ranks(arm, split: str = "test") -> list:
    """The usable runs' per-user ranks on ``split``, one array per seed ([] where any usable run kept none)."""
    out = []
    for r in members(arm):
        if r.results.get("stop_reason") == "collapsed" or not r.results.get(split):
            continue
        ranks = r.ranks(split)
        if ranks is None:
            return []
        out.append(ranks)
    return out


class Comparison:
    """Arm B against arm A on some metrics: the paired statistics before and after a family's adjustment."""

    def __init__(self, a, b, metrics: list[str], alpha: float, names: tuple[str, str], margin: float):
        self.a, self.b, self.names, self.alpha, self.margin = a, b, tuple(names), alpha, margin
        self.notes = budget_notes(a, b)
        self.ranks = arm_ranks(a), arm_ranks(b)
        self.paired: dict[str, Paired] = {m: self._paired(m) for m in metrics}

    def _paired(self, metric: str, thresholds=None) -> Paired:
        return paired(*self.ranks, metric, self.alpha, margin=self.margin, thresholds=thresholds)

    def tests(self) -> list[tuple["Comparison", str]]:
        return [(self, m) for m in self.paired]

    def result(self) -> dict:
        a, b = self.a, self.b
        return {"a": {"name": self.names[0], "dir": str(a.dir), "runs": [str(r.dir) for r in members(a)]},
                "b": {"name": self.names[1], "dir": str(b.dir), "runs": [str(r.dir) for r in members(b)]},
                "metrics": {m: c.to_dict() for m, c in self.paired.items()}, "notes": self.notes,
                "verdict": verdict_line(self.paired, self.notes, self.names), "paired": self.paired}


def adjust_family(comparisons: list[Comparison]) -> None:
    """Holm's correction over every test of ``comparisons`` (each metric of each pair is one test), in place."""
    tests = [t for c in comparisons for t in c.tests()]
    redo = [lambda th, c=c, m=m: c._paired(m, th) for c, m in tests]
    adjusted = adjust([c.paired[m] for c, m in tests], redo)
    for (c, m), p in zip(tests, adjusted):
        c.paired[m] = p


class Family:
    """Every comparison of one report, computed once each (Tables 2 and 5 may hold the same pair), then
    Holm-adjusted together before any row or verdict is written."""

    def __init__(self, alpha: float = ALPHA, margin: float = MARGIN):
        self.alpha, self.margin = alpha, margin
        self.comparisons: dict[tuple[str, str], Comparison] = {}

    def get(self, old, new, metrics: list[str], names: tuple[str, str]) -> Comparison:
        key = (str(old.dir), str(new.dir))
        if key not in self.comparisons:
            self.comparisons[key] = Comparison(old, new, metrics, self.alpha, names, self.margin)
        return self.comparisons[key]

    def adjust(self) -> int:
        adjust_family(list(self.comparisons.values()))
        return sum(len(c.paired) for c in self.comparisons.values())


def check_comparable(a, b, metrics: list[str], equal_budgets: bool) -> None:
    """Raise ComparisonError with the reasons when the arms cannot be compared, or, with ``equal_budgets``,
    when their budgets differ."""
    problems = [p for m in metrics for p in comparability_problems(a, b, m)]
    if problems:
        raise ComparisonError("cannot compare: " + "; ".join(dict.fromkeys(problems)))
    unequal = [n for n in budget_notes(a, b) if n.startswith("unequal budgets")]
    if equal_budgets and unequal:
        raise ComparisonError("the arms were trained with different budgets (" + "; ".join(unequal) + "); train them "
                              "with the same train.epochs, train.patience, eval.select_metric, learning rates and "
                              "eval.valid_every / valid_from / valid_users, or pass --allow-unequal-budgets to "
                              "compare anyway (the verdict then says so)")


def compare_arms(a, b, metrics: list[str], alpha: float = ALPHA, names: tuple[str, str] = ("A", "B"),
                 equal_budgets: bool = False, margin: float = MARGIN) -> dict:
    """Paired comparison of arm B against arm A on each metric (test split), Holm-adjusted over the metrics.
    Raises ComparisonError with the reasons when the arms cannot be compared, or, with ``equal_budgets``, when
    their budgets differ."""
    check_comparable(a, b, metrics, equal_budgets)
    cmp = Comparison(a, b, metrics, alpha, names, margin)
    adjust_family([cmp])
    return cmp.result()


def verdict_line(results: dict[str, Paired], notes: list[str], names: tuple[str, str] = ("A", "B")) -> str:
    """One sentence: B against A on each metric (verdict word, Improv. with the interval that decided it, p raw
    and Holm-adjusted, the level of variation covered), then the budget notes."""
    parts = [metric_sentence(c) for c in results.values()]
    first = next(iter(results.values()))
    family = "one test, no family correction" if first.family == 1 else f"Holm over {first.family} tests"
    line = (f"{names[1]} vs {names[0]} on test ({first.seeds_b} vs {first.seeds_a} seeds, {first.users} users; "
            f"{family}): " + "; ".join(parts))
    if notes:
        line += ". Caveats: " + "; ".join(notes)
    return line + "."
