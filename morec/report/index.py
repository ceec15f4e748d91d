"""The runs index (runs.md) written beside a report's or a sweep's tables: what each arm label links to."""
from __future__ import annotations

from pathlib import Path

from .arms import INDEX, Arm, dirs_text, key_settings
from .tables import format_table

__all__ = ["INDEX", "runs_index", "write_runs_index"]


def runs_index(arms: list[Arm], where: Path) -> str:
    """runs.md: every arm's label (the tables' link target), its run directories relative to ``where``, its seeds
    and key settings."""
    rows = [{"arm": f'<a id="{a.anchor}"></a>{a.label}', "dataset": a.dataset,
             "runs": f"`{dirs_text(a.dirs, where)}`", "seeds": ", ".join(map(str, a.seeds)),
             "settings": key_settings(a.config)} for a in sorted(arms, key=lambda a: a.label)]
    return ("# Runs\n\nEvery arm the tables name: its run directories (relative to this file; `name-s{1,2}` = "
            "`name-s1` and `name-s2`), seeds and key settings. Each run's config.yaml holds all of its settings.\n\n"
            + format_table(rows, ["arm", "dataset", "runs", "seeds", "settings"]) + "\n")


def write_runs_index(arms: list[Arm], out: Path) -> Path:
    path = Path(out) / INDEX
    path.write_text(runs_index(arms, Path(out)), encoding="utf-8")
    return path
