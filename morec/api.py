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

from .config import Config, PrepareConfig, from_dict, load_config
from .data.dataset import PreparedDataset
from .data.fetch import fetch_dataset
from .data.formats.registry import read_raw
from .data.prepare import check_out_dir, prepare
from .evaluate import metrics_from_ranks, rank_users
from .train import train

__all__ = ["fetch_dataset", "prepare_dataset", "dataset_stats", "load_config", "quick_config", "train", "evaluate_run",
           "compare", "compare_runs", "load_run", "Run", "recommend", "add_items", "export", "PreparedDataset"]


# --- data -------------------------------------------------------------------------------------

def prepare_dataset(source: str | Path, out: str | Path, format: str | None = None,
                    prepare_cfg: PrepareConfig | dict | None = None, log=print, name: str | None = None,
                    overwrite: bool = False,
                    **reader_options) -> PreparedDataset:
    """Read a raw dataset (format detected unless given; reader options as in `morec data formats`, e.g.
    ``user_column="customer_id", text_columns="book_title,blurb"``) and write the prepared directory ``out``.
    ``name`` is the dataset's name in every table, figure and file (default: the source folder's, or
    ``out``'s when that is generic like raw or data); ``prepare_cfg`` holds the paper's filters and
    ``title_column`` (the text shown as an item's title; default the first text column). An existing,
    non-empty ``out`` is refused unless ``overwrite``, which replaces it whole."""
    if isinstance(prepare_cfg, dict) or prepare_cfg is None:
        prepare_cfg = from_dict(PrepareConfig, prepare_cfg or {}, "prepare.")
    check_out_dir(out, overwrite)  # before reading what may be a large raw dataset
    raw = read_raw(source, format, **reader_options)
    return PreparedDataset(prepare(raw, out, prepare_cfg, log=log, name=name, overwrite=overwrite))


def dataset_stats(dataset: str | Path | PreparedDataset, plots: str | Path | None = None) -> dict:
    """The paper's Table 1 row plus sequence lengths (min / median / mean / max) and the time span; with
    ``plots`` (a folder) also the item-popularity plot (Figure 3) and the sequence-length histogram."""
    from .report import plot_item_popularity, plot_sequence_lengths

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
    from .train import load_run as load_model

    cfg, model, dataset = load_model(run_dir, device)
    mask = cfg.eval.mask_history if mask_history is None else mask_history
    return rank_users(model, dataset, split, cfg.model.max_len, mask, cfg.eval.user_batch)


def _test_ranks(run_dir: str | Path, device: str) -> np.ndarray:
    """The run's stored per-user test ranks (ranks.npz); re-ranked only for runs that kept none."""
    from .ranks import load_ranks

    stored = load_ranks(run_dir)
    return stored["test"] if stored is not None and stored.get("test") is not None else _ranks(run_dir, "test", device)


def compare_runs(runs_a: list[str | Path], runs_b: list[str | Path], metric: str = "ndcg@10", names=("A", "B"),
                 device: str = "cpu", alpha: float = 0.05) -> dict:
    """Paired comparison of two arms on one prepared dataset, per test user pooled over seeds, with the project's
    statistics (:func:`morec.stats.paired`, as `morec compare`): a 95% paired bootstrap CI of the mean difference
    (B - A), a paired permutation p, and the verdict "B better" / "A better" / "no detectable difference"."""
    from .stats import paired

    if not runs_a or not runs_b:
        raise ValueError("compare_runs needs at least one run per arm")
    datas = {str(Path(load_config(Path(r) / "config.yaml").data).resolve()) for r in [*runs_a, *runs_b]}
    if len(datas) != 1:
        raise ValueError(f"the runs were trained on different prepared datasets ({', '.join(sorted(datas))}); "
                         "a paired comparison needs one")
    result = paired([_test_ranks(r, device) for r in runs_a], [_test_ranks(r, device) for r in runs_b], metric,
                    alpha=alpha)
    verdict = {"better": f"{names[1]} better", "worse": f"{names[0]} better"}.get(result.verdict, result.verdict)
    return {"metric": f"test {metric}", "seeds": len(runs_a), "users": result.users,
            names[0]: {"mean": result.mean_a, "per_seed": result.seed_means_a, "runs": [str(r) for r in runs_a]},
            names[1]: {"mean": result.mean_b, "per_seed": result.seed_means_b, "runs": [str(r) for r in runs_b]},
            "difference": result.diff, "ci95": list(result.diff_ci), "p": result.p, "improv": result.improv,
            "improv_ci95": list(result.improv_ci) if result.improv_ci else None, "verdict": verdict}


def compare(data: str | Path, out: str | Path, a: list[str], b: list[str], seeds=(1, 2, 3), names=("IDRec", "MoRec"),
            common: list[str] | None = None, metric: str = "ndcg@10", log=print) -> dict:
    """Train two arms (override lists ``a`` and ``b`` on top of the same ``common`` budget) once per seed on
    the prepared dataset ``data``, into ``out/NAME-seedS`` (a finished run is reused), then compare them
    paired by seed and user (:func:`compare_runs`). Returns the comparison, with a verdict."""
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
        from .recommend import RecommenderService

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
        from .catalog import CATALOG_FILE, items_frame

        added = self.service.add_items(items_frame(items, fmt), columns)
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
