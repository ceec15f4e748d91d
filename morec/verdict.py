"""Whether two arms (runs or seed groups) may be compared, whether their budgets were equal, and the verdict.

Shared by ``morec compare`` and the Improv. rows of ``morec report``. An arm is any object with ``config``
and ``results`` (a run's saved config and results.json) and ``ranks(split)`` (the per-seed per-user ranks,
or None where a run kept none); a seed group lists its runs in ``members``.

- :func:`comparability_problems`: reasons the arms cannot be compared at all (another prepared dataset or
  split, other evaluation settings, no per-user ranks) — ``morec compare`` refuses with them;
- :func:`budget_notes`: differences of training budget (max epochs, patience, selection metric) and runs that
  hit their epoch cap while still improving ("capped") or collapsed — said in every verdict;
- :func:`compare_arms`: the paired statistics (:mod:`morec.stats`) on each metric, with the notes and a
  one-line verdict.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .config import ConfigError
from .stats import ALPHA, Paired, format_improv, format_p, paired

BUDGET_KEYS = (("train", "epochs", "max epochs"), ("train", "patience", "patience"),
               ("eval", "select_metric", "selection metric"))
EVAL_KEYS = ("mask_history",)


class ComparisonError(ConfigError):
    """Two arms that cannot be compared (or only with unequal budgets, which was not allowed): the reasons."""


def members(arm) -> list:
    return list(getattr(arm, "members", None) or [arm])


def _get(config: dict, section: str, key: str) -> Any:
    return (config.get(section) or {}).get(key)


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
    for section, key, label in BUDGET_KEYS:
        va = sorted({str(_get(r.config, section, key)) for r in runs_a})
        vb = sorted({str(_get(r.config, section, key)) for r in runs_b})
        if va != vb or len(va) > 1:
            notes.append(f"unequal budgets: {label} {'/'.join(va)} vs {'/'.join(vb)}")
    for name, runs in (("A", runs_a), ("B", runs_b)):
        capped = [r for r in runs if r.results.get("capped") or r.results.get("stop_reason") == "epochs"]
        if capped:
            notes.append(f"{name}: {len(capped)} of {len(runs)} runs stopped at their epoch cap "
                         f"({_get(capped[0].config, 'train', 'epochs')}) while validation could still improve (capped)")
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


def compare_arms(a, b, metrics: list[str], alpha: float = ALPHA, names: tuple[str, str] = ("A", "B"),
                 equal_budgets: bool = False) -> dict:
    """Paired comparison of arm B against arm A on each metric (test split). Raises ComparisonError with the
    reasons when the arms cannot be compared, or, with ``equal_budgets``, when their budgets differ."""
    problems = [p for m in metrics for p in comparability_problems(a, b, m)]
    if problems:
        raise ComparisonError("cannot compare: " + "; ".join(dict.fromkeys(problems)))
    notes = budget_notes(a, b)
    unequal = [n for n in notes if n.startswith("unequal budgets")]
    if equal_budgets and unequal:
        raise ComparisonError("the arms were trained with different budgets (" + "; ".join(unequal) + "); train them "
                              "with the same train.epochs, train.patience and eval.select_metric, or pass "
                              "--allow-unequal-budgets to compare anyway (the verdict then says so)")
    ra, rb = arm_ranks(a), arm_ranks(b)
    results = {m: paired(ra, rb, m, alpha) for m in metrics}
    return {"a": {"name": names[0], "dir": str(a.dir), "runs": [str(r.dir) for r in members(a)]},
            "b": {"name": names[1], "dir": str(b.dir), "runs": [str(r.dir) for r in members(b)]},
            "metrics": {m: c.to_dict() for m, c in results.items()}, "notes": notes,
            "verdict": verdict_line(results, notes, names), "paired": results}


def verdict_line(results: dict[str, Paired], notes: list[str], names: tuple[str, str] = ("A", "B")) -> str:
    """One sentence: B against A on each metric (better / worse / no detectable difference, Improv. with its
    95% CI and p), then the budget notes."""
    parts = []
    for metric, c in results.items():
        parts.append(f"{metric.upper()} {c.verdict} "
                     f"({format_improv(c)}, p {format_p(c.p)})")
    seeds = next(iter(results.values()))
    line = (f"{names[1]} vs {names[0]} on test ({seeds.seeds_b} vs {seeds.seeds_a} seeds, {seeds.users} users): "
            + "; ".join(parts))
    if notes:
        line += ". Caveats: " + "; ".join(notes)
    return line + "."
