"""One training loop for every item encoder and backbone, in one process or many (torchrun).

Each epoch: shuffled batches -> loss -> AdamW step; then validation (full ranking). The best epoch
on the validation metric is kept; the test split is scored once, at the end, with that model.

The same loop also does: gradient accumulation (``train.accumulate``), mixed precision
(``train.precision``: bf16 autocast, fp16 autocast with a gradient scaler), DistributedDataParallel
when started by torchrun (see morec.distributed), and checkpoints every epoch / every K steps that
``Trainer.resume`` (``morec train --resume RUN_DIR``) continues from exactly, mid-epoch too: an
epoch's batch order is a pure function of (seed, epoch), so the batches already done are replayed
from the generator and skipped, and the RNG states are restored.
"""
from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from .progress import progress

from . import cost
from . import distributed as dist_utils
from .checkpoint import (CheckpointError, atomic_save_tensors, atomic_write_text, flatten_optimizer, read_tensors,
                         load_checkpoint_tensors, read_checkpoint_meta, remove_checkpoint, rng_state,
                         save_checkpoint, set_rng_state, unflatten_optimizer)
from .config import Config, ConfigError, deep_merge, from_dict, parse_overrides, save_config, to_dict
from .data.batches import make_batches
from .data.dataset import PreparedDataset
from .evaluate import metrics_from_ranks, rank_users, subset_metrics
from .ranks import save_ranks
from .losses import LossContext, compute_loss
from .model import Recommender, build_model
from .runlog import RunLog
from .runlock import run_lock
from .tempfiles import remove_stale


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
    # each group is named: its learning rate is logged as lr/<name>
    groups = [
        {"params": decay, "lr": cfg.train.lr, "weight_decay": cfg.train.weight_decay, "name": "decay"},
        {"params": no_decay, "lr": cfg.train.lr, "weight_decay": 0.0, "name": "no_decay"},
    ]
    if encoder:
        groups.append({"params": encoder, "lr": cfg.model.encoder.lr, "weight_decay": cfg.model.encoder.weight_decay,
                       "name": "encoder"})
    return torch.optim.AdamW([g for g in groups if g["params"]], betas=tuple(cfg.train.betas))


def lr_factor(schedule: str, step: int, total_steps: int, warmup: float = 0.0) -> float:
    """The share of each group's peak learning rate used at optimizer step ``step`` (0-based) of ``total_steps``.

    constant: 1. cosine: linear warm-up over ``warmup`` of the steps, then cosine decay to 0 at the last
    step. onecycle (Smith & Topin's shape, without the momentum cycle): cosine rise from 1/25 over
    ``warmup`` (0: 0.3) of the steps, then cosine fall to 1e-4. A pure function of the step, so a resumed
    run continues the schedule exactly.
    """
    if schedule == "constant":
        return 1.0
    total = max(total_steps, 1)
    if schedule == "cosine":
        up = int(warmup * total)
        if step < up:
            return (step + 1) / up
        return 0.5 * (1 + math.cos(math.pi * min(step - up, total - up) / max(total - up, 1)))
    if schedule == "onecycle":
        up = max(1, int((warmup or 0.3) * total))
        start, end = 1 / 25, 1e-4
        if step < up:
            return start + (1 - start) * 0.5 * (1 - math.cos(math.pi * step / up))
        return end + (1 - end) * 0.5 * (1 + math.cos(math.pi * min(step - up, total - up) / max(total - up, 1)))
    raise ValueError(f"unknown schedule {schedule!r}")


class TrainingCollapsed(RuntimeError):
    """The loss became NaN / inf before any epoch finished: results.json says ``stop_reason: collapsed``."""


def collapse_message(cfg: Config, epoch: int, why: str) -> str:
    return (f"training collapsed at epoch {epoch}: {why}. Lower the learning rates: train.lr (now {cfg.train.lr}) "
            f"and model.encoder.lr (now {cfg.model.encoder.lr})")


class LossModule(nn.Module):
    """The recommender and its loss as one module: what DDP wraps, so every loss runs under its hooks."""

    def __init__(self, model: Recommender, loss_name: str, ctx: LossContext | None = None):
        super().__init__()
        self.model, self.loss_name, self.ctx = model, loss_name, ctx

    def forward(self, batch) -> torch.Tensor:
        return compute_loss(self.model, batch, self.loss_name, self.ctx)


@dataclass
class TrainState:
    """Everything besides tensors that a checkpoint must hold to continue a run exactly."""

    epoch: int = 0  # the epoch in progress, or the next one to start
    batches_done: int = 0  # micro-batches of `epoch` already trained
    step: int = 0  # optimizer steps since the start of the run
    loss_sum: float = 0.0  # weighted batch losses of `epoch` so far (summed over ranks in a checkpoint)
    loss_count: int = 0  # batches behind loss_sum
    nonfinite: int = 0  # fp16 steps of `epoch` whose loss overflowed (skipped by the scaler)
    epoch_seconds: float = 0.0  # training seconds of `epoch` so far
    best_score: float | None = None
    best_epoch: int = -1
    bad_epochs: int = 0
    train_seconds: float = 0.0  # training seconds of completed epochs
    feature_seconds: float = 0.0  # the item encoder's work done once before epoch 0 (not in train_seconds)
    time_to_best: float = 0.0
    elapsed: float = 0.0  # wall seconds of the run so far, over every resume
    log: list = field(default_factory=list)  # the metrics.jsonl records
    finished: bool = False
    stop_reason: str = ""  # epochs | patience | collapsed
    collapse: str = ""  # why a collapsed run was stopped, and the learning rates to lower
    low_epochs: int = 0  # consecutive epochs with the validation score collapsed (see train.collapse_ratio)
    serial: int = 0  # checkpoints written
    checkpoint_seconds: float = 0.0  # spent writing checkpoints
    checkpoint_bytes: int = 0  # size of the latest


def capped_message(cfg, best_epoch: int, out) -> str:
    """Said at the end of a run stopped by its epoch cap before patience ran out: more epochs may still help."""
    more = (f"continue it with: morec train --resume {out} --train.epochs={2 * cfg.train.epochs}"
            if cfg.train.checkpoints else f"train again with a larger train.epochs (it was {cfg.train.epochs})")
    return (f"note: the run stopped at its epoch cap (train.epochs={cfg.train.epochs}) while validation was still "
            f"improving (best epoch {best_epoch}, patience {cfg.train.patience} not used up); {more}")


class Trainer:
    """``on_epoch(epoch, valid_metrics)``, if given, is called after each epoch's validation (a search prunes a
    trial there by raising); ``fit(test=False)`` never reads the test split (a search's trials)."""

    def __init__(self, cfg: Config, dataset: PreparedDataset | None = None, log=print,
                 on_epoch: Callable[[int, dict], None] | None = None):
        self.cfg = cfg.validate()
        self.on_epoch = on_epoch
        t = cfg.train
        if t.threads:
            torch.set_num_threads(t.threads)
        self.dist, self.device = dist_utils.init_from_env(t.device)
        self.log = log if self.dist.is_main else (lambda s: None)
        seed_everything(t.seed)
        self.dataset = dataset or PreparedDataset(cfg.data)
        self.model = build_model(cfg.model, self.dataset).to(self.device)
        self.optimizer = make_optimizer(self.model, cfg)
        self.batches = make_batches(self.dataset, self.model.backbone, cfg.model.max_len, t.batch_size,
                                    t.n_negatives, t.windows, loss=t.loss, negative_sampler=t.negative_sampler,
                                    negatives_from=t.negatives_from, window_fraction=t.window_fraction,
                                    negatives_shared=t.negatives_shared)
        self.base_lrs = [g["lr"] for g in self.optimizer.param_groups]
        self.total_steps = t.epochs * -(-len(self.batches) // t.accumulate)
        self.valid_users = self._selection_users()
        self.out = Path(cfg.out)
        self.amp_dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[t.precision]
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=t.precision == "fp16")
        ctx = LossContext.build(self.dataset, t, self.device)
        if self.dist.enabled and t.loss == "inbatch":
            ctx.gather = dist_utils.CandidateGather(self.dist, self.device)
        self.loss_module = LossModule(self.model, t.loss, ctx)
        self.step_module: nn.Module = self.loss_module
        if self.dist.enabled:
            self.step_module = self._wrap_ddp()
        self.state = TrainState()
        self.resumed = False
        self.runlog: RunLog | None = None

    # --- pieces ------------------------------------------------------------------------------
    def _wrap_ddp(self) -> nn.Module:
        from torch.nn.parallel import DistributedDataParallel as DDP

        probe = next(self.batches.epoch(np.random.default_rng([self.cfg.train.seed, 0])))
        local, _ = dist_utils.shard_batch(probe, self.dist)
        params = [p for p in self.model.parameters() if p.requires_grad]
        with self._autocast():
            unused = dist_utils.find_unused_parameters(self.loss_module, local.to(self.device), params)
        unused = dist_utils.all_reduce_sum(self.dist, [float(unused)], self.device)[0] > 0
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DDP(self.loss_module, device_ids=ids, find_unused_parameters=unused)

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _selection_users(self) -> np.ndarray | None:
        """The fixed random users per-epoch selection sees (eval.valid_users), sorted; None: every user."""
        n, want = self.dataset.n_users, self.cfg.eval.valid_users
        if not want or want >= n:
            return None
        return np.sort(np.random.default_rng([self.cfg.train.seed, 16]).choice(n, want, replace=False))

    def rank(self, split: str, users: np.ndarray | None = None) -> np.ndarray:
        """The full-ranking rank on ``split`` of every user (or of ``users``); under torchrun items and users
        are split over the ranks."""
        e = self.cfg.eval
        users = np.arange(self.dataset.n_users) if users is None else users
        users = users[dist_utils.shard_slice(len(users), self.dist)]
        with dist_utils.sharded_item_encoding(self.model, self.dist, self.device), self._autocast():
            ranks = rank_users(self.model, self.dataset, split, self.cfg.model.max_len, e.mask_history, e.user_batch,
                               users=users)
        return dist_utils.gather_ranks(self.dist, ranks, self.device)

    def evaluate(self, split: str, users: np.ndarray | None = None) -> dict[str, float]:
        return metrics_from_ranks(self.rank(split, users), self.cfg.eval.ks)

    def validates(self, epoch: int) -> bool:
        """Whether ``epoch`` is validated (eval.valid_from / valid_every; the last epoch always is)."""
        e = self.cfg.eval
        return epoch >= self.cfg.train.epochs - 1 or (epoch >= e.valid_from and (epoch - e.valid_from) % e.valid_every == 0)

    def _set_lr(self) -> None:
        t = self.cfg.train
        factor = lr_factor(t.schedule, self.state.step, self.total_steps, t.warmup)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * factor

    def train_epoch(self, epoch: int) -> float:
        """Train one epoch (or its rest, after a mid-epoch resume); returns the mean batch loss."""
        t, st = self.cfg.train, self.state
        self.step_module.train()
        self.model.item_encoder.on_epoch_start(epoch)
        rng = np.random.default_rng([t.seed, epoch])
        n_batches, acc, skip = len(self.batches), t.accumulate, st.batches_done
        batches = self.batches.epoch(rng)
        if skip:  # replay the generator (same rng draws) without training on what was done before the checkpoint
            batches = itertools.islice(batches, skip, None)
        bar = progress(batches, n_batches, f"epoch {epoch}", t.progress and self.dist.is_main, skip, sys.stderr)
        t0, seconds_before = time.perf_counter(), st.epoch_seconds
        interval = {"loss": 0.0, "batches": 0, "steps": 0, "t0": t0}  # since the last step record
        self.optimizer.zero_grad(set_to_none=True)
        for i, batch in enumerate(bar, start=skip):
            group_start = i - i % acc
            group_size = min(acc, n_batches - group_start)
            last_in_group = i + 1 - group_start == group_size
            local, weight = dist_utils.shard_batch(batch, self.dist)
            no_sync = self.dist.enabled and not last_in_group
            with self.step_module.no_sync() if no_sync else contextlib.nullcontext():
                with self._autocast():
                    loss = self.step_module(local.to(self.device))
                scaled = loss * (weight / group_size) if (weight != 1.0 or group_size != 1) else loss
                self.scaler.scale(scaled).backward()
            value = loss.item() * weight
            if math.isfinite(value) or not self.scaler.is_enabled():
                st.loss_sum += value
                st.loss_count += 1
                interval["loss"] += value
                interval["batches"] += 1
            else:
                st.nonfinite += 1
            st.batches_done = i + 1
            if last_in_group:
                if t.grad_clip:
                    self.scaler.unscale_(self.optimizer)
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip)
                if t.schedule != "constant":
                    self._set_lr()
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.optimizer.zero_grad(set_to_none=True)
                st.step += 1
                interval["steps"] += 1
                if self.runlog and st.step % t.log_every == 0:
                    self._log_step(epoch, interval)
                if st.loss_count:
                    bar.set_postfix(loss=f"{st.loss_sum / st.loss_count:.4f}")
                if t.checkpoints and t.checkpoint_every_steps and st.step % t.checkpoint_every_steps == 0 \
                        and st.batches_done < n_batches:
                    st.epoch_seconds = seconds_before + time.perf_counter() - t0
                    self.save_checkpoint()
        st.epoch_seconds = seconds_before + time.perf_counter() - t0
        total, count = dist_utils.all_reduce_sum(self.dist, [st.loss_sum, float(st.loss_count)], self.device)
        count /= self.dist.world_size  # every rank counted the same batches
        if st.nonfinite:
            self.log(f"epoch {epoch}: {st.nonfinite} fp16 steps overflowed and were skipped by the gradient scaler")
        return total / self.dist.world_size / count if count else math.nan

    def _log_step(self, epoch: int, interval: dict) -> None:
        """One steps.jsonl / TensorBoard record: the mean loss (this process's share under torchrun) and time per
        step over the steps since the last record, each parameter group's learning rate, peak memory so far."""
        now = time.perf_counter()
        record = {"step": self.state.step, "epoch": epoch,
                  "train/loss": interval["loss"] / interval["batches"] if interval["batches"] else math.nan,
                  **{f"lr/{g.get('name', i)}": g["lr"] for i, g in enumerate(self.optimizer.param_groups)},
                  "train/step_seconds": (now - interval["t0"]) / interval["steps"],
                  "train/peak_memory_bytes": cost.peak_memory(self.device)["peak_memory_bytes"]}
        self.runlog.step(record)
        interval.update(loss=0.0, batches=0, steps=0, t0=now)

    # --- checkpoints -------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        """Write the resumable state (rank 0 writes; every rank must call it, it gathers RNG states)."""
        st = self.state
        st.elapsed = time.perf_counter() - self._start
        st.serial += 1
        (loss_sum,) = dist_utils.all_reduce_sum(self.dist, [st.loss_sum], self.device)
        rng_tensors, rng_info = rng_state()
        if self.dist.enabled:  # each rank's torch generators (dropout) differ
            for r, s in enumerate(dist_utils.gather_tensor_list(self.dist, torch.get_rng_state(), self.device)):
                rng_tensors[f"rng.rank{r}.torch"] = s
            if self.device.type == "cuda":
                cuda = torch.cuda.get_rng_state(self.device)
                for r, s in enumerate(dist_utils.gather_tensor_list(self.dist, cuda, self.device)):
                    rng_tensors[f"rng.rank{r}.cuda"] = s
        if not self.dist.is_main:
            return
        t0 = time.perf_counter()
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        opt_tensors, opt_index = flatten_optimizer(self.optimizer.state_dict())
        tensors.update(opt_tensors)
        tensors.update(rng_tensors)
        meta = {
            "serial": st.serial,
            "world_size": self.dist.world_size,
            "state": {**dataclasses.asdict(st), "loss_sum": loss_sum},
            "optimizer": opt_index,
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "rng": rng_info,
            "config": to_dict(self.cfg),
        }
        written = save_checkpoint(self.out, tensors, meta)
        st.checkpoint_seconds += time.perf_counter() - t0
        st.checkpoint_bytes = written["bytes"]

    @classmethod
    def from_checkpoint(cls, run_dir: str | Path, dataset: PreparedDataset | None = None, log=print,
                        overrides: list[str] | dict | None = None) -> "Trainer":
        """A trainer rebuilt from ``run_dir``'s last checkpoint (its config, with ``overrides``), ready to ``fit()``."""
        run = Path(run_dir)
        if not run.is_dir():
            raise FileNotFoundError(f"{run} is not a run directory; --resume takes the directory `morec train` wrote (its --out)")
        meta = read_checkpoint_meta(run)
        values = meta["config"]
        if overrides:
            values = deep_merge(values, parse_overrides(overrides) if isinstance(overrides, list) else overrides)
        cfg = from_dict(Config, values)
        cfg.out = str(run)
        trainer = cls(cfg, dataset, log)
        trainer.load_checkpoint(meta)
        return trainer

    @classmethod
    def resume(cls, run_dir: str | Path, dataset: PreparedDataset | None = None, log=print,
               overrides: list[str] | dict | None = None) -> dict:
        """Continue the run in ``run_dir`` from its last checkpoint to the end; returns the results."""
        return cls.from_checkpoint(run_dir, dataset, log, overrides).fit()

    def load_checkpoint(self, meta: dict | None = None) -> None:
        meta = meta or read_checkpoint_meta(self.out)
        tensors = load_checkpoint_tensors(self.out, meta)
        weights = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        try:
            self.model.load_state_dict(weights)
            self.optimizer.load_state_dict(unflatten_optimizer(tensors, meta["optimizer"]))
        except (RuntimeError, ValueError, KeyError) as err:
            raise CheckpointError(f"the checkpoint in {self.out} does not fit the model of this config ({err}); "
                                  "resume with the run's own config (model overrides cannot change on resume)") from None
        if meta.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(meta["scaler"])
        known = {f.name for f in dataclasses.fields(TrainState)}
        self.state = TrainState(**{k: v for k, v in meta["state"].items() if k in known})
        st = self.state
        if not self.dist.is_main:
            st.loss_sum = 0.0  # the checkpoint holds the sum over ranks; rank 0 carries it
        set_rng_state(tensors, meta["rng"])
        if self.dist.enabled and meta.get("world_size") == self.dist.world_size:
            torch.set_rng_state(tensors[f"rng.rank{self.dist.rank}.torch"])
            if self.device.type == "cuda" and f"rng.rank{self.dist.rank}.cuda" in tensors:
                torch.cuda.set_rng_state(tensors[f"rng.rank{self.dist.rank}.cuda"], self.device)
        if st.finished and st.stop_reason == "epochs" and self.cfg.train.epochs > st.epoch:
            st.finished, st.stop_reason = False, ""  # resumed with more epochs
        if self.dist.is_main and st.best_epoch >= 0 and st.best_epoch == st.epoch - 1 and st.batches_done == 0:
            # saved at the end of the best epoch: its weights are the best ones; the copy to model.safetensors
            # may not have happened before the crash, so redo it
            atomic_save_tensors(self.model.state_dict(), self.out / "model.safetensors", {"epoch": str(st.best_epoch)})
        self.resumed = True

    # --- the run -----------------------------------------------------------------------------
    def fit(self, test: bool = True) -> dict:
        """Train to the end and score the best epoch's model; ``test=False`` leaves the test split unread
        (``results["test"]`` is None). The run directory's writer lock is held throughout (morec.runlock)."""
        with run_lock(self.out, "train into") if self.dist.is_main else contextlib.nullcontext():
            return self._fit(test)

    def _fit(self, test: bool) -> dict:
        cfg, st, main = self.cfg, self.state, self.dist.is_main
        if main:
            self.out.mkdir(parents=True, exist_ok=True)
            remove_stale(self.out)  # temporary files of a killed earlier process
            save_config(cfg, self.out / "config.yaml")
            if not self.resumed:
                # a fresh run: nothing of an earlier run in this directory may outlive it (its best model and
                # results would otherwise be served under the new config until the first improved epoch)
                remove_checkpoint(self.out)
                for stale in RUN_OUTPUTS:
                    (self.out / stale).unlink(missing_ok=True)
        n_params = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        procs = f", {self.dist.world_size} processes ({self.dist.backend})" if self.dist.enabled else ""
        self.log(f"{self.dataset.name}: {self.dataset.n_users:,} users, {self.dataset.n_items:,} items | "
                 f"{cfg.model.encoder.kind}-{cfg.model.backbone}, {n_params:,} trainable parameters, "
                 f"loss {cfg.train.loss}, device {self.device}{procs}"
                 + (f", precision {cfg.train.precision}" if cfg.train.precision != "fp32" else ""))
        if self.resumed:
            where = f"epoch {st.epoch}, batch {st.batches_done}/{len(self.batches)}" if not st.finished else "the end"
            self.log(f"resumed {self.out} at {where} (step {st.step})")
        self._start = time.perf_counter() - st.elapsed
        peak_reset = cost.reset_peak_memory(self.device)
        st.feature_seconds += self._feature_pass()
        if main:
            self.runlog = RunLog(self.out, st.log, st.step, self.resumed, cfg.train.tensorboard, self.log)
        try:
            while not st.finished and st.epoch < cfg.train.epochs:
                self._run_epoch()
        finally:
            if self.runlog:
                self.runlog.close()
                self.runlog = None
        if st.best_epoch < 0 and st.stop_reason == "collapsed":
            if main:
                atomic_write_text(self.out / "results.json", json.dumps({
                    "best_epoch": -1, "epochs_run": st.epoch, "valid": None, "test": None, "test_subsets": None,
                    "seconds_per_epoch": st.train_seconds / max(st.epoch, 1), "trainable_parameters": n_params,
                    "stop_reason": "collapsed", "collapse": st.collapse, "config": to_dict(cfg)}, indent=2))
            raise TrainingCollapsed(st.collapse)
        if st.best_epoch < 0:
            raise RuntimeError("no epoch finished with a finite loss; nothing to evaluate. Lower train.lr "
                               f"(now {cfg.train.lr}) or model.encoder.lr (now {cfg.model.encoder.lr})")
        if main:
            self.model.load_state_dict(read_tensors(self.out / "model.safetensors", self.device))
        dist_utils.broadcast_state(self.model, self.dist)
        epochs_run = max(st.epoch, 1)
        valid_ranks = self.rank("valid")
        test_ranks = self.rank("test") if test else None  # the only time the test split is read
        if main:
            save_ranks(self.out, valid_ranks, test_ranks)
        e = cfg.eval
        validated = [r["epoch"] for r in st.log if f"valid_{e.select_metric}" in r]
        results = {
            "best_epoch": st.best_epoch,
            "epochs_run": st.epoch,
            "valid": metrics_from_ranks(valid_ranks, e.ks),  # the chosen model on every user, whatever selection saw
            "selection": {  # what chose best_epoch: the metric, on which users, at which epochs
                "metric": e.select_metric, "score": st.best_score,
                "valid_users": self.dataset.n_users if self.valid_users is None else len(self.valid_users),
                "users_of": self.dataset.n_users, "epochs_validated": len(validated),
                "valid_from": e.valid_from, "valid_every": e.valid_every},
            "test": metrics_from_ranks(test_ranks, e.ks) if test else None,
            "test_subsets": subset_metrics(test_ranks, self.dataset, "test", e.ks, e.subsets, e.cold_threshold)
            if test else None,
            "seconds_per_epoch": st.train_seconds / epochs_run,
            "feature_pass_seconds": st.feature_seconds,  # before epoch 0, once: not in seconds_per_epoch
            "seconds_to_best": st.time_to_best,
            "seconds_total": time.perf_counter() - self._start,
            "trainable_parameters": n_params,
            "processes": self.dist.world_size,
            "checkpoint_bytes": st.checkpoint_bytes,
            "checkpoint_seconds": st.checkpoint_seconds / max(st.serial, 1),
            "stop_reason": st.stop_reason,
            # stopped by the epoch cap while validation was still rising (its best validated epoch its last); a
            # schedule ending by design at the cap after validation stopped rising is not capped
            "valid_rising_at_cap": st.stop_reason == "epochs" and bool(validated) and validated[-1] == st.best_epoch,
            "capped": st.stop_reason == "epochs" and bool(validated) and validated[-1] == st.best_epoch,
            **({"collapse": st.collapse} if st.collapse else {}),
            "flops_per_item": cost.item_flops(self.model) if main else None,
            **cost.peak_memory(self.device, peak_reset),
            "dataset": self.dataset.identity(),
            "config": to_dict(cfg),
        }
        if main:
            atomic_write_text(self.out / "results.json", json.dumps(results, indent=2))
            if results["capped"]:
                self.log(capped_message(cfg, st.best_epoch, self.out))
        dist_utils.shutdown(self.dist)
        return results

    def _feature_pass(self) -> float:
        """The item encoder's work done once over every item (frozen features, cached lower layers), run before
        epoch 0 and timed apart so that s/epoch is training alone; its seconds (0: nothing computed here)."""
        t0 = time.perf_counter()
        done = self.model.item_encoder.precompute(progress=self.cfg.train.progress and self.dist.is_main)
        if not done:
            return 0.0
        seconds = time.perf_counter() - t0
        self.log(f"{' and '.join(done)} of {self.dataset.n_items:,} items computed once in {seconds:.1f} s, "
                 "before epoch 0 (not counted in s/epoch; later runs read them from the dataset's cache)")
        return seconds

    def _run_epoch(self) -> None:
        cfg, st = self.cfg, self.state
        epoch = st.epoch
        loss = self.train_epoch(epoch)
        t_eval = time.perf_counter()
        st.train_seconds += st.epoch_seconds
        epoch_train_seconds = st.epoch_seconds
        st.epoch, st.batches_done, st.loss_sum, st.loss_count, st.nonfinite, st.epoch_seconds = epoch + 1, 0, 0.0, 0, 0, 0.0
        if not math.isfinite(loss):
            st.collapse = collapse_message(cfg, epoch, f"the training loss is {loss}")
            self.log(st.collapse)
            st.finished, st.stop_reason = True, "collapsed"
            if cfg.train.checkpoints:
                self.save_checkpoint()
            return
        if not self.validates(epoch):
            self._record({"epoch": epoch, "step": st.step, "loss": loss, "seconds": epoch_train_seconds})
            self.log(f"epoch {epoch:3d}  loss {loss:.4f}  (not validated: eval.valid_from {cfg.eval.valid_from}, "
                     f"valid_every {cfg.eval.valid_every})")
            if st.best_score is not None:
                st.bad_epochs += 1  # patience counts epochs; a stop is decided only on a validated one
            if st.epoch >= cfg.train.epochs:
                st.finished, st.stop_reason = True, "epochs"
            if cfg.train.checkpoints:
                self.save_checkpoint()
            return
        valid = self.evaluate("valid", self.valid_users)
        score = valid[cfg.eval.select_metric]
        improved = st.best_score is None or score > st.best_score
        seen = {} if self.valid_users is None else {"valid_users": len(self.valid_users)}
        self._record({"epoch": epoch, "step": st.step, "loss": loss,
                      "seconds": epoch_train_seconds + time.perf_counter() - t_eval,
                      **{f"valid_{k}": v for k, v in valid.items()}, **seen})
        self.log(f"epoch {epoch:3d}  loss {loss:.4f}  " + "  ".join(f"valid {k} {v:.4f}" for k, v in valid.items())
                 + (f" ({len(self.valid_users)} users)" if seen else "") + ("  *" if improved else ""))
        if improved:
            st.best_score, st.best_epoch, st.bad_epochs = score, epoch, 0
            st.time_to_best = time.perf_counter() - self._start
        else:
            st.bad_epochs += 1
        t = cfg.train
        st.low_epochs = st.low_epochs + 1 if (st.best_score >= t.collapse_floor
                                              and score < t.collapse_ratio * st.best_score) else 0
        if st.low_epochs >= t.collapse_epochs:
            st.collapse = collapse_message(cfg, epoch, f"valid {cfg.eval.select_metric} {score:.4g} has been under "
                                           f"{t.collapse_ratio:g} x its best ({st.best_score:.4g}, epoch "
                                           f"{st.best_epoch}) for {st.low_epochs} epochs")
            self.log(st.collapse)
            st.finished, st.stop_reason = True, "collapsed"
        elif not improved:
            if st.bad_epochs >= cfg.train.patience:
                self.log(f"early stop: no better valid {cfg.eval.select_metric} for {cfg.train.patience} epochs")
                st.finished, st.stop_reason = True, "patience"
        if st.epoch >= cfg.train.epochs and not st.finished:
            st.finished, st.stop_reason = True, "epochs"
        # checkpoint first, then the best weights: a crash in between is repaired by load_checkpoint
        if cfg.train.checkpoints:
            self.save_checkpoint()
        if improved and self.dist.is_main:
            atomic_save_tensors(self.model.state_dict(), self.out / "model.safetensors", {"epoch": str(epoch)})
        if self.on_epoch is not None:
            self.on_epoch(epoch, valid)

    def _record(self, record: dict) -> None:
        self.state.log.append(record)
        if self.runlog:
            self.runlog.epoch(record)


RUN_OUTPUTS = ("model.safetensors", "results.json")  # what a finished run leaves besides its checkpoint
_RUN_FILES = ("config.yaml", "checkpoint.json", *RUN_OUTPUTS)


def claim_run_dir(out: str | Path, overwrite: bool = False) -> None:
    """`morec train --out DIR`: refuse a directory that already holds files (an earlier run would be
    mixed with the new one) unless ``overwrite``, which starts from an empty directory."""
    import os
    import shutil

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


def train(cfg: Config, dataset: PreparedDataset | None = None, log=print) -> dict:
    return Trainer(cfg, dataset, log).fit()


def resume(run_dir: str | Path, dataset: PreparedDataset | None = None, log=print,
           overrides: list[str] | dict | None = None) -> dict:
    """Continue an interrupted run from its last checkpoint (``morec train --resume RUN_DIR``)."""
    return Trainer.resume(run_dir, dataset, log, overrides)
