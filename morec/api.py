"""The Python API for notebooks and scripts; the CLI is a thin layer over these functions."""
from __future__ import annotations

from pathlib import Path

from .config import Config, PrepareConfig, from_dict, load_config
from .data.dataset import PreparedDataset
from .data.fetch import fetch_dataset
from .data.formats.registry import read_raw
from .data.prepare import prepare
from .evaluate import metrics_from_ranks, rank_users
from .train import load_run, train

__all__ = ["fetch_dataset", "prepare_dataset", "train", "load_config", "evaluate_run", "load_run", "PreparedDataset"]


def prepare_dataset(source: str | Path, out: str | Path, format: str | None = None,
                    prepare_cfg: PrepareConfig | dict | None = None, log=print, **reader_options) -> PreparedDataset:
    """Read a raw dataset (format detected unless given) and write the prepared directory ``out``."""
    if isinstance(prepare_cfg, dict) or prepare_cfg is None:
        prepare_cfg = from_dict(PrepareConfig, prepare_cfg or {}, "prepare.")
    raw = read_raw(source, format, **reader_options)
    return PreparedDataset(prepare(raw, out, prepare_cfg, log=log))


def evaluate_run(run_dir: str | Path, split: str = "test", device: str = "cpu", mask_history: bool | None = None) -> dict:
    """Re-score a saved run on ``split`` with its best checkpoint."""
    cfg, model, dataset = load_run(run_dir, device)
    mask = cfg.eval.mask_history if mask_history is None else mask_history
    ranks = rank_users(model, dataset, split, cfg.model.max_len, mask, cfg.eval.user_batch)
    return metrics_from_ranks(ranks, cfg.eval.ks)


def quick_config(data: str | Path, out: str | Path, overrides: list[str] | None = None) -> Config:
    return load_config(None, [f"--data={data}", f"--out={out}", *(overrides or [])])
