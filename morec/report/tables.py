"""The paper's tables (2-7 and 9) from runs, as Markdown and CSV, with the paired statistics of every Improv. row;
and the plain Markdown table every command prints."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from ..config import MODES
from ..cost import human, human_bytes
from ..stats import format_improv, p_cell
from ..verdict import Family, budget_notes, comparability_problems
from .arms import LINK, arm_link, label_groups
from .discovery import RunInfo, best_on_valid, encoder_label, group_seeds, setting_label, training_label, training_order

# Every table cell is one configuration: a run directory, or the runs of one configuration that differ only
# in train.seed (a seed group: the cell shows the mean ± standard deviation over its seeds and their number).
# Where several configurations fill the same cell (a sweep over learning rates, sizes, ...) the cell shows the
# one with the best VALIDATION score (its config's eval.select_metric; the mean over seeds); the test numbers
# shown are its. "Best MoRec" / "best IDRec" in the Improv. rows are chosen the same way, on validation (the
# paper bolds the best test number, which would be selecting on test); Improv. comes with a 95% paired
# two-level bootstrap interval (seeds, then users) and p (morec.stats), Holm-adjusted over every test of the
# report (a family), marked * when significant after Holm. Collapsed runs are never chosen. Accuracy is in
# percent, as in the paper.


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


def percent(results_split: dict | None, metric: str) -> float | None:
    if not results_split or metric not in results_split:
        return None
    return 100.0 * float(results_split[metric])


def improvement(new: float | None, old: float | None) -> str:
    """Relative improvement of ``new`` over ``old`` as the paper writes it: '+5.48%'."""
    if new is None or old is None or old == 0:
        return ""
    return f"{(new - old) / old * 100:+.2f}%"


def common_k(runs: list[RunInfo]) -> int:
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
        """The table for readers: arms by their labels, linked to the runs index, in place of directories."""
        columns = ["arm" if c == "run" else c for c in self.columns
                   if c not in ("notes", "p") or any(r.get(c) for r in self.rows)]
        text = f"## {self.title}\n\n{format_table(self.rows, columns, self.floats)}\n"
        text += f"\n{self.note}\n" if self.note else ""
        return text + "".join(f"\n- {v}" for v in self.verdicts) + ("\n" if self.verdicts else "")

    def csv(self) -> str:
        buf = io.StringIO()
        columns = [x for c in self.columns for x in (("arm", "run") if c == "run" else (c,))]
        w = csv.DictWriter(buf, columns, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for row in self.rows:  # data for programs: the arm's plain label and its run directories
            w.writerow({c: ("" if row.get(c) is None else LINK.sub(r"\1", str(row.get(c, "")))) for c in columns})
        return buf.getvalue()


def first_seen(values) -> list:
    return list(dict.fromkeys(values))


def backbone_order(b: str) -> tuple:
    return ({"dssm": 0, "sasrec": 1}.get(b, 2), b)


def _cell(r: RunInfo, split: str, metric: str) -> float | str | None:
    """A cell's value in percent: the run's, or for a seed group 'mean ± std' over its seeds."""
    value = percent(r.results.get(split), metric)
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
            "seeds": str(r.seeds), "notes": _notes(r), "run": str(r.dir), "arm": arm_link(r)}


def _improv_row(new: RunInfo, old: RunInfo, k: int, verdicts: list[str], names: tuple[str, str], family: Family,
                **lead) -> dict:
    """Improv. of ``new`` over ``old`` on test HR@k and NDCG@k: with per-user ranks, the paired statistics
    (95% CI, p raw (Holm), * when significant after Holm) and a verdict sentence appended to ``verdicts``; without them
    (runs from before morec kept ranks) the plain relative difference, said to have no interval."""
    metrics = [f"hr@{k}", f"ndcg@{k}"]
    row = {**lead, "run": f"{new.dir} vs {old.dir}", "arm": f"{arm_link(new)} vs {arm_link(old)}"}
    # a table names arms by their label (runs.md maps it to directories), its notes too
    problems = [p.replace(str(new.dir), arm_link(new)).replace(str(old.dir), arm_link(old))
                for m in metrics for p in comparability_problems(old, new, m)]
    if problems:
        for m in metrics:
            row[m.upper()] = improvement(percent(new.results["test"], m), percent(old.results["test"], m))
        notes = budget_notes(old, new)
        row["notes"] = "; ".join(["no CI: " + problems[0]] + notes)
        verdicts.append(f"{names[1]} vs {names[0]}: no paired statistics ({problems[0]}); Improv. HR@{k} {row['HR@' + str(k)]}, "
                        f"NDCG@{k} {row['NDCG@' + str(k)]} from {new.seeds} vs {old.seeds} seeds"
                        + (f". Caveats: {'; '.join(notes)}" if notes else "") + ".")
        return row
    cmp = family.get(old, new, metrics, names).result()
    for m in metrics:
        c = cmp["paired"][m]
        row[m.upper()] = format_improv(c) + (" *" if c.significant else "") + (" †" if c.provisional else "")
    row["p"] = " / ".join(p_cell(cmp["paired"][m]) for m in metrics)
    row["notes"] = "; ".join(cmp["notes"])
    verdicts.append(cmp["verdict"])
    return row


def _pure_morec(r: RunInfo, modes: tuple[str, ...] = MODES) -> bool:
    """A pretrained modality encoder alone (no ID fusion), trained in one of ``modes``."""
    return not r.is_id and r.enc.get("mode", "e2e") in modes and r.fusion == "none" and not r.enc.get("from_scratch")


def _e2e_morec(r: RunInfo) -> bool:
    """MoRec trained end to end with the recommender: the whole encoder, its top layers (mode=top), or low-rank
    updates of them (mode=lora); not side, whose side network never sends a gradient into the encoder."""
    return _pure_morec(r, ("e2e", "top", "lora"))


def _pure_id(r: RunInfo) -> bool:
    return r.is_id and r.fusion == "none"


def idrec_vs_e2e_cells(runs: list[RunInfo]) -> dict:
    """(dataset, backbone, item encoder, training) -> the run chosen on validation, for pure IDRec and MoRec
    trained end to end in the regular setting: what Table 2 and Figure 4 show."""
    pool = [r for r in runs if r.regular and (_pure_id(r) or _e2e_morec(r))]
    return _cells(pool, lambda r: (r.dataset, r.backbone, encoder_label(r.enc), training_label(r.enc)))


def ACCURACY_COLUMNS(k: int) -> list[str]:  # noqa: N802 (a constant per K)
    return ["dataset", "backbone", "item encoder", "training", f"HR@{k}", f"NDCG@{k}", "seeds", "p", "notes", "run"]


STATS_NOTE = ("95% interval from the two-level bootstrap (each arm's seeds resampled, then users, paired by user) "
              "where both arms have 2 or more seeds; † = one seed in an arm: users only, seed variation unmeasured, "
              "provisional. p: raw (Holm-adjusted over every test of this report) (HR / NDCG); * = significant "
              "after Holm at 0.05.")
CELL_NOTE = ("Each cell: the configuration with the best validation score; with several seeds, mean ± standard "
             "deviation over them (seeds: how many). Improv.: the best MoRec over the best IDRec of the backbone, "
             "both chosen on validation, with its " + STATS_NOTE + " notes: capped = stopped by its epoch "
             "cap while validation was still rising.")


def _improv_rows(cells, k: int, verdicts: list[str], ds: str, family: Family) -> list[dict]:
    """Per backbone: Improv. of the best MoRec over the best IDRec, both chosen on validation."""
    rows = []
    for bb in sorted(first_seen(r.backbone for r in cells), key=backbone_order):
        best_id = best_on_valid([r for r in cells if r.is_id and r.backbone == bb])
        best_mo = best_on_valid([r for r in cells if not r.is_id and r.backbone == bb])
        if best_id and best_mo:
            name = f"{encoder_label(best_mo.enc)} {training_label(best_mo.enc)}"
            rows.append(_improv_row(best_mo, best_id, k, verdicts, (f"{ds} {bb} IDRec", f"{ds} {bb} {name}"),
                                    family, dataset=ds, backbone=bb, **{"item encoder": f"Improv. ({name} vs IDRec)"}))
    return rows


def table2(runs: list[RunInfo], k: int, family: Family) -> Table | None:
    """IDRec vs MoRec (E2E, pretrained) per backbone, regular setting; Improv. = best MoRec over best IDRec."""
    cells = idrec_vs_e2e_cells(runs)
    if not any(not r.is_id for r in cells.values()):
        return None
    rows, verdicts = [], []
    for ds in first_seen(c[0] for c in cells):
        mine = {c: r for c, r in cells.items() if c[0] == ds}
        for bb in sorted(first_seen(c[1] for c in mine), key=backbone_order):
            here = sorted(((c, r) for c, r in mine.items() if c[1] == bb),
                          key=lambda cr: (not cr[1].is_id, cr[0][2], training_order(cr[1])))
            rows += [_accuracy_row(r, k, dataset=ds, backbone=bb, **{"item encoder": c[2], "training": c[3]})
                     for c, r in here]
        rows += _improv_rows(mine.values(), k, verdicts, ds, family)
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
            for c, r in sorted(cells.items(), key=lambda cr: (first_seen(x[0] for x in cells).index(cr[0][0]), cr[0][1],
                                                             backbone_order(cr[0][2]), not cr[1].is_id, cr[0][3],
                                                             training_order(cr[1])))]
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
    datasets = first_seen(c[0] for c in cells)
    keys = sorted(first_seen(c[:4] for c in cells if c[4]),  # the encoders with a from-scratch run; Base first
                  key=lambda c: (datasets.index(c[0]), c[1], backbone_order(c[2]), c[3]))
    for key in keys:
        tfs, pe = cells.get((*key, True)), cells.get((*key, False))
        hr = lambda r: percent(r.results["test"], f"hr@{k}") if r else None  # noqa: E731
        rows.append({"dataset": key[0], "users": f"{key[1]:,}" if key[1] else "Base", "backbone": key[2],
                     "item encoder": key[3], f"TFS HR@{k}": hr(tfs), f"PE HR@{k}": hr(pe),
                     "Improv.": improvement(hr(pe), hr(tfs)),
                     "run": "; ".join(f"{n}: {r.dir}" for n, r in (("TFS", tfs), ("PE", pe)) if r),
                     "arm": "; ".join(f"{n}: {arm_link(r)}" for n, r in (("TFS", tfs), ("PE", pe)) if r)})
    return Table("table4_pretrained_vs_scratch", "Table 4: pre-trained (PE) vs from-scratch (TFS) item encoder (test HR, %)",
                 ["dataset", "users", "backbone", "item encoder", f"TFS HR@{k}", f"PE HR@{k}", "Improv.", "run"], rows,
                 note="users: Base = every user; a number = the dataset's prepare.n_users subsample.")


def table5(runs: list[RunInfo], k: int, family: Family) -> Table | None:
    """TS (frozen features) / TS-DNN (frozen + MLP layers) / E2E, next to IDRec."""
    pool = [r for r in runs if r.regular and r.fusion == "none" and not r.enc.get("from_scratch")]
    if not any(not r.is_id and r.enc.get("mode") == "frozen" for r in pool):
        return None
    with_ts = {(r.dataset, r.backbone) for r in pool if not r.is_id and r.enc.get("mode") == "frozen"}
    cells = _cells([r for r in pool if (r.dataset, r.backbone) in with_ts],
                   lambda r: (r.dataset, r.backbone, encoder_label(r.enc), training_label(r.enc)))

    def order(cr):
        (ds, bb, label, training), r = cr
        return (first_seen(c[0] for c in cells).index(ds), backbone_order(bb), not r.is_id, label, training_order(r), training)

    rows, verdicts = [], []
    for ds in first_seen(c[0] for c in cells):
        mine = sorted(((c, r) for c, r in cells.items() if c[0] == ds), key=order)
        rows += [_accuracy_row(r, k, dataset=c[0], backbone=c[1], **{"item encoder": c[2], "training": c[3]})
                 for c, r in mine]
        rows += _improv_rows([r for _, r in mine], k, verdicts, ds, family)
    return Table("table5_ts_vs_e2e", "Table 5: two-stage (TS, TS-DNN) vs end-to-end (E2E) MoRec (test, %)",
                 ACCURACY_COLUMNS(k), rows, verdicts=verdicts,
                 note="TS: frozen encoder features; TS-DNN n: frozen features + n MLP layers; E2E: encoder trained "
                      "(top-n: only its top n layers). " + CELL_NOTE)


MEMORY_KINDS = {"cuda_max_allocated": " (GPU)", "cpu_hwm": " (CPU RSS)", "cpu_max_rss": " (CPU RSS, whole process)"}


def table6(runs: list[RunInfo], k: int) -> Table | None:
    """Training cost: trainable parameters, FLOPs per item (item encoder, one item), seconds per epoch, peak memory."""
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
                     "processes": str(res.get("processes", 1)), "seeds": str(r.seeds), "run": str(r.dir),
                     "arm": arm_link(r)})
    return Table("table6_cost", "Table 6: training cost",
                 ["dataset", "setting", "backbone", "item encoder", "training", "fusion", "#Param.", "FLOPs/item", "Time/E",
                  "peak memory", "processes", "seeds", "run"], rows,
                 note="#Param.: trainable parameters. FLOPs/item: one forward of the item encoder for one item (batch "
                      "size 1; a frozen encoder's cached features are not counted). Time/E: training time per epoch, "
                      "evaluation excluded. Peak memory: each run's own peak: GPU max allocated, or on CPU the resident "
                      "high-water mark reset at the run's start (\"whole process\": could not be reset, so it may "
                      "include earlier runs of the same process). With several seeds: mean Time/E, highest peak.")


def table7(runs: list[RunInfo], k: int, family: Family) -> Table | None:
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
    for ds, bb, label, training in first_seen(c[:4] for c, r in mods.items() if r.fusion != "none"):
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
            rows.append(_improv_row(best_fused, best_pure, k, verdicts, names, family, **lead,
                                    variant=f"Improv. ({variant(best_fused)} vs {variant(best_pure)})"))
    return Table("table7_fusion", "Table 7: ID + modality fusion (test, %)",
                 ["dataset", "backbone", "item encoder", "training", "variant", f"HR@{k}", f"NDCG@{k}", "seeds", "p",
                  "notes", "run"], rows, verdicts=verdicts,
                 note="MoRec: the pure modality encoder of that training. Improv.: the best fusion variant over the "
                      "better of pure IDRec and pure MoRec (same training), each chosen on validation, with its "
                      + STATS_NOTE)


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
            cells.items(), key=lambda cr: (first_seen(c[0] for c in cells).index(cr[0][0]), cr[0][1],
                                           backbone_order(cr[0][2]), not cr[1].is_id, cr[0][3], training_order(cr[1]))):
        sub = r.results["test_subsets"]
        # a dataset may bring its own new items (a generator, a later item table) without prepare.new_items
        held = f"{new:g}" if new else "by the data" if (sub.get("new") or {}).get("users") else "0"
        row = {"dataset": ds, "new items held out": held, "backbone": bb, "item encoder": label,
               "training": training, "negatives from": r.config.get("train", {}).get("negatives_from", "all")}
        for name, title in SUBSET_TITLES:
            s = sub.get(name) or {}
            row[f"{title} users"] = str(s.get("users", "")) if s else ""
            row[f"{title} HR@{k}"] = percent(s, hr) if s.get("users") else None
        row["run"], row["arm"] = str(r.dir), arm_link(r)
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


FAMILY_TABLES = (table2, table5, table7)  # the tables with Improv. rows: their tests form the report's family


def build_tables(runs: list[RunInfo], family: Family | None = None) -> list[Table]:
    """Every table that the runs fill; runs differing only in their seed fill one cell (see group_seeds). The
    Improv. rows' tests are computed first and Holm-adjusted together (``family``), then every table written."""
    k = common_k([r for r in runs if r.usable])
    groups = group_seeds(runs)
    label_groups(groups)
    family = family or Family()

    def tables():
        return [f(groups, k, family) if f in FAMILY_TABLES else f(groups, k) for f in TABLES]

    tables()  # the first pass only gathers the family's comparisons
    family.adjust()
    return [t for t in tables() if t is not None and t.rows]
