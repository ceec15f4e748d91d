"""Tables and plots in the paper's shapes."""
from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import Config, ConfigError, from_dict, to_dict


def format_table(rows: list[dict], columns: list[str], floats: str = "{:.4f}") -> str:
    """A Markdown table; floats formatted, other values as text."""
    def cell(v):
        return "" if v is None else floats.format(v) if isinstance(v, float) else str(v)

    body = [[cell(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(b[i]) for b in body)) if body else len(c) for i, c in enumerate(columns)]
    line = lambda vals: "| " + " | ".join(v.ljust(w) for v, w in zip(vals, widths)) + " |"  # noqa: E731
    return "\n".join([line(columns), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, body)])


def results_rows(name: str, results: dict, ks: list[int]) -> list[dict]:
    """One row per split: HR@k / NDCG@k of a finished run."""
    rows = []
    for split in ("valid", "test"):
        row = {"model": name, "split": split}
        for k in ks:
            row[f"HR@{k}"] = results[split][f"hr@{k}"]
            row[f"NDCG@{k}"] = results[split][f"ndcg@{k}"]
        rows.append(row)
    return rows


def _save_figure(fig, path: str | Path) -> Path:
    """Lay out, write (parent folders made) and close one figure; returns its path."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_sequence_lengths(lengths: np.ndarray, path: str | Path, title: str = "") -> Path:
    """Histogram of users' sequence lengths (interactions per user, all splits), median marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lengths = np.asarray(lengths)
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    bins = np.arange(lengths.min(), lengths.max() + 2) if lengths.max() - lengths.min() < 60 else 50
    ax.hist(lengths, bins=bins, color="tab:blue", alpha=0.8)
    ax.axvline(float(np.median(lengths)), color="k", ls="--", lw=1, label=f"median {np.median(lengths):g}")
    ax.set_xlabel("interactions per user")
    ax.set_ylabel("users")
    ax.set_title(title or "sequence lengths")
    ax.legend()
    ax.grid(alpha=0.3)
    return _save_figure(fig, path)


def plot_item_popularity(train_item_counts: np.ndarray, path: str | Path, title: str = "") -> Path:
    """The paper's Figure 3: items sorted by training interactions, log-scaled counts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.sort(np.asarray(train_item_counts)[1:])[::-1]
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    ax.plot(np.arange(1, len(counts) + 1), np.maximum(counts, 0.8), lw=1.5)
    ax.set_yscale("log")
    ax.set_xlabel("items, most popular first")
    ax.set_ylabel("training interactions")
    ax.set_title(title or "item popularity")
    ax.grid(alpha=0.3)
    return _save_figure(fig, path)


# --- reports from run directories: the paper's tables 2-7 and 9, figures 3-5 ----------------------------
#
# Every table cell is one configuration: a run directory, or the runs of one configuration that differ only
# in train.seed (a seed group: the cell shows the mean ± standard deviation over its seeds and their number).
# Where several configurations fill the same cell (a sweep over learning rates, sizes, ...) the cell shows the
# one with the best VALIDATION score (its config's eval.select_metric; the mean over seeds); the test numbers
# shown are its. "Best MoRec" / "best IDRec" in the Improv. rows are chosen the same way, on validation (the
# paper bolds the best test number, which would be selecting on test); Improv. comes with a 95% paired
# bootstrap interval over users and a paired permutation p-value (morec.stats), marked * when significant.
# Collapsed runs are never chosen. Accuracy is in percent, as in the paper.

@dataclass
class RunInfo:
    """One finished run directory, as the report reads it."""

    dir: Path
    results: dict
    config: dict
    prepare: dict = field(default_factory=dict)  # the dataset manifest's prepare settings ({} if unknown)
    dataset: str = ""
    log: list = field(default_factory=list)  # metrics.jsonl records
    members: list = field(default_factory=list)  # a seed group's runs; [] for a single run

    def ranks(self, split: str = "test"):
        """This run's per-user ranks on ``split`` (ranks.npz), None where it kept none."""
        from .ranks import load_ranks

        if not hasattr(self, "_ranks"):
            self._ranks = load_ranks(self.dir)
        return (self._ranks or {}).get(split)

    @property
    def runs(self) -> list["RunInfo"]:
        """The runs behind this cell: the seed group's, or this run."""
        return self.members or [self]

    @property
    def seeds(self) -> int:
        """Usable runs behind the cell (seeds averaged)."""
        return sum(r.usable for r in self.runs)

    def spread(self, split: str, metric: str) -> float | None:
        """Sample standard deviation over the usable seeds (None for one seed)."""
        values = [float(r.results[split][metric]) for r in self.runs if r.usable and metric in r.results[split]]
        return float(np.std(values, ddof=1)) if len(values) > 1 else None

    @property
    def capped(self) -> int:
        return sum(bool(r.results.get("capped") or r.results.get("stop_reason") == "epochs") for r in self.runs)

    @property
    def n_collapsed(self) -> int:
        return sum(r.collapsed for r in self.runs)

    @property
    def enc(self) -> dict:
        return self.config.get("model", {}).get("encoder", {})

    @property
    def backbone(self) -> str:
        return self.config.get("model", {}).get("backbone", "sasrec")

    @property
    def is_id(self) -> bool:
        return self.enc.get("kind", "id") == "id"

    @property
    def collapsed(self) -> bool:
        return self.results.get("stop_reason") == "collapsed"

    @property
    def usable(self) -> bool:
        return not self.collapsed and bool(self.results.get("valid")) and bool(self.results.get("test"))

    @property
    def select_metric(self) -> str:
        return self.config.get("eval", {}).get("select_metric", "ndcg@10")

    @property
    def valid_score(self) -> float:
        return float(self.results["valid"].get(self.select_metric, -math.inf))

    @property
    def warm(self) -> int:
        return int(self.prepare.get("min_item_interactions", 0) or 0)

    @property
    def n_users(self) -> int:
        return int(self.prepare.get("n_users", 0) or 0)

    @property
    def new_items(self) -> float:
        return float(self.prepare.get("new_items", 0) or 0)

    @property
    def regular(self) -> bool:
        return self.warm == 0 and self.n_users == 0 and self.new_items == 0

    @property
    def fusion(self) -> str:
        return self.enc.get("fusion", "none")

    @property
    def lrs(self) -> tuple[float, float]:
        return float(self.config.get("train", {}).get("lr", 0)), float(self.enc.get("lr", 0))


def setting_label(r: RunInfo) -> str:
    """Regular, Warm-N, N users (subsample), new items held out: the dataset's prepare settings."""
    parts = ([f"Warm-{r.warm}"] if r.warm else []) + ([f"{r.n_users:,} users"] if r.n_users else []) \
        + ([f"new items {r.new_items:g}"] if r.new_items else [])
    return ", ".join(parts) or "Regular"


def encoder_label(enc: dict) -> str:
    """IDRec for ID embeddings; otherwise the item encoder's name (pretrained model or arch)."""
    if enc.get("kind", "id") == "id":
        return "IDRec"
    if enc.get("arch"):
        return enc["arch"]
    name = str(enc.get("pretrained") or enc.get("kind"))
    if name.startswith("timm:"):
        name = name[len("timm:"):]
    return Path(name.rstrip("/")).name or name


def training_label(enc: dict) -> str:
    """TS (frozen features), TS-DNN n (frozen + n MLP layers), E2E (whole encoder trained) or E2E top-n."""
    if enc.get("kind", "id") == "id":
        return "ID"
    mlp = int(enc.get("mlp_layers", 0) or 0)
    mode = enc.get("mode", "e2e")
    if mode == "frozen":
        return "TS" if mlp == 0 else f"TS-DNN {mlp}"
    base = "E2E" if mode == "e2e" else f"E2E top-{enc.get('train_layers', 0)}"
    return base if mlp == 0 else f"{base} + DNN {mlp}"


def _resolve_data(data: str, run_dir: Path) -> Path | None:
    if not data:
        return None
    p = Path(data)
    for cand in ([p] if p.is_absolute() else [p, run_dir / p]):
        if (cand / "manifest.json").exists():
            return cand
    return None


def load_run_info(run_dir: str | Path) -> RunInfo:
    run = Path(run_dir)
    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    config = results.get("config")
    if not config and (run / "config.yaml").exists():
        import yaml

        config = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    config = config or {}
    data = _resolve_data(str(config.get("data", "")), run)
    manifest = json.loads((data / "manifest.json").read_text(encoding="utf-8")) if data else {}
    log = []
    if (run / "metrics.jsonl").exists():
        for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
            if line.strip():
                log.append(json.loads(line))
    # a run copied without its data (committed summaries) still knows its dataset from results.json
    recorded = results.get("dataset") or {}
    prepare = manifest.get("prepare") or recorded.get("prepare") or {}
    dataset = manifest.get("name") or recorded.get("name") or (Path(str(config.get("data", ""))).name or "dataset")
    if prepare.get("split") == "time":  # another protocol: never in one cell with leave-one-out
        dataset += " (time split)"
    return RunInfo(run, results, config, prepare, dataset, log)


def find_runs(paths: list[str | Path]) -> list[RunInfo]:
    """Run directories (results.json) given directly, or found under the given folders (e.g. a sweep's out)."""
    dirs: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise FileNotFoundError(f"{p} does not exist; morec report takes run directories or folders holding them")
        if (p / "results.json").exists():
            dirs.append(p)
        else:
            found = sorted(f.parent for f in p.rglob("results.json"))
            if not found:
                raise FileNotFoundError(f"{p} holds no run directory (no results.json under it)")
            dirs.extend(found)
    seen, runs = set(), []
    for d in dirs:
        key = d.resolve()
        if key not in seen:
            seen.add(key)
            runs.append(load_run_info(d))
    return runs


# keys of a saved config that say where or how fast a run ran, not what it is
_NOT_CONFIG = {("out",), ("train", "seed"), ("train", "threads"), ("train", "progress"), ("train", "device")}


def _config_key(r: RunInfo) -> str:
    def strip(values, path=()):
        if isinstance(values, dict):
            return {k: strip(v, path + (k,)) for k, v in values.items() if path + (k,) not in _NOT_CONFIG}
        return values

    return json.dumps([r.dataset, strip(_resolved(r.config))], sort_keys=True, default=str)


def _resolved(config: dict) -> dict:
    """A saved config with every setting a later version added at its default (which keeps the old behaviour),
    so that seeds run before and after a new setting existed still group; as saved when it no longer loads."""
    try:
        return to_dict(from_dict(Config, config))
    except (ConfigError, TypeError, ValueError):
        return config


def _group_dir(runs: list[RunInfo]) -> Path:
    """``sweep/name_seed-{1,2,3}`` for a sweep's seed runs; otherwise the run directories joined with '+'."""
    parts = [re.fullmatch(r"(.*)_seed-(-?\d+)", r.dir.name) for r in runs]
    if all(parts) and len({m.group(1) for m in parts}) == 1 and len({r.dir.parent for r in runs}) == 1:
        return runs[0].dir.parent / f"{parts[0].group(1)}_seed-{{{','.join(m.group(2) for m in parts)}}}"
    return Path(" + ".join(str(r.dir) for r in runs))


def _mean_split(runs: list[RunInfo], split: str) -> dict | None:
    values = [r.results[split] for r in runs if r.results.get(split)]
    if not values:
        return None
    return {m: float(np.mean([v[m] for v in values])) for m in values[0] if all(m in v for v in values)}


def group_seeds(runs: list[RunInfo]) -> list[RunInfo]:
    """Runs whose configs differ only in train.seed (and where / how fast they ran) become one seed group: a
    RunInfo whose results are the means over its usable runs, with the runs in ``members``. A configuration
    with one run stays that run."""
    groups: dict[str, list[RunInfo]] = {}
    for r in runs:
        groups.setdefault(_config_key(r), []).append(r)
    out = []
    for members in groups.values():
        if len(members) == 1:
            out.append(members[0])
            continue
        members = sorted(members, key=lambda r: (r.config.get("train", {}).get("seed", 0), str(r.dir)))
        usable = [r for r in members if r.usable]
        first = (usable or members)[0]
        results = dict(first.results)
        results.update({"valid": _mean_split(usable, "valid"), "test": _mean_split(usable, "test"),
                         "stop_reason": first.results.get("stop_reason") if usable else "collapsed"})
        subsets = [r.results.get("test_subsets") for r in usable]
        if subsets and all(subsets):
            results["test_subsets"] = {name: {"users": s0.get("users", 0), **{m: float(np.mean([s[name][m] for s in subsets]))
                                                                               for m in s0 if m != "users"}}
                                       for name, s0 in subsets[0].items()}
        for key in ("seconds_per_epoch", "seconds_to_best"):
            values = [r.results[key] for r in usable if r.results.get(key) is not None]
            if values:
                results[key] = float(np.mean(values))
        peaks = [r.results["peak_memory_bytes"] for r in usable if r.results.get("peak_memory_bytes")]
        if peaks:
            results["peak_memory_bytes"] = max(peaks)
        out.append(RunInfo(_group_dir(members), results, first.config, first.prepare, first.dataset, first.log, members))
    return out


def load_arm(path: str | Path | list) -> RunInfo:
    """One arm of a comparison: a run directory, a folder holding the runs of one configuration (its seeds),
    a sweep's configuration name without its ``_seed-N`` suffix (``runs/sweep/NAME`` for ``NAME_seed-1``, ...),
    or a list of run directories of one configuration."""
    if isinstance(path, (list, tuple)):
        runs = find_runs(list(path))
        path = Path(" + ".join(map(str, path)))
    elif not Path(path).exists():
        path = Path(path)
        seeds = sorted(p for p in path.parent.glob(f"{glob_escape(path.name)}_seed-*") if (p / "results.json").exists())
        if not seeds:
            raise FileNotFoundError(f"{path} is not a run directory, a folder of runs, or a sweep configuration with "
                                    "_seed-N runs")
        runs = find_runs(seeds)
    else:
        path = Path(path)
        runs = find_runs([path])
    groups = group_seeds(runs)
    if len(groups) > 1:
        raise FileNotFoundError(f"{path} holds runs of {len(groups)} configurations (not only seeds apart): "
                                + ", ".join(str(g.dir) for g in groups[:4]) + "; give one of them")
    return groups[0]


def glob_escape(name: str) -> str:
    import glob

    return glob.escape(name)


def best_on_valid(runs: list[RunInfo]) -> RunInfo | None:
    """The usable run with the highest validation score; ties go to the first directory name."""
    ok = sorted((r for r in runs if r.usable), key=lambda r: str(r.dir))
    return max(ok, key=lambda r: r.valid_score) if ok else None


def _cells(runs: list[RunInfo], key) -> dict:
    """{cell key: best run on validation}, cells in first-seen order; runs where key(run) is None are left out."""
    groups: dict = {}
    for r in runs:
        k = key(r)
        if k is not None:
            groups.setdefault(k, []).append(r)
    out = {}
    for k, members in groups.items():
        b = best_on_valid(members)
        if b is not None:
            out[k] = b
    return out


def _pct(results_split: dict | None, metric: str) -> float | None:
    if not results_split or metric not in results_split:
        return None
    return 100.0 * float(results_split[metric])


def improvement(new: float | None, old: float | None) -> str:
    """Relative improvement of ``new`` over ``old`` as the paper writes it: '+5.48%'."""
    if new is None or old is None or old == 0:
        return ""
    return f"{(new - old) / old * 100:+.2f}%"


def _k(runs: list[RunInfo]) -> int:
    """The K of HR@K / NDCG@K in the tables: 10 when every run has it, else the smallest K all runs have."""
    common = None
    for r in runs:
        ks = {int(m.split("@")[1]) for m in (r.results.get("test") or {}) if "@" in m}
        common = ks if common is None else common & ks
    if not common:
        return 10
    return 10 if 10 in common else min(common)


@dataclass
class Table:
    name: str  # file stem
    title: str
    columns: list[str]
    rows: list[dict]
    floats: str = "{:.2f}"
    note: str = ""
    verdicts: list = field(default_factory=list)  # one sentence per Improv. row, from the statistics

    def markdown(self) -> str:
        columns = [c for c in self.columns if c not in ("notes", "p") or any(r.get(c) for r in self.rows)]
        text = f"## {self.title}\n\n{format_table(self.rows, columns, self.floats)}\n"
        text += f"\n{self.note}\n" if self.note else ""
        return text + "".join(f"\n- {v}" for v in self.verdicts) + ("\n" if self.verdicts else "")

    def csv(self) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(buf, self.columns, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for row in self.rows:
            w.writerow({c: ("" if row.get(c) is None else row.get(c, "")) for c in self.columns})
        return buf.getvalue()


def _order(values) -> list:
    return list(dict.fromkeys(values))


def _backbone_key(b: str) -> tuple:
    return ({"dssm": 0, "sasrec": 1}.get(b, 2), b)


def _cell(r: RunInfo, split: str, metric: str) -> float | str | None:
    """A cell's value in percent: the run's, or for a seed group 'mean ± std' over its seeds."""
    value = _pct(r.results.get(split), metric)
    spread = r.spread(split, metric)
    if value is None or spread is None:
        return value
    return f"{value:.2f} ± {100 * spread:.2f}"


def _notes(r: RunInfo) -> str:
    """Capped (stopped by the epoch cap while validation could still improve) and collapsed runs of a cell."""
    n = len(r.runs)
    notes = []
    if r.capped:
        notes.append("capped" if n == 1 else f"capped {r.capped}/{n}")
    if r.n_collapsed and r.usable:
        notes.append(f"collapsed {r.n_collapsed}/{n}")
    return ", ".join(notes)


def _accuracy_row(r: RunInfo, k: int, **lead) -> dict:
    return {**lead, f"HR@{k}": _cell(r, "test", f"hr@{k}"), f"NDCG@{k}": _cell(r, "test", f"ndcg@{k}"),
            "seeds": str(r.seeds), "notes": _notes(r), "run": str(r.dir)}


def _improv_row(new: RunInfo, old: RunInfo, k: int, verdicts: list[str], names: tuple[str, str], **lead) -> dict:
    """Improv. of ``new`` over ``old`` on test HR@k and NDCG@k: with per-user ranks, the paired statistics
    (95% CI, p, * when significant at 0.05) and a verdict sentence appended to ``verdicts``; without them
    (runs from before morec kept ranks) the plain relative difference, said to have no interval."""
    from .verdict import budget_notes, compare_arms, comparability_problems

    metrics = [f"hr@{k}", f"ndcg@{k}"]
    row = {**lead, "run": f"{new.dir} vs {old.dir}"}
    problems = [p for m in metrics for p in comparability_problems(old, new, m)]
    if problems:
        for m in metrics:
            row[m.upper()] = improvement(_pct(new.results["test"], m), _pct(old.results["test"], m))
        notes = budget_notes(old, new)
        row["notes"] = "; ".join(["no CI: " + problems[0]] + notes)
        verdicts.append(f"{names[1]} vs {names[0]}: no paired statistics ({problems[0]}); Improv. HR@{k} {row['HR@' + str(k)]}, "
                        f"NDCG@{k} {row['NDCG@' + str(k)]} from {new.seeds} vs {old.seeds} seeds"
                        + (f". Caveats: {'; '.join(notes)}" if notes else "") + ".")
        return row
    from .stats import format_improv, format_p

    cmp = compare_arms(old, new, metrics, names=names)
    for m in metrics:
        c = cmp["paired"][m]
        row[m.upper()] = format_improv(c) + (" *" if c.significant else "")
    row["p"] = " / ".join(format_p(cmp["paired"][m].p) for m in metrics)
    row["notes"] = "; ".join(cmp["notes"])
    verdicts.append(cmp["verdict"])
    return row


def _pure_morec(r: RunInfo, modes: tuple[str, ...] = ("e2e", "top", "frozen")) -> bool:
    """A pretrained modality encoder alone (no ID fusion), trained in one of ``modes``."""
    return not r.is_id and r.enc.get("mode", "e2e") in modes and r.fusion == "none" and not r.enc.get("from_scratch")


def _e2e_morec(r: RunInfo) -> bool:
    """MoRec trained end to end with the recommender: the whole encoder, or its top layers (mode=top)."""
    return _pure_morec(r, ("e2e", "top"))


def _pure_id(r: RunInfo) -> bool:
    return r.is_id and r.fusion == "none"


def _idrec_vs_e2e_cells(runs: list[RunInfo]) -> dict:
    """(dataset, backbone, item encoder, training) -> the run chosen on validation, for pure IDRec and MoRec
    trained end to end in the regular setting: what Table 2 and Figure 4 show."""
    pool = [r for r in runs if r.regular and (_pure_id(r) or _e2e_morec(r))]
    return _cells(pool, lambda r: (r.dataset, r.backbone, encoder_label(r.enc), training_label(r.enc)))


def ACCURACY_COLUMNS(k: int) -> list[str]:  # noqa: N802 (a constant per K)
    return ["dataset", "backbone", "item encoder", "training", f"HR@{k}", f"NDCG@{k}", "seeds", "p", "notes", "run"]


CELL_NOTE = ("Each cell: the configuration with the best validation score; with several seeds, mean ± standard "
             "deviation over them (seeds: how many). Improv.: the best MoRec over the best IDRec of the backbone, "
             "both chosen on validation, with its 95% paired bootstrap interval over users (pooled over seeds); p: "
             "paired permutation test (HR / NDCG); * = significant at 0.05. notes: capped = stopped by its epoch "
             "cap while validation could still improve.")


def _improv_rows(cells, k: int, verdicts: list[str], ds: str) -> list[dict]:
    """Per backbone: Improv. of the best MoRec over the best IDRec, both chosen on validation."""
    rows = []
    for bb in sorted(_order(r.backbone for r in cells), key=_backbone_key):
        best_id = best_on_valid([r for r in cells if r.is_id and r.backbone == bb])
        best_mo = best_on_valid([r for r in cells if not r.is_id and r.backbone == bb])
        if best_id and best_mo:
            name = f"{encoder_label(best_mo.enc)} {training_label(best_mo.enc)}"
            rows.append(_improv_row(best_mo, best_id, k, verdicts, (f"{ds} {bb} IDRec", f"{ds} {bb} {name}"),
                                    dataset=ds, backbone=bb, **{"item encoder": f"Improv. ({name} vs IDRec)"}))
    return rows


def table2(runs: list[RunInfo], k: int) -> Table | None:
    """IDRec vs MoRec (E2E, pretrained) per backbone, regular setting; Improv. = best MoRec over best IDRec."""
    cells = _idrec_vs_e2e_cells(runs)
    if not any(not r.is_id for r in cells.values()):
        return None
    rows, verdicts = [], []
    for ds in _order(c[0] for c in cells):
        mine = {c: r for c, r in cells.items() if c[0] == ds}
        for bb in sorted(_order(c[1] for c in mine), key=_backbone_key):
            here = sorted(((c, r) for c, r in mine.items() if c[1] == bb),
                          key=lambda cr: (not cr[1].is_id, cr[0][2], _training_rank(cr[1])))
            rows += [_accuracy_row(r, k, dataset=ds, backbone=bb, **{"item encoder": c[2], "training": c[3]})
                     for c, r in here]
        rows += _improv_rows(mine.values(), k, verdicts, ds)
    return Table("table2_idrec_vs_morec", "Table 2: IDRec vs MoRec, regular setting (test, %)",
                 ACCURACY_COLUMNS(k), rows, note="MoRec trained end to end with the recommender: the whole encoder "
                 "(E2E) or its top n layers (E2E top-n); two-stage MoRec is in Table 5. " + CELL_NOTE, verdicts=verdicts)


def table3(runs: list[RunInfo], k: int) -> Table | None:
    """Warm-N settings (items with fewer than N interactions removed before the split), IDRec vs MoRec."""
    if not any(r.warm > 0 for r in runs):
        return None
    pool = [r for r in runs if r.n_users == 0 and r.new_items == 0 and (_pure_id(r) or _pure_morec(r))]
    cells = _cells(pool, lambda r: (r.dataset, r.warm, r.backbone, encoder_label(r.enc), training_label(r.enc)))
    rows = [_accuracy_row(r, k, dataset=c[0], setting=f"Warm-{c[1]}" if c[1] else "Regular", backbone=c[2],
                          **{"item encoder": c[3], "training": c[4]})
            for c, r in sorted(cells.items(), key=lambda cr: (_order(x[0] for x in cells).index(cr[0][0]), cr[0][1],
                                                             _backbone_key(cr[0][2]), not cr[1].is_id, cr[0][3],
                                                             _training_rank(cr[1])))]
    return Table("table3_warm", "Table 3: IDRec vs MoRec in warm-start settings (test, %)",
                 ["dataset", "setting", "backbone", "item encoder", "training", f"HR@{k}", f"NDCG@{k}", "seeds", "notes",
                  "run"], rows,
                 note="Warm-N: items with fewer than N interactions removed (the dataset's prepare.min_item_interactions). "
                      "training: TS / TS-DNN n (frozen encoder), E2E / E2E top-n (encoder trained with the recommender).")


def table4(runs: list[RunInfo], k: int) -> Table | None:
    """Pre-trained (PE) vs trained from scratch (TFS) item encoders; Improv. = PE over TFS."""
    pool = [r for r in runs if not r.is_id and r.fusion == "none" and r.enc.get("mode", "e2e") == "e2e"
            and r.warm == 0 and r.new_items == 0]
    if not any(r.enc.get("from_scratch") for r in pool):
        return None
    cells = _cells(pool, lambda r: (r.dataset, r.n_users, r.backbone, encoder_label(r.enc), bool(r.enc.get("from_scratch"))))
    rows = []
    datasets = _order(c[0] for c in cells)
    keys = sorted(_order(c[:4] for c in cells if c[4]),  # the encoders with a from-scratch run; Base first
                  key=lambda c: (datasets.index(c[0]), c[1], _backbone_key(c[2]), c[3]))
    for key in keys:
        tfs, pe = cells.get((*key, True)), cells.get((*key, False))
        hr = lambda r: _pct(r.results["test"], f"hr@{k}") if r else None  # noqa: E731
        rows.append({"dataset": key[0], "users": f"{key[1]:,}" if key[1] else "Base", "backbone": key[2],
                     "item encoder": key[3], f"TFS HR@{k}": hr(tfs), f"PE HR@{k}": hr(pe),
                     "Improv.": improvement(hr(pe), hr(tfs)),
                     "run": "; ".join(f"{n}: {r.dir}" for n, r in (("TFS", tfs), ("PE", pe)) if r)})
    return Table("table4_pretrained_vs_scratch", "Table 4: pre-trained (PE) vs from-scratch (TFS) item encoder (test HR, %)",
                 ["dataset", "users", "backbone", "item encoder", f"TFS HR@{k}", f"PE HR@{k}", "Improv.", "run"], rows,
                 note="users: Base = every user; a number = the dataset's prepare.n_users subsample.")


def _training_rank(r: RunInfo) -> tuple:
    """ID, TS, TS-DNN (by layers), E2E top-n (by n), E2E: the order of the paper's tables."""
    enc = r.enc
    mode, mlp = enc.get("mode", "e2e"), int(enc.get("mlp_layers", 0) or 0)
    if r.is_id:
        return (0, 0, 0)
    if mode == "frozen":
        return (1 if mlp == 0 else 2, mlp, 0)
    return (3 if mode == "top" else 4, int(enc.get("train_layers", 0) or 0), mlp)


def table5(runs: list[RunInfo], k: int) -> Table | None:
    """TS (frozen features) / TS-DNN (frozen + MLP layers) / E2E, next to IDRec."""
    pool = [r for r in runs if r.regular and r.fusion == "none" and not r.enc.get("from_scratch")]
    if not any(not r.is_id and r.enc.get("mode") == "frozen" for r in pool):
        return None
    with_ts = {(r.dataset, r.backbone) for r in pool if not r.is_id and r.enc.get("mode") == "frozen"}
    cells = _cells([r for r in pool if (r.dataset, r.backbone) in with_ts],
                   lambda r: (r.dataset, r.backbone, encoder_label(r.enc), training_label(r.enc)))

    def order(cr):
        (ds, bb, label, training), r = cr
        return (_order(c[0] for c in cells).index(ds), _backbone_key(bb), not r.is_id, label, _training_rank(r), training)

    rows, verdicts = [], []
    for ds in _order(c[0] for c in cells):
        mine = sorted(((c, r) for c, r in cells.items() if c[0] == ds), key=order)
        rows += [_accuracy_row(r, k, dataset=c[0], backbone=c[1], **{"item encoder": c[2], "training": c[3]})
                 for c, r in mine]
        rows += _improv_rows([r for _, r in mine], k, verdicts, ds)
    return Table("table5_ts_vs_e2e", "Table 5: two-stage (TS, TS-DNN) vs end-to-end (E2E) MoRec (test, %)",
                 ACCURACY_COLUMNS(k), rows, verdicts=verdicts,
                 note="TS: frozen encoder features; TS-DNN n: frozen features + n MLP layers; E2E: encoder trained "
                      "(top-n: only its top n layers). " + CELL_NOTE)


MEMORY_KINDS = {"cuda_max_allocated": " (GPU)", "cpu_hwm": " (CPU RSS)", "cpu_max_rss": " (CPU RSS, whole process)"}


def table6(runs: list[RunInfo], k: int) -> Table | None:
    """Training cost: trainable parameters, FLOPs per item (item encoder, one item), seconds per epoch, peak memory."""
    from .cost import human, human_bytes

    pool = [r for r in runs if r.results.get("trainable_parameters") is not None]
    cells = _cells(pool, lambda r: (r.dataset, setting_label(r), r.backbone, encoder_label(r.enc)
                                    + (" (scratch)" if r.enc.get("from_scratch") else ""), training_label(r.enc), r.fusion))
    if not cells:
        return None
    rows = []
    for (ds, setting, bb, label, training, fusion), r in cells.items():
        res = r.results
        spe = res.get("seconds_per_epoch")
        kind = res.get("peak_memory_kind") or ""
        rows.append({"dataset": ds, "setting": setting, "backbone": bb, "item encoder": label, "training": training,
                     "fusion": fusion, "#Param.": human(res.get("trainable_parameters")),
                     "FLOPs/item": human(res.get("flops_per_item")),
                     "Time/E": "" if spe is None else (f"{spe:.2f}s" if spe < 120 else f"{spe / 60:.1f}m"),
                     "peak memory": human_bytes(res.get("peak_memory_bytes"))
                     + MEMORY_KINDS.get(kind, ""),
                     "processes": str(res.get("processes", 1)), "seeds": str(r.seeds), "run": str(r.dir)})
    return Table("table6_cost", "Table 6: training cost",
                 ["dataset", "setting", "backbone", "item encoder", "training", "fusion", "#Param.", "FLOPs/item", "Time/E",
                  "peak memory", "processes", "seeds", "run"], rows,
                 note="#Param.: trainable parameters. FLOPs/item: one forward of the item encoder for one item (batch "
                      "size 1; a frozen encoder's cached features are not counted). Time/E: training time per epoch, "
                      "evaluation excluded. Peak memory: each run's own peak: GPU max allocated, or on CPU the resident "
                      "high-water mark reset at the run's start (\"whole process\": could not be reset, so it may "
                      "include earlier runs of the same process). With several seeds: mean Time/E, highest peak.")


def table7(runs: list[RunInfo], k: int) -> Table | None:
    """ID + modality fusion (add / concat, with or without an MLP after) next to pure IDRec and pure MoRec."""
    pool = [r for r in runs if r.regular and not r.enc.get("from_scratch")]
    if not any(r.fusion != "none" for r in pool):
        return None
    def variant(r):
        if r.is_id:
            return "IDRec"
        if r.fusion == "none":
            return "MoRec"
        return f"ID+{training_label(r.enc)} {r.fusion.upper()}" + (" w/ MLP" if r.enc.get("fusion_mlp") else " w/o MLP")

    ids = _cells([r for r in pool if r.is_id and r.fusion == "none"], lambda r: (r.dataset, r.backbone))
    mods = _cells([r for r in pool if not r.is_id], lambda r: (r.dataset, r.backbone, encoder_label(r.enc),
                                                               training_label(r.enc), variant(r)))
    rows, verdicts = [], []
    for ds, bb, label, training in _order(c[:4] for c, r in mods.items() if r.fusion != "none"):
        base_id, pure = ids.get((ds, bb)), mods.get((ds, bb, label, training, "MoRec"))
        fused = [(c[4], r) for c, r in mods.items() if c[:4] == (ds, bb, label, training) and r.fusion != "none"]
        lead = {"dataset": ds, "backbone": bb, "item encoder": label, "training": training}
        for name, r in [("IDRec", base_id), (training, pure)] + sorted(fused):
            if r is not None:
                rows.append({**_accuracy_row(r, k, **lead), "variant": name})
        best_fused = best_on_valid([r for _, r in fused])
        best_pure = best_on_valid([r for r in (base_id, pure) if r is not None])
        if best_fused and best_pure:
            names = (f"{ds} {bb} {variant(best_pure)}", f"{ds} {bb} {variant(best_fused)}")
            rows.append(_improv_row(best_fused, best_pure, k, verdicts, names, **lead,
                                    variant=f"Improv. ({variant(best_fused)} vs {variant(best_pure)})"))
    return Table("table7_fusion", "Table 7: ID + modality fusion (test, %)",
                 ["dataset", "backbone", "item encoder", "training", "variant", f"HR@{k}", f"NDCG@{k}", "seeds", "p",
                  "notes", "run"], rows, verdicts=verdicts,
                 note="MoRec: the pure modality encoder of that training. Improv.: the best fusion variant over the "
                      "better of pure IDRec and pure MoRec (same training), each chosen on validation, with its 95% "
                      "paired bootstrap interval over users and the paired permutation p (HR / NDCG); * = significant "
                      "at 0.05.")


def table9(runs: list[RunInfo], k: int) -> Table | None:
    """Regular / cold / new test users from each run's test_subsets (one trained model per row)."""
    pool = [r for r in runs if r.warm == 0 and r.n_users == 0 and r.results.get("test_subsets")
            and (_pure_id(r) or _pure_morec(r))]
    if not any(s.get("users", 0) for r in pool for n, s in r.results["test_subsets"].items() if n in ("cold", "new")):
        return None
    cells = _cells(pool, lambda r: (r.dataset, r.new_items, r.backbone, encoder_label(r.enc), training_label(r.enc)))
    rows = []
    hr = f"hr@{k}"
    for (ds, new, bb, label, training), r in sorted(
            cells.items(), key=lambda cr: (_order(c[0] for c in cells).index(cr[0][0]), cr[0][1],
                                           _backbone_key(cr[0][2]), not cr[1].is_id, cr[0][3], _training_rank(cr[1]))):
        sub = r.results["test_subsets"]
        # a dataset may bring its own new items (a generator, a later item table) without prepare.new_items
        held = f"{new:g}" if new else "by the data" if (sub.get("new") or {}).get("users") else "0"
        row = {"dataset": ds, "new items held out": held, "backbone": bb, "item encoder": label,
               "training": training, "negatives from": r.config.get("train", {}).get("negatives_from", "all")}
        for name, title in SUBSET_TITLES:
            s = sub.get(name) or {}
            row[f"{title} users"] = str(s.get("users", "")) if s else ""
            row[f"{title} HR@{k}"] = _pct(s, hr) if s.get("users") else None
        row["run"] = str(r.dir)
        rows.append(row)
    cols = ["dataset", "new items held out", "backbone", "item encoder", "training", "negatives from"]
    for _, title in SUBSET_TITLES:
        cols += [f"{title} users", f"{title} HR@{k}"]
    return Table("table9_cold_new", "Table 9: all, cold and new items (test HR, %)", cols + ["run"], rows,
                 note="all: every test user; cold and new are subsets of them. cold: test users whose target has "
                      "fewer than eval.cold_threshold training interactions; new: "
                      "whose target never appears in training (datasets prepared with prepare.new_items). negatives "
                      "from: all = any item may be a sampled negative, held-out ones too, so models learn to bury "
                      "them; train = only items seen in training (train.negatives_from).")


# Table 9's user groups: cold and new users are subsets of all users, so "all" is not called "regular" here.
SUBSET_TITLES = (("all", "all"), ("cold", "cold"), ("new", "new"))

TABLES = (table2, table3, table4, table5, table6, table7, table9)


# --- plots ------------------------------------------------------------------------------------------------

def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", text).strip("-") or "x"


def plot_accuracy_by_encoder(runs: list[RunInfo], out: Path, k: int = 10) -> list[Path]:
    """Figure 4: test NDCG@K of each item encoder (best on validation), one PNG per dataset, bars grouped by backbone."""
    plt = _plt()
    cells = _idrec_vs_e2e_cells(runs)
    written = []
    for ds in _order(c[0] for c in cells):
        mine = sorted(((c, r) for c, r in cells.items() if c[0] == ds),
                      key=lambda cr: (_backbone_key(cr[0][1]), not cr[1].is_id, cr[0][2], _training_rank(cr[1])))
        labels = [f"{c[2]}\n{c[1]}" if r.is_id else f"{c[2]} {c[3]}\n{c[1]}" for c, r in mine]
        values = [_pct(r.results["test"], f"ndcg@{k}") or 0.0 for _, r in mine]
        fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(mine) + 1.5), 3.4), dpi=120)
        colors = ["#888888" if r.is_id else "#3b75af" for _, r in mine]
        ax.bar(range(len(mine)), values, color=colors)
        ax.set_xticks(range(len(mine)), labels, fontsize=7)
        ax.set_ylabel(f"test NDCG@{k} (%)")
        ax.set_title(f"{ds}: accuracy by item encoder")
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        path = out / f"figure4_accuracy_by_encoder_{_slug(ds)}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


def plot_lr_curves(runs: list[RunInfo], out: Path, k: int = 10) -> list[Path]:
    """Figure 5: validation NDCG@K per epoch, one line per (lr, encoder lr) pair, one PNG per (dataset,
    backbone, item encoder, training). Collapsed runs included (marked)."""
    plt = _plt()
    metric = f"valid_ndcg@{k}"
    groups: dict = {}
    for r in runs:
        if any(metric in rec for rec in r.log):
            groups.setdefault((r.dataset, r.backbone, encoder_label(r.enc), training_label(r.enc), r.fusion), []).append(r)
    written = []
    for (ds, bb, label, training, fusion), members in groups.items():
        fig, ax = plt.subplots(figsize=(5, 3.4), dpi=120)
        pairs = [r.lrs for r in members]
        for r in sorted(members, key=lambda r: (r.lrs, str(r.dir))):
            pts = [(rec["epoch"], 100 * rec[metric]) for rec in r.log if metric in rec]
            lr, enc_lr = r.lrs
            name = f"R={lr:g}" + ("" if r.is_id else f", M={enc_lr:g}")
            if pairs.count(r.lrs) > 1:
                name += f" ({r.dir.name})"
            if r.collapsed:
                name += " collapsed"
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=2.5, lw=1.2, label=name)
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"valid NDCG@{k} (%)")
        ax.set_title(f"{ds}: {label} {training} {bb}" + (f" +ID {fusion}" if fusion != "none" else ""), fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = out / f"figure5_lr_curves_{_slug(ds)}_{_slug(bb)}_{_slug(label)}_{_slug(training)}" \
                     f"{'' if fusion == 'none' else '_' + fusion}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


def plot_datasets_popularity(runs: list[RunInfo], out: Path) -> list[Path]:
    """Figure 3 for every dataset the runs used that can still be read."""
    from .data.dataset import PreparedDataset

    written, seen, names = [], set(), set()
    for r in runs:
        data = _resolve_data(str(r.config.get("data", "")), r.dir)
        if data is None or data.resolve() in seen:
            continue
        seen.add(data.resolve())
        try:
            ds = PreparedDataset(data)
            counts = ds.train_item_counts
        except Exception:  # a manifest without its arrays (copied runs): no plot, not an error
            continue
        # named as the tables name the dataset; two prepared variants of one dataset keep their folder apart
        slug = _slug(ds.name) if ds.name not in names else \
            _slug(data.name if data.name.startswith(ds.name) else f"{ds.name}-{data.name}")
        names.add(ds.name)
        written.append(plot_item_popularity(counts, out / f"figure3_item_popularity_{slug}.png",
                                            f"{ds.name}: item popularity (training split)"))
    return written


def build_tables(runs: list[RunInfo]) -> list[Table]:
    """Every table that the runs fill; runs differing only in their seed fill one cell (see group_seeds)."""
    k = _k([r for r in runs if r.usable])
    groups = group_seeds(runs)
    return [t for t in (f(groups, k) for f in TABLES) if t is not None and t.rows]


def write_report(paths: list[str | Path], out: str | Path = "report") -> list[Path]:
    """Tables (Markdown + CSV) and plots (PNG) from run / sweep directories into ``out``; returns the files written.
    Only tables whose runs exist are written; report.md holds every table."""
    runs = find_runs(paths)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tables = build_tables(runs)
    written: list[Path] = []
    for t in tables:
        for ext, text in (("md", t.markdown()), ("csv", t.csv())):
            path = out / f"{t.name}.{ext}"
            path.write_text(text, encoding="utf-8")
            written.append(path)
    k = _k([r for r in runs if r.usable])
    plots = plot_datasets_popularity(runs, out) + plot_accuracy_by_encoder(group_seeds(runs), out, k) \
        + plot_lr_curves(runs, out, k)
    collapsed = [r for r in runs if r.collapsed]
    lines = ["# morec report", "", f"{len(runs)} runs: " + ", ".join(_order(str(r.dir) for r in runs)), ""]
    if collapsed:
        lines += ["Collapsed runs (never chosen): " + "; ".join(
            f"{r.dir} ({r.results.get('collapse', '')})" for r in collapsed), ""]
    verdicts = [v for t in tables for v in t.verdicts]
    if verdicts:
        section = ["## Verdicts", "", "From the paired statistics of the Improv. rows (better / worse only when "
                   "p < 0.05 and the 95% interval excludes 0):", ""] + [f"- {v}" for v in verdicts] + [""]
        lines += section
        (out / "verdicts.md").write_text("\n".join(section), encoding="utf-8")
        written.append(out / "verdicts.md")
    lines += [t.markdown() for t in tables]
    lines += ["## Figures", ""] + [f"![{p.stem}]({p.name})" for p in plots]
    index = out / "report.md"
    index.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [index, *written, *plots]


# --- committed run summaries and generated documents --------------------------------------------------------

SUMMARY_FILES = ("config.yaml", "results.json", "metrics.jsonl", "ranks.npz")


def copy_run_summaries(paths: list[str | Path], dest: str | Path) -> Path:
    """Copy each finished run's small files (config, results, per-epoch metrics, per-user ranks; never weights or
    checkpoints) into ``dest/<run name>``, so a report can be rebuilt and checked from what a repository holds."""
    import shutil

    dest = Path(dest)
    for r in find_runs(paths):
        target = dest / r.dir.name
        target.mkdir(parents=True, exist_ok=True)
        for name in SUMMARY_FILES:
            if (r.dir / name).exists():
                shutil.copy2(r.dir / name, target / name)
    return dest


BLOCK = re.compile(r"(<!-- results: (?P<src>\S+) -->\n)(?P<body>.*?)(<!-- /results -->)", re.S)


def fill_blocks(doc: str | Path) -> int:
    """Rewrite every ``<!-- results: FILE -->`` ... ``<!-- /results -->`` block of ``doc`` with FILE's text (a path
    relative to the repository root, e.g. a report's table5_ts_vs_e2e.md); returns how many blocks were filled."""
    doc = Path(doc)
    text = doc.read_text(encoding="utf-8")
    count = 0

    def fill(m):
        nonlocal count
        count += 1
        body = Path(m.group("src")).read_text(encoding="utf-8").strip()
        return f"{m.group(1)}{body}\n{m.group(4)}"

    doc.write_text(BLOCK.sub(fill, text), encoding="utf-8")
    return count
