"""The Python API for notebooks and scripts; the `morec` command is a thin layer over these functions.

The whole path on your own data::

    from morec import api
    ds = api.prepare_dataset("shop/", "prepared/shop", user_column="customer_id", item_column="book_sku",
                             time_column="purchased_at", name="shop")
    verdict = api.compare("prepared/shop", "runs/shop", ["--model.encoder.kind=id"],
                          ["--model.encoder.kind=text", "--model.encoder.pretrained=minilm"], seeds=[1, 2, 3])
    run = api.load_run("runs/shop/MoRec-seed1")
    run.recommend(user="C001", k=5)              # or history=["SKU-001", "SKU-004"]
    run.add_items([{"book_sku": "NEW-1", "book_title": "...", "blurb": "..."}])
    run.export("export/shop")
"""
from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from .catalog import CATALOG_FILE, items_folder, items_frame
from .config import Config, ConfigError, PrepareConfig, from_dict, load_config, to_dict
from .data.dataset import PreparedDataset
from .data.fetch import fetch_dataset
from .data.formats.registry import detect_format, read_raw, resolve_source
from .data import presets
from .data.prepare import check_out_dir, prepare
from .evaluate import metrics_from_ranks, rank_users
from .recipes import fast
from .recommend import RecommenderService
from .report import load_arm, plot_item_popularity, plot_sequence_lengths
from .runs import load_run as load_model
from .stats import ALPHA, MARGIN
from .train import train
from .verdict import compare_arms

__all__ = ["fetch_dataset", "prepare_dataset", "dataset_stats", "load_config", "quick_config", "train", "evaluate_run",
           "compare", "compare_runs", "comparison", "comparisons", "quickstart", "load_run", "Run", "recommend", "add_items", "export", "PreparedDataset"]


# --- data -------------------------------------------------------------------------------------

def prepare_dataset(source: str | Path, out: str | Path, format: str | None = None,
                    prepare_cfg: PrepareConfig | dict | None = None, log=print, name: str | None = None,
                    overwrite: bool = False, preset: str | None = None,
                    **reader_options) -> PreparedDataset:
    """Read a raw dataset (format detected unless given; reader options as in `morec data formats`, e.g.
    ``user_column="customer_id", text_columns="book_title,blurb"``) and write the prepared directory ``out``.
    ``name`` is the dataset's name in every table, figure and file (default: the source folder's, or
    ``out``'s when that is generic like raw or data); ``prepare_cfg`` holds the paper's filters and
    ``title_column`` (the text shown as an item's title; default the first text column). An existing,
    non-empty ``out`` is refused unless ``overwrite``, which replaces it whole. ``preset`` (mind, hm, bili,
    pixelrec, microlens, ml-100k; None = from the format, for mind and hm; 'none' = no preset) applies the paper's
    preprocessing of that dataset (morec.data.presets) under the settings given here: a PrepareConfig's fields
    left at their defaults, and the reader options not given, take the preset's values."""
    if isinstance(prepare_cfg, PrepareConfig):
        default = PrepareConfig()
        prepare_cfg = {k: v for k, v in vars(prepare_cfg).items() if v != getattr(default, k)}
    folder, _ = resolve_source(source, format)
    fmt = format or detect_format(folder)
    chosen, how = presets.choose(preset, fmt)
    cfg, reader_options, record = presets.apply(chosen, how, dict(prepare_cfg or {}), reader_options, log)
    cfg.validate()
    check_out_dir(out, overwrite)  # before reading what may be a large raw dataset
    raw = read_raw(source, fmt, **reader_options)
    return PreparedDataset(prepare(raw, out, cfg, log=log, name=name, overwrite=overwrite, preset=record))


def dataset_stats(dataset: str | Path | PreparedDataset, plots: str | Path | None = None) -> dict:
    """The paper's Table 1 row plus sequence lengths (min / median / mean / max) and the time span; with
    ``plots`` (a folder) also the item-popularity plot (Figure 3) and the sequence-length histogram."""
    ds = dataset if isinstance(dataset, PreparedDataset) else PreparedDataset(dataset)
    out = {**ds.stats(), **ds.sequence_summary()}
    if plots is not None:
        plots = Path(plots)
        out["item_popularity_plot"] = str(plot_item_popularity(ds.train_item_counts, plots / "item_popularity.png",
                                                               f"{ds.name}: item popularity (training split)"))
        out["sequence_lengths_plot"] = str(plot_sequence_lengths(ds.lengths, plots / "sequence_lengths.png",
                                                                 f"{ds.name}: interactions per user"))
    return out


# --- training and evaluation ----------------------------------------------------------------------

def quick_config(data: str | Path, out: str | Path, overrides: list[str] | None = None) -> Config:
    """A run's config: the defaults, the prepared dataset ``data``, the run directory ``out`` and
    ``--section.key=value`` overrides (as on the command line)."""
    return load_config(None, [f"--data={data}", f"--out={out}", *(overrides or [])])


def evaluate_run(run_dir: str | Path, split: str = "test", device: str = "cpu", mask_history: bool | None = None) -> dict:
    """Re-score a saved run on ``split`` with its best checkpoint."""
    return metrics_from_ranks(_ranks(run_dir, split, device, mask_history), load_config(Path(run_dir) / "config.yaml").eval.ks)


def _ranks(run_dir: str | Path, split: str, device: str = "cpu", mask_history: bool | None = None) -> np.ndarray:
    cfg, model, dataset = load_model(run_dir, device)
    mask = cfg.eval.mask_history if mask_history is None else mask_history
    return rank_users(model, dataset, split, cfg.model.max_len, mask, cfg.eval.user_batch)


def comparison(a, b, metrics: list[str] | None = None, names=("A", "B"), alpha: float = ALPHA,
               allow_unequal_budgets: bool = False, margin: float = MARGIN) -> dict:
    """`morec compare A B`: the paired comparison of arm B against arm A on each of ``metrics`` (default: hr@K of
    the first eval.ks and the selection metric), from the per-user test ranks the runs stored (ranks.npz).

    An arm is a run directory, a folder of one configuration's seed runs, a sweep configuration path without
    its ``-sN`` (or ``_seed-N``) suffix, or a list of run directories (one configuration, several seeds). Refused
    (:class:`morec.verdict.ComparisonError`, with the reasons) when the arms were trained on other datasets or
    splits, scored with other evaluation settings, kept no ranks, or (unless ``allow_unequal_budgets``) had other
    budgets. Returns :func:`morec.verdict.compare_arms`'s result: per-metric statistics, budget notes, verdict."""
    arm_a, arm_b = load_arm(a), load_arm(b)
    if not metrics:
        metrics = [f"hr@{arm_a.config.get('eval', {}).get('ks', [10])[0]}", arm_a.select_metric]
    return compare_arms(arm_a, arm_b, list(dict.fromkeys(metrics)), alpha, tuple(names),
                        equal_budgets=not allow_unequal_budgets, margin=margin)


def comparisons(pairs: list[tuple], metrics: list[str] | None = None, names=None, alpha: float = ALPHA,
                allow_unequal_budgets: bool = False, margin: float = MARGIN) -> list[dict]:
    """Several pairs of arms (each as in :func:`comparison`) as one family, Holm-adjusted together."""
    from .compare import comparisons as family

    return family(pairs, metrics, names, alpha, allow_unequal_budgets, margin)


def compare_runs(runs_a: list[str | Path], runs_b: list[str | Path], metric: str = "ndcg@10", names=("A", "B"),
                 alpha: float = ALPHA, allow_unequal_budgets: bool = False) -> dict:
    """:func:`comparison` of two lists of runs (one configuration's seeds each) on one metric, flattened: each arm's
    mean and per-seed means, the difference B - A with its 95% CI (seeds and users with >= 2 seeds per arm, else users), p, Improv.
    with its CI, the budget notes and the verdict "B better" / "A better" / "no detectable difference"."""
    if not runs_a or not runs_b:
        raise ValueError("compare_runs needs at least one run per arm")
    result = comparison(list(runs_a), list(runs_b), [metric], names, alpha, allow_unequal_budgets)
    c = result["paired"][metric]
    verdict = {"better": f"{names[1]} better", "worse": f"{names[0]} better"}.get(c.verdict, c.verdict)
    return {"metric": f"test {metric}", "seeds": c.seeds_a, "users": c.users,
            names[0]: {"mean": c.mean_a, "per_seed": c.seed_means_a, "runs": result["a"]["runs"]},
            names[1]: {"mean": c.mean_b, "per_seed": c.seed_means_b, "runs": result["b"]["runs"]},
            "difference": c.diff, "ci95": list(c.diff_ci), "p": c.p, "improv": c.improv,
            "improv_ci95": list(c.improv_ci) if c.improv_ci else None, "level": c.level,
            "provisional": c.provisional, "ci95_given_models": list(c.user_diff_ci), "p_given_models": c.user_p,
            "notes": result["notes"],
            "verdict": verdict, "verdict_line": result["verdict"]}


def compare(data: str | Path, out: str | Path, a: list[str], b: list[str], seeds=(1, 2, 3), names=("IDRec", "MoRec"),
            common: list[str] | None = None, metric: str = "ndcg@10", log=print) -> dict:
    """Train two arms (override lists ``a`` and ``b`` on top of the same ``common`` budget) once per seed on
    the prepared dataset ``data``, into ``out/NAME-seedS`` (a finished run is reused), then compare them
    paired by user, seeds resampled within each arm (:func:`compare_runs`). Returns the comparison, with a verdict."""
    dataset = PreparedDataset(data)
    runs = {names[0]: [], names[1]: []}
    for seed in seeds:
        for name, overrides in zip(names, (a, b)):
            run_dir = Path(out) / f"{name}-seed{seed}"
            runs[name].append(run_dir)
            if (run_dir / "results.json").exists() and json.loads((run_dir / "results.json").read_text()).get("test"):
                log(f"{name} seed {seed}: finished run {run_dir} reused")
                continue
            cfg = quick_config(data, run_dir, [*(common or []), *overrides, f"--train.seed={seed}"])
            result = train(cfg, dataset, log=log)
            log(f"{name} seed {seed}: best epoch {result['best_epoch']}, test {result['test']}")
    return compare_runs(runs[names[0]], runs[names[1]], metric, names)


# --- the README's main job ----------------------------------------------------------------------

# The main job's MoRec: MiniLM titles as two-stage features (frozen encoder, DT-layer trained). Top-k or E2E
# tuning is the paper's stronger setting but takes tens of minutes per run on 2 CPU cores.
QUICKSTART_TEXT = ["--model.encoder.kind=text", "--model.encoder.pretrained=minilm", "--model.encoder.text.fields=title"]
# morec choice -> (label, overrides). ts: frozen MiniLM features, minutes on 2 CPU cores. top1 / top2: MiniLM's
# top layer(s) trained with the recommender (lower layers cached, last layer for [CLS] only): tens of minutes.
QUICKSTART_MOREC = {"ts": ("TS", ["--model.encoder.mode=frozen"]),
                    "top1": ("E2E top-1", ["--model.encoder.mode=top", "--model.encoder.train_layers=1"]),
                    "top2": ("E2E top-2", ["--model.encoder.mode=top", "--model.encoder.train_layers=2"])}


def quickstart(root: str | Path = "data", runs: str | Path = "runs", morec: str = "ts", id_only: bool = False,
               overrides: list[str] | None = None, log=print) -> dict:
    """`morec quickstart`: fetch and prepare MovieLens-100K under ``root`` (an existing prepared copy made with
    other prepare options is refused), train ID-based SASRec and text MoRec SASRec (MiniLM titles, trained as
    ``morec`` says: ts / top1 / top2) into ``runs``, both with SASRec's fast recipe (morec.recipes) and
    ``overrides``, and compare them paired over the test users. Returns {"dataset": Table 1 row, "results": {name: results}, "runs": {name: run directory},
    "comparison": verdict.compare_arms's result on HR@10 and NDCG@10, or None with ``id_only``}."""
    root = Path(root)
    raw = fetch_dataset("movielens-100k", root / "raw")
    prepared = root / "prepared" / "ml-100k"
    ds = PreparedDataset(prepared) if (prepared / "manifest.json").exists() else \
        prepare_dataset(raw, prepared, overwrite=True, log=log)  # no manifest: an interrupted prepare, start it over
    check_quickstart_prepare(ds)
    stats = ds.stats()
    log(json.dumps(stats))
    label, morec_args = QUICKSTART_MOREC[morec]
    name = f"MoRec (MiniLM, {label})"
    models = {"IDRec": ("id", [])} if id_only else \
        {"IDRec": ("id", []), name: (f"minilm-{morec}", [*QUICKSTART_TEXT, *morec_args])}
    results, dirs = {}, {}
    for model, (slug, model_args) in models.items():
        cfg = quick_config(prepared, Path(runs) / f"ml100k-sasrec-{slug}", [*fast("sasrec"), *model_args,
                                                                             *(overrides or [])])
        results[model] = r = train(cfg, ds, log=log)
        dirs[model] = cfg.out
        log(f"{model}: best epoch {r['best_epoch']}, {r['seconds_per_epoch']:.2f} s/epoch, "
            f"{r['seconds_to_best']:.1f} s to best, run directory {cfg.out}")
    comparison = None
    if len(dirs) == 2:
        comparison = compare_arms(load_arm(dirs["IDRec"]), load_arm(dirs[name]), ["hr@10", "ndcg@10"],
                                  names=("IDRec", name))
    return {"dataset": stats, "results": results, "runs": dirs, "comparison": comparison}


def check_quickstart_prepare(ds: PreparedDataset) -> None:
    """An existing data/prepared/ml-100k made with other prepare options would silently change the main job's
    numbers: refuse, naming the differences."""
    wanted, made = to_dict(PrepareConfig()), ds.manifest.get("prepare") or {}
    diffs = [f"{k}={made[k]!r} (quickstart: {wanted[k]!r})" for k in wanted if k in made and made[k] != wanted[k]]
    if diffs:
        raise ConfigError(f"{ds.path} was prepared with other options: {', '.join(diffs)}; quickstart uses the "
                          f"defaults: remove that folder (it is prepared again) or pass --root to use another")


# --- using a trained model ---------------------------------------------------------------------

class Run:
    """A trained run directory (or an export) as an object: its config and results, and the model ready to
    recommend, add items and export. The model is loaded on first use."""

    def __init__(self, path: str | Path, device: str = "cpu", index: str = "exact"):
        self.path, self.device, self.index = Path(path), device, index
        if not (self.path / "config.yaml").exists() and not (self.path / "manifest.json").exists():
            raise FileNotFoundError(f"{self.path} is not a run directory (no config.yaml) or an export (no manifest.json)")

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @cached_property
    def service(self):
        return RecommenderService.load(self.path, self.device, self.index)

    @cached_property
    def config(self) -> Config:
        if (self.path / "config.yaml").exists():
            return load_config(self.path / "config.yaml")
        return self.service.cfg

    @property
    def results(self) -> dict | None:
        """results.json of a finished run (valid / test metrics, best_epoch, cost), None if it has none."""
        f = self.path / "results.json"
        return json.loads(f.read_text(encoding="utf-8")) if f.exists() else None

    @property
    def best_epoch(self) -> int | None:
        return (self.results or {}).get("best_epoch")

    @property
    def dataset(self) -> PreparedDataset:
        return PreparedDataset(self.config.data)

    def evaluate(self, split: str = "test") -> dict:
        return evaluate_run(self.path, split, self.device)

    def recommend(self, user=None, history: list | None = None, k: int = 10, exclude_history: bool = True) -> dict:
        """Top-``k`` for a known user id or a history of item ids (oldest first):
        {"items": [{"id", "title", "score"}, ...], "history_length": n}; titles are the dataset's title column."""
        return self.service.recommend(user=user, history=history, k=k, exclude_history=exclude_history)

    def add_items(self, items: pd.DataFrame | list[dict] | str | Path, columns: dict[str, str] | None = None,
                  fmt: str | None = None) -> dict:
        """Encode new items from their content (MoRec) and make them recommendable, saved into the run directory.
        Items name their id and text by the dataset's own columns (or ``id``); ``columns`` maps other names."""
        added = self.service.add_items(items_frame(items, fmt), columns, base=items_folder(items))
        return {"added": len(added), "ids": added, "items": self.service.n_items, "file": str(self.path / CATALOG_FILE)}

    def export(self, out: str | Path) -> Path:
        """Item vectors, user encoder and manifest: recommends (`load_run`, serve) without the training data."""
        return self.service.export(out)


def load_run(path: str | Path, device: str = "cpu", index: str = "exact") -> Run:
    """A run directory (`train`'s ``out``) or an export directory as a :class:`Run`."""
    return Run(path, device, index)


def recommend(run: str | Path, user=None, history: list | None = None, k: int = 10, device: str = "cpu") -> dict:
    return load_run(run, device).recommend(user=user, history=history, k=k)


def add_items(run: str | Path, items: pd.DataFrame | list[dict] | str | Path, fmt: str | None = None,
              device: str = "cpu", columns: dict[str, str] | None = None) -> dict:
    """New items (a DataFrame, a list of dicts, or a CSV / TSV / JSONL file) added to a MoRec run's catalogue."""
    return load_run(run, device).add_items(items, columns, fmt)


def export(run: str | Path, out: str | Path, device: str = "cpu") -> Path:
    return load_run(run, device).export(out)
