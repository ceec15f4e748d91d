"""What the extra pre-training commands (MLM on item texts, MAE on item images) share: the run's start
(threads, seed, device), the saved result record and the command line."""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Callable

import torch

from .config import load_config, to_dict
from .runs import resolve_device


def start_run(cfg) -> torch.device:
    """Validate the config, set torch's threads and seed as it says; the device to train on."""
    cfg.validate()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    return resolve_device(cfg.device)


def record_epoch(history: list[dict], epoch: int, train_total: float, steps: int, heldout: float, what: str,
                 lr: float, log) -> None:
    """Append an epoch's mean training loss and held-out loss to ``history``; a non-finite held-out loss stops
    the run with the learning rate to lower. ``what``: the objective's name (MLM, MAE)."""
    if not math.isfinite(heldout):
        raise RuntimeError(f"{what} pre-training diverged at epoch {epoch}; lower lr (now {lr})")
    train = train_total / max(steps, 1)
    history.append({"epoch": epoch, "train_loss": train, "heldout_loss": heldout})
    log(f"epoch {epoch}: train {what} loss {train:.4f}  held-out {heldout:.4f}")


def write_result(out: Path, before: float, history: list[dict], start: float, cfg, log, use_with: str) -> dict:
    """``morec_pretrain.json`` beside the saved model: held-out loss before / after, per-epoch log, config."""
    result = {"heldout_loss_before": before, "heldout_loss_after": history[-1]["heldout_loss"], "epochs": history,
              "seconds": time.perf_counter() - start, "out": str(out), "config": to_dict(cfg)}
    (out / "morec_pretrain.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    log(f"saved {out}; use it with {use_with}={out}")
    return result


def run_cli(argv: list[str] | None, prog: str, description: str, cfg_cls: type, run: Callable) -> int:
    """``PROG [--config FILE] [--KEY=VALUE ...]``: a config of ``cfg_cls`` from YAML and overrides, then ``run``."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", help=f"YAML file with {cfg_cls.__name__} keys")
    args, rest = parser.parse_known_args(argv)
    run(load_config(args.config, rest, cls=cfg_cls))
    return 0
