"""Reports in the paper's shapes from run and sweep directories: finding the runs (:mod:`.discovery`), the
tables (:mod:`.tables`) and the figures (:mod:`.figures`); here the whole report, the committed run
summaries it is rebuilt from, and the generated blocks of documents."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from .discovery import RunInfo, find_runs, group_seeds, load_arm, load_run_info
from .arms import label_groups
from .figures import (plot_accuracy_by_encoder, plot_datasets_popularity, plot_item_popularity, plot_lr_curves,
                      plot_sequence_lengths)
from .index import write_runs_index
from .tables import Family, Table, build_tables, common_k, first_seen, format_table, results_rows

__all__ = ["RunInfo", "Table", "build_tables", "copy_run_summaries", "copy_run_summary", "fill_blocks", "find_runs", "format_table",
           "group_seeds", "load_arm", "load_run_info", "plot_item_popularity", "plot_sequence_lengths", "relink",
           "results_rows", "write_report"]


def write_report(paths: list[str | Path], out: str | Path = "report") -> list[Path]:
    """Tables (Markdown + CSV) and plots (PNG) from run / sweep directories into ``out``; returns the files written.
    Only tables whose runs exist are written; report.md holds every table."""
    runs = find_runs(paths)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    family = Family()
    tables = build_tables(runs, family)
    written: list[Path] = [write_runs_index(label_groups(group_seeds(runs)), out)]
    for t in tables:
        for ext, text in (("md", t.markdown()), ("csv", t.csv())):
            path = out / f"{t.name}.{ext}"
            path.write_text(text, encoding="utf-8")
            written.append(path)
    k = common_k([r for r in runs if r.usable])
    plots = plot_datasets_popularity(runs, out) + plot_accuracy_by_encoder(group_seeds(runs), out, k) \
        + plot_lr_curves(runs, out, k)
    collapsed = [r for r in runs if r.collapsed]
    lines = ["# morec report", "", f"{len(runs)} runs: " + ", ".join(first_seen(str(r.dir) for r in runs)), ""]
    if collapsed:
        lines += ["Collapsed runs (never chosen): " + "; ".join(
            f"{r.dir} ({r.results.get('collapse', '')})" for r in collapsed), ""]
    verdicts = first_seen(v for t in tables for v in t.verdicts)  # Tables 2 and 5 may compare the same pair
    if verdicts:
        section = ["## Verdicts", "", verdicts_intro(family), ""] + [f"- {v}" for v in verdicts] + [""]
        lines += section
        (out / "verdicts.md").write_text("\n".join(section), encoding="utf-8")
        written.append(out / "verdicts.md")
    lines += [t.markdown() for t in tables]
    lines += ["## Figures", ""] + [f"![{p.stem}]({p.name})" for p in plots]
    index = out / "report.md"
    index.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [index, *written, *plots]


def verdicts_intro(family: Family) -> str:
    n = sum(len(c.paired) for c in family.comparisons.values())
    return (f"From the paired statistics of the Improv. rows, one family of {n} tests (each pair on each metric), "
            "Holm-adjusted: better / worse only when the Holm-adjusted p < 0.05 and the printed 95% interval excludes "
            f"0; equivalent within ±{100 * family.margin:g}% when that interval lies inside the margin; otherwise no "
            "detectable difference. The interval covers seeds and users (two-level bootstrap) where both arms have "
            "2 or more seeds; with one seed in an arm it covers users only and the verdict is provisional.")


SUMMARY_FILES = ("config.yaml", "results.json", "metrics.jsonl", "ranks.npz")


def copy_run_summaries(paths: list[str | Path], dest: str | Path) -> Path:
    """Copy each finished run's small files (config, results, per-epoch metrics, per-user ranks; never weights or
    checkpoints) into ``dest/<run name>``, so a report can be rebuilt and checked from what a repository holds."""
    dest = Path(dest)
    for r in find_runs(paths):
        copy_run_summary(r.dir, dest / r.dir.name)
    return dest


def copy_run_summary(run_dir: str | Path, target: str | Path) -> None:
    """One run directory's small files (:data:`SUMMARY_FILES`) copied into ``target``."""
    run_dir, target = Path(run_dir), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    for name in SUMMARY_FILES:
        if (run_dir / name).exists():
            shutil.copy2(run_dir / name, target / name)


LINK_TARGET = re.compile(r"\]\((?![a-z]+:|#|/)([^)#\s]+)(#[^)\s]*)?\)")  # a Markdown link to a relative path


def relink(text: str, src: str | Path, doc: str | Path) -> str:
    """``text`` of file ``src`` with its relative links (a table's runs.md#arm) made relative to ``doc`` instead,
    so that they still resolve once the text is copied into ``doc``."""
    def fix(m):
        target = os.path.relpath(Path(src).parent / m.group(1), Path(doc).parent)
        return f"]({Path(target).as_posix()}{m.group(2) or ''})"

    return LINK_TARGET.sub(fix, text)


BLOCK = re.compile(r"(<!-- results: (?P<src>\S+) -->\n)(?P<body>.*?)(<!-- /results -->)", re.S)


def fill_blocks(doc: str | Path) -> int:
    """Rewrite every ``<!-- results: FILE -->`` ... ``<!-- /results -->`` block of ``doc`` with FILE's text (a path
    relative to the repository root, e.g. a report's table5_ts_vs_e2e.md, its links made relative to ``doc``);
    returns how many blocks were filled."""
    doc = Path(doc)
    text = doc.read_text(encoding="utf-8")
    count = 0

    def fill(m):
        nonlocal count
        count += 1
        body = relink(Path(m.group("src")).read_text(encoding="utf-8").strip(), m.group("src"), doc)
        return f"{m.group(1)}{body}\n{m.group(4)}"

    doc.write_text(BLOCK.sub(fill, text), encoding="utf-8")
    return count
