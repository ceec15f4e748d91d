"""What a training run writes into its directory besides checkpoints: the directory claimed and cleared at the
start, ``results.json`` at the end (the best epoch's model scored once on validation and, if asked, on test)."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from .checkpoint import atomic_write_text, read_checkpoint_meta, remove_checkpoint
from .config import Config, ConfigError, deep_merge, from_dict, parse_overrides, save_config, to_dict
from .data.dataset import PreparedDataset
from .evaluate import metrics_from_ranks, subset_metrics
from .selection import TrainState, capped, validated_epochs
from .tempfiles import remove_stale

RUN_OUTPUTS = ("model.safetensors", "results.json")  # what a finished run leaves besides its checkpoint
_RUN_FILES = ("config.yaml", "checkpoint.json", *RUN_OUTPUTS)


def claim_run_dir(out: str | Path, overwrite: bool = False) -> None:
    """`morec train --out DIR`: refuse a directory that already holds files (an earlier run would be
    mixed with the new one) unless ``overwrite``, which starts from an empty directory."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out={out} is a file, not a directory; give a new directory path for the run")
    if not out.exists() or not any(out.iterdir()):
        return
    if not overwrite:
        what = "a run" if any((out / f).exists() for f in _RUN_FILES) else "files"
        raise ConfigError(f"out={out} already holds {what}. Continue it with `morec train --resume {out}`, "
                          "start it over with --overwrite (deletes what is there), or choose another --out")
    aside = out.parent / f".{out.name}.old-{os.getpid()}"
    out.rename(aside)  # one step: no reader ever sees half of the old run beside the new one
    out.mkdir()
    shutil.rmtree(aside, ignore_errors=True)


def checkpoint_config(run_dir: str | Path, overrides: list[str] | dict | None = None) -> tuple[Config, dict]:
    """The config of ``run_dir``'s last checkpoint with ``overrides``, and that checkpoint's metadata."""
    run = Path(run_dir)
    if not run.is_dir():
        raise FileNotFoundError(f"{run} is not a run directory; --resume takes the directory `morec train` wrote (its --out)")
    meta = read_checkpoint_meta(run)
    values = meta["config"]
    if overrides:
        values = deep_merge(values, parse_overrides(overrides) if isinstance(overrides, list) else overrides)
    cfg = from_dict(Config, values)
    cfg.out = str(run)
    return cfg, meta


def open_run_dir(out: Path, cfg: Config, resumed: bool) -> None:
    """The run directory made ready to train into, its resolved config written."""
    out.mkdir(parents=True, exist_ok=True)
    remove_stale(out)  # temporary files of a killed earlier process
    save_config(cfg, out / "config.yaml")
    if not resumed:
        # a fresh run: nothing of an earlier run in this directory may outlive it (its best model and
        # results would otherwise be served under the new config until the first improved epoch)
        remove_checkpoint(out)
        for stale in RUN_OUTPUTS:
            (out / stale).unlink(missing_ok=True)


def write_collapsed_results(out: Path, cfg: Config, st: TrainState, n_params: int) -> None:
    """results.json of a run that collapsed before any epoch was kept: no model to score."""
    atomic_write_text(out / "results.json", json.dumps({
        "best_epoch": -1, "epochs_run": st.epoch, "valid": None, "test": None, "test_subsets": None,
        "seconds_per_epoch": st.train_seconds / max(st.epoch, 1), "trainable_parameters": n_params,
        "stop_reason": "collapsed", "collapse": st.collapse, "config": to_dict(cfg)}, indent=2))


def run_results(cfg: Config, st: TrainState, dataset: PreparedDataset, valid_ranks: np.ndarray,
                test_ranks: np.ndarray | None, *, valid_users: np.ndarray | None, run: dict, flops_per_item,
                memory: dict) -> dict:
    """results.json's content; ``test_ranks`` None: the test split was left unread. ``run`` holds what only the
    trainer knows (seconds_total, trainable_parameters, processes); ``memory`` the peak-memory fields."""
    e, tested = cfg.eval, test_ranks is not None
    is_capped = capped(st, cfg)
    return {
        "best_epoch": st.best_epoch,
        "epochs_run": st.epoch,
        "valid": metrics_from_ranks(valid_ranks, e.ks),  # the chosen model on every user, whatever selection saw
        "selection": {  # what chose best_epoch: the metric, on which users, at which epochs
            "metric": e.select_metric, "score": st.best_score,
            "valid_users": dataset.n_users if valid_users is None else len(valid_users),
            "users_of": dataset.n_users, "epochs_validated": len(validated_epochs(st, cfg)),
            "valid_from": e.valid_from, "valid_every": e.valid_every},
        "test": metrics_from_ranks(test_ranks, e.ks) if tested else None,
        "test_subsets": subset_metrics(test_ranks, dataset, "test", e.ks, e.subsets, e.cold_threshold)
        if tested else None,
        "seconds_per_epoch": st.train_seconds / max(st.epoch, 1),
        "feature_pass_seconds": st.feature_seconds,  # before epoch 0, once: not in seconds_per_epoch
        "seconds_to_best": st.time_to_best,
        **run,
        "checkpoint_bytes": st.checkpoint_bytes,
        "checkpoint_seconds": st.checkpoint_seconds / max(st.serial, 1),
        "stop_reason": st.stop_reason,
        "valid_rising_at_cap": is_capped,
        "capped": is_capped,
        **({"collapse": st.collapse} if st.collapse else {}),
        "flops_per_item": flops_per_item,
        **memory,
        "dataset": dataset.identity(),
        "config": to_dict(cfg),
    }
