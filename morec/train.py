"""One training loop for every item encoder and backbone.

Each epoch: shuffled batches -> loss -> AdamW step; then validation (full ranking). The best epoch
on the validation metric is kept; the test split is scored once, at the end, with that model.
"""
from __future__ import annotations

import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from .config import Config, load_config, save_config, to_dict
from .data.batches import make_batches
from .data.dataset import PreparedDataset
from .evaluate import metrics_from_ranks, rank_users
from .losses import compute_loss
from .model import Recommender, build_model


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_optimizer(model: Recommender, cfg: Config) -> torch.optim.Optimizer:
    """AdamW; the pretrained encoder gets its own lr / weight decay; biases and norms are not decayed."""
    encoder_ids = {id(p) for p in model.item_encoder.encoder_parameters()}
    decay, no_decay, encoder = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if id(p) in encoder_ids:
            encoder.append(p)
        elif p.ndim < 2 or "norm" in name or name.split(".")[-2:-1] == ["ln"]:
            no_decay.append(p)
        else:
            decay.append(p)
    groups = [
        {"params": decay, "lr": cfg.train.lr, "weight_decay": cfg.train.weight_decay},
        {"params": no_decay, "lr": cfg.train.lr, "weight_decay": 0.0},
    ]
    if encoder:
        groups.append({"params": encoder, "lr": cfg.model.encoder.lr, "weight_decay": cfg.model.encoder.weight_decay})
    return torch.optim.AdamW([g for g in groups if g["params"]])


def validation_score(metrics: dict[str, float], name: str) -> float:
    return metrics[name]


class Trainer:
    def __init__(self, cfg: Config, dataset: PreparedDataset | None = None, log=print):
        self.cfg = cfg.validate()
        self.log = log
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        seed_everything(cfg.train.seed)
        self.device = resolve_device(cfg.train.device)
        self.dataset = dataset or PreparedDataset(cfg.data)
        self.model = build_model(cfg.model, self.dataset).to(self.device)
        self.optimizer = make_optimizer(self.model, cfg)
        self.batches = make_batches(self.dataset, self.model.backbone.uses_history, cfg.model.max_len,
                                    cfg.train.batch_size, cfg.train.n_negatives, cfg.train.windows)
        self.out = Path(cfg.out)

    def evaluate(self, split: str) -> dict[str, float]:
        e = self.cfg.eval
        ranks = rank_users(self.model, self.dataset, split, self.cfg.model.max_len, e.mask_history, e.user_batch)
        return metrics_from_ranks(ranks, e.ks)

    def train_epoch(self, epoch: int) -> float:
        self.model.train()
        self.model.item_encoder.on_epoch_start(epoch)
        rng = np.random.default_rng([self.cfg.train.seed, epoch])
        total, n = 0.0, 0
        bar = tqdm(self.batches.epoch(rng), total=len(self.batches), desc=f"epoch {epoch}", leave=False,
                   disable=not self.cfg.train.progress, file=sys.stderr)
        for batch in bar:
            loss = compute_loss(self.model, batch.to(self.device), self.cfg.train.loss)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.cfg.train.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.train.grad_clip)
            self.optimizer.step()
            total += loss.item()
            n += 1
            bar.set_postfix(loss=f"{total / n:.4f}")
        return total / max(n, 1)

    def fit(self) -> dict:
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, self.out / "config.yaml")
        n_params = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        self.log(f"{self.dataset.name}: {self.dataset.n_users:,} users, {self.dataset.n_items:,} items | "
                 f"{cfg.model.encoder.kind}-{cfg.model.backbone}, {n_params:,} trainable parameters, "
                 f"loss {cfg.train.loss}, device {self.device}")
        best, best_epoch, bad, start = -math.inf, -1, 0, time.perf_counter()
        train_seconds = 0.0
        time_to_best = 0.0
        log_file = open(self.out / "metrics.jsonl", "w", encoding="utf-8")
        for epoch in range(cfg.train.epochs):
            t0 = time.perf_counter()
            loss = self.train_epoch(epoch)
            train_seconds += time.perf_counter() - t0
            valid = self.evaluate("valid")
            score = validation_score(valid, cfg.eval.select_metric)
            if not math.isfinite(loss):
                self.log(f"epoch {epoch}: loss is {loss}; training diverged. Lower train.lr (now {cfg.train.lr})"
                         f" or model.encoder.lr (now {cfg.model.encoder.lr}).")
                break
            improved = score > best
            record = {"epoch": epoch, "loss": loss, "seconds": time.perf_counter() - t0,
                      **{f"valid_{k}": v for k, v in valid.items()}}
            log_file.write(json.dumps(record) + "\n")
            log_file.flush()
            self.log(f"epoch {epoch:3d}  loss {loss:.4f}  " + "  ".join(f"valid {k} {v:.4f}" for k, v in valid.items())
                     + ("  *" if improved else ""))
            if improved:
                best, best_epoch, bad = score, epoch, 0
                time_to_best = time.perf_counter() - start
                save_file(self.model.state_dict(), str(self.out / "model.safetensors"))
            else:
                bad += 1
                if bad >= cfg.train.patience:
                    self.log(f"early stop: no better valid {cfg.eval.select_metric} for {cfg.train.patience} epochs")
                    break
        log_file.close()
        if best_epoch < 0:
            raise RuntimeError("no epoch finished with a finite loss; nothing to evaluate")
        self.model.load_state_dict(load_file(str(self.out / "model.safetensors"), device=str(self.device)))
        results = {
            "best_epoch": best_epoch,
            "epochs_run": epoch + 1,
            "valid": self.evaluate("valid"),
            "test": self.evaluate("test"),  # the only time the test split is read
            "seconds_per_epoch": train_seconds / (epoch + 1),
            "seconds_to_best": time_to_best,
            "seconds_total": time.perf_counter() - start,
            "trainable_parameters": n_params,
            "config": to_dict(cfg),
        }
        (self.out / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
        return results


def train(cfg: Config, dataset: PreparedDataset | None = None, log=print) -> dict:
    return Trainer(cfg, dataset, log).fit()


def load_run(run_dir: str | Path, device: str = "cpu") -> tuple[Config, Recommender, PreparedDataset]:
    """Rebuild the model of a run directory from its config and best weights alone."""
    run = Path(run_dir)
    if not (run / "config.yaml").exists():
        raise FileNotFoundError(f"{run} is not a run directory (no config.yaml); `morec train` writes one")
    cfg = load_config(run / "config.yaml")
    dataset = PreparedDataset(cfg.data)
    model = build_model(cfg.model, dataset)
    model.load_state_dict(load_file(str(run / "model.safetensors"), device=device))
    return cfg, model.to(device).eval(), dataset
