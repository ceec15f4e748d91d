"""Comparisons of arms loaded from run directories, as `morec compare`, `morec tune` and the API ask for them:
several pairs as one Holm family, the chosen tune configurations against the base config, and the text
`morec compare` prints. The statistics are :mod:`morec.stats`'; the rules of comparability :mod:`morec.verdict`'s.
"""
from __future__ import annotations

from typing import Callable

from .report import format_table, load_arm
from .stats import ALPHA, MARGIN, detail, format_improv, p_text
from .verdict import Comparison, ComparisonError, adjust_family, check_comparable


def comparisons(pairs: list[tuple], metrics: list[str] | None = None, names=None, alpha: float = ALPHA,
                allow_unequal_budgets: bool = False, margin: float = MARGIN) -> list[dict]:
    """Several pairs of arms as one family: every pair on every metric (default: hr@K of the first eval.ks and
    the selection metric), Holm-adjusted together. ``names``: labels of a single pair (several pairs are named
    by their paths). Refused (ComparisonError) as `morec compare` refuses."""
    done = []
    for a, b in pairs:
        arm_a, arm_b = load_arm(a), load_arm(b)
        wanted = metrics or [f"hr@{arm_a.config.get('eval', {}).get('ks', [10])[0]}", arm_a.select_metric]
        wanted = list(dict.fromkeys(wanted))
        check_comparable(arm_a, arm_b, wanted, equal_budgets=not allow_unequal_budgets)
        done.append(Comparison(arm_a, arm_b, wanted, alpha, tuple(names or (str(a), str(b))), margin))
    adjust_family(done)
    return [c.result() for c in done]


def chosen_vs_base(seed_arms: list[dict], log: Callable[[str], None] = print) -> list[str]:
    """Each chosen configuration against the base config on their seed runs: the paired statistics of
    :mod:`morec.stats` (seeds and users, Holm over the pairs and metrics), as verdict sentences."""

    def runs(s):
        return [r["dir"] for r in s["runs"] if r["status"] == "done"]

    base = next((s for s in seed_arms if s["arm"] == "base" and runs(s)), None)
    if base is None:
        return []
    comparisons = []
    for s in seed_arms:
        if s["arm"] != "chosen" or not runs(s):
            continue
        a, b = load_arm(runs(base)), load_arm(runs(s))
        metrics = list(dict.fromkeys([f"hr@{a.config['eval']['ks'][0]}", a.select_metric]))
        try:
            check_comparable(a, b, metrics, equal_budgets=False)
        except ComparisonError as err:
            log(f"chosen vs base: {err}")
            continue
        name = " ".join(["chosen", *map(str, s["group"].values())])
        comparisons.append(Comparison(a, b, metrics, ALPHA, ("base", name), MARGIN))
    adjust_family(comparisons)
    return [c.result()["verdict"] for c in comparisons]


def comparison_text(result: dict) -> str:
    """What `morec compare` prints for one pair: the arms, a table per metric, each interval's level, the verdict."""
    names = (result["a"]["name"], result["b"]["name"])
    seeds = lambda n: f"{n} seed" if n == 1 else f"{n} seeds"  # noqa: E731
    rows = [{"test metric": m, f"{names[0]} ({seeds(c.seeds_a)})": f"{100 * c.mean_a:.2f}",
             f"{names[1]} ({seeds(c.seeds_b)})": f"{100 * c.mean_b:.2f}", "Improv. [95% CI]": format_improv(c),
             "p": p_text(c)[2:], "verdict": c.verdict + (" (provisional)" if c.provisional else "")}
            for m, c in result["paired"].items()]
    levels = "\n".join(f"{m}: {detail(c)}" for m, c in result["paired"].items())
    return (f"{names[0]}: {result['a']['dir']}\n{names[1]}: {result['b']['dir']}\n\n{format_table(rows, list(rows[0]))}"
            f"\n\n{levels}\n\n{result['verdict']}\n")
