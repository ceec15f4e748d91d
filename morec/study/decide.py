"""The study's verdicts: every content arm against IDRec, on the same users, over seeds, after each round.

One look is one round of seeds. A study may look up to ``looks`` times (``seeds_max - seeds_min + 1``), so each
look tests at alpha / looks (Bonferroni over the looks: the chance of any false "better" / "worse" over all the
looks stays under alpha), and within a look Holm's correction runs over the arms' tests (the family). The
interval is two-level (seeds, then users) once both arms have two seeds or more; with one seed it covers users
only and the verdict is provisional. An arm is decided when its verdict is better, worse or equivalent within the
margin; "no detectable difference" asks for more seeds.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..ranks import load_ranks
from ..stats import adjust, paired


DECIDED = ("better", "worse", "equivalent")


@dataclass
class ArmVerdict:
    key: str
    metric: str
    verdict: str
    test: object  # morec.stats.Paired
    seeds: int

    @property
    def decided(self) -> bool:
        return self.verdict.split(" ")[0] in DECIDED


def run_ranks(run_dirs: list[Path], split: str = "test", users: np.ndarray | None = None) -> list[np.ndarray]:
    """Each run's per-user ranks on ``split`` (only ``users`` where given: a subset such as new-item users)."""
    out = []
    for d in run_dirs:
        ranks = load_ranks(d)
        if ranks is not None and ranks.get(split) is not None:
            out.append(ranks[split] if users is None else ranks[split][users])
    return out


def verdicts(reference: list[Path], arms: dict[str, list[Path]], metric: str, alpha: float, margin: float,
             looks: int, users: np.ndarray | None = None) -> dict[str, ArmVerdict]:
    """Each arm (key -> its finished run directories) against the reference runs on ``metric``, Holm-corrected
    over the arms and Bonferroni over ``looks``; over ``users`` only where given."""
    ref = run_ranks(reference, users=users)
    ranks = {k: run_ranks(dirs, users=users) for k, dirs in arms.items()}
    keys = [k for k in arms if ranks[k] and ref]
    if not keys:
        return {}
    level = alpha / max(looks, 1)

    def test(key, thresholds=None):
        return paired(ref, ranks[key], metric, alpha=level, margin=margin, thresholds=thresholds)

    tests = adjust([test(k) for k in keys], [lambda th, k=k: test(k, th) for k in keys])
    return {k: ArmVerdict(k, metric, t.verdict, t, len(ranks[k])) for k, t in zip(keys, tests)}
