"""One training loop for every item encoder and backbone, in one process or many (torchrun).

Each epoch: shuffled batches -> loss -> AdamW step; then validation (full ranking). The best epoch
on the validation metric is kept; the test split is scored once, at the end, with that model.

The same loop also does: gradient accumulation (``train.accumulate``), mixed precision
(``train.precision``: bf16 autocast, fp16 autocast with a gradient scaler), DistributedDataParallel
when started by torchrun (see morec.distributed), and checkpoints every epoch / every K steps that
``Trainer.resume`` (``morec train --resume RUN_DIR``) continues from exactly, mid-epoch too: an
epoch's batch order is a pure function of (seed, epoch), so the batches already done are replayed
from the generator and skipped, and the RNG states are restored.

Which epoch is kept and when the run stops is decided in morec.selection; what the run writes besides its
checkpoints (the claimed directory, results.json) in morec.run_outputs; the optimizer and schedule in morec.optim.
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
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from .progress import progress

from . import cost
from . import distributed as dist_utils
from .checkpoint import (CheckpointError, atomic_save_tensors, atomic_write_text, flatten_optimizer, read_tensors,
                         load_checkpoint_tensors, read_checkpoint_meta, rng_state, save_checkpoint, set_rng_state,
                         unflatten_optimizer)
from .config import Config, to_dict
from .data.batches import make_batches
from .data.dataset import PreparedDataset
from .evaluate import metrics_from_ranks, rank_users
from .ranks import save_ranks
from .losses import LossContext, compute_loss
from .model import Recommender, build_model
from .optim import lr_factor, make_optimizer
from .runlog import RunLog
from .run_outputs import checkpoint_config, claim_run_dir, open_run_dir, run_results, write_collapsed_results
from .runlock import run_lock
from .selection import (TrainingCollapsed, TrainState, capped_message, judge_nonfinite_loss,
                        improves, judge_unvalidated, judge_validated, selection_users, validates)

__all__ = ["LossModule", "Trainer", "TrainingCollapsed", "claim_run_dir", "compute_loss", "lr_factor",
           "make_optimizer", "resume", "seed_everything", "train"]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class LossModule(nn.Module):
    """The recommender and its loss as one module: what DDP wraps, so every loss runs under its hooks."""

    def __init__(self, model: Recommender, loss_name: str, ctx: LossContext | None = None):
        super().__init__()
        self.model, self.loss_name, self.ctx = model, loss_name, ctx

    def forward(self, batch) -> torch.Tensor:
        return compute_loss(self.model, batch, self.loss_name, self.ctx)


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
        self.valid_users = selection_users(self.dataset.n_users, cfg.eval.valid_users, t.seed)
        self.out = Path(cfg.out)
        self.amp_dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[t.precision]
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=t.precision == "fp16")
        ctx = LossContext.build(self.dataset, t, self.device)
        if self.dist.enabled and t.loss == "inbatch":
            ctx.gather = dist_utils.CandidateGather(self.dist, self.device)
        self.loss_module = LossModule(self.model, t.loss, ctx)
        self.step_module: nn.Module = self.loss_module
        if self.dist.enabled:
            probe = next(self.batches.epoch(np.random.default_rng([t.seed, 0])))
            self.step_module = dist_utils.wrap_ddp(self.loss_module, probe, self.dist, self.device, self._autocast)
        self.state = TrainState()
        self.resumed = False
        self.runlog: RunLog | None = None

    # --- pieces ------------------------------------------------------------------------------
    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

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
        n_batches, acc, skip = len(self.batches), t.accumulate, st.batches_done
        bar = self._epoch_batches(epoch, skip)
        t0, seconds_before = time.perf_counter(), st.epoch_seconds
        interval = {"loss": 0.0, "batches": 0, "steps": 0, "t0": t0}  # since the last step record
        self.optimizer.zero_grad(set_to_none=True)
        for i, batch in enumerate(bar, start=skip):
            group_start = i - i % acc
            group_size = min(acc, n_batches - group_start)
            last_in_group = i + 1 - group_start == group_size
            self._count_loss(self._backward(batch, group_size, last_in_group), interval)
            st.batches_done = i + 1
            if not last_in_group:
                continue
            self._optimizer_step()
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
        return self._epoch_loss(epoch)

    def _epoch_batches(self, epoch: int, skip: int):
        """The epoch's batches, a pure function of (seed, epoch), less the ``skip`` already trained, with a bar."""
        t = self.cfg.train
        batches = self.batches.epoch(np.random.default_rng([t.seed, epoch]))
        if skip:  # replay the generator (same rng draws) without training on what was done before the checkpoint
            batches = itertools.islice(batches, skip, None)
        return progress(batches, len(self.batches), f"epoch {epoch}", t.progress and self.dist.is_main, skip,
                        sys.stderr)

    def _backward(self, batch, group_size: int, last_in_group: bool) -> float:
        """This process's share of ``batch`` forward and backward (gradients summed over the accumulation group,
        synchronised across processes on its last batch only); returns its weighted loss."""
        local, weight = dist_utils.shard_batch(batch, self.dist)
        no_sync = self.dist.enabled and not last_in_group
        with self.step_module.no_sync() if no_sync else contextlib.nullcontext():
            with self._autocast():
                loss = self.step_module(local.to(self.device))
            scaled = loss * (weight / group_size) if (weight != 1.0 or group_size != 1) else loss
            self.scaler.scale(scaled).backward()
        return loss.item() * weight

    def _count_loss(self, value: float, interval: dict) -> None:
        st = self.state
        if math.isfinite(value) or not self.scaler.is_enabled():
            st.loss_sum += value
            st.loss_count += 1
            interval["loss"] += value
            interval["batches"] += 1
        else:
            st.nonfinite += 1

    def _optimizer_step(self) -> None:
        t = self.cfg.train
        if t.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip)
        if t.schedule != "constant":
            self._set_lr()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.state.step += 1

    def _epoch_loss(self, epoch: int) -> float:
        """The epoch's mean batch loss over every process."""
        st = self.state
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
        rng_tensors.update(dist_utils.rank_rng_states(self.dist, self.device))
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
        cfg, meta = checkpoint_config(run_dir, overrides)
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
        self.state = st = TrainState.from_saved(meta["state"])
        if not self.dist.is_main:
            st.loss_sum = 0.0  # the checkpoint holds the sum over ranks; rank 0 carries it
        set_rng_state(tensors, meta["rng"])
        if meta.get("world_size") == self.dist.world_size:
            dist_utils.restore_rank_rng_state(self.dist, self.device, tensors)
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
        if self.dist.is_main:
            open_run_dir(self.out, self.cfg, self.resumed)
        n_params = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        self._log_start(n_params)
        self._start = time.perf_counter() - self.state.elapsed
        peak_reset = cost.reset_peak_memory(self.device)
        self.state.feature_seconds += self._feature_pass()
        self._train_epochs()
        self._check_an_epoch_was_kept(n_params)
        valid_ranks, test_ranks = self._score_best_epoch(test)
        results = self._write_results(valid_ranks, test_ranks, n_params, peak_reset)
        dist_utils.shutdown(self.dist)
        return results

    def _log_start(self, n_params: int) -> None:
        cfg, st = self.cfg, self.state
        procs = f", {self.dist.world_size} processes ({self.dist.backend})" if self.dist.enabled else ""
        self.log(f"{self.dataset.name}: {self.dataset.n_users:,} users, {self.dataset.n_items:,} items | "
                 f"{cfg.model.encoder.kind}-{cfg.model.backbone}, {n_params:,} trainable parameters, "
                 f"loss {cfg.train.loss}, device {self.device}{procs}"
                 + (f", precision {cfg.train.precision}" if cfg.train.precision != "fp32" else ""))
        if self.resumed:
            where = f"epoch {st.epoch}, batch {st.batches_done}/{len(self.batches)}" if not st.finished else "the end"
            self.log(f"resumed {self.out} at {where} (step {st.step})")

    def _train_epochs(self) -> None:
        st = self.state
        if self.dist.is_main:
            self.runlog = RunLog(self.out, st.log, st.step, self.resumed, self.cfg.train.tensorboard, self.log)
        try:
            while not st.finished and st.epoch < self.cfg.train.epochs:
                self._run_epoch()
        finally:
            if self.runlog:
                self.runlog.close()
                self.runlog = None

    def _check_an_epoch_was_kept(self, n_params: int) -> None:
        cfg, st = self.cfg, self.state
        if st.best_epoch < 0 and st.stop_reason == "collapsed":
            if self.dist.is_main:
                write_collapsed_results(self.out, cfg, st, n_params)
            raise TrainingCollapsed(st.collapse)
        if st.best_epoch < 0:
            raise RuntimeError("no epoch finished with a finite loss; nothing to evaluate. Lower train.lr "
                               f"(now {cfg.train.lr}) or model.encoder.lr (now {cfg.model.encoder.lr})")

    def _score_best_epoch(self, test: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """The best epoch's weights ranked on every user's validation item and, if ``test``, test item."""
        if self.dist.is_main:
            self.model.load_state_dict(read_tensors(self.out / "model.safetensors", self.device))
        dist_utils.broadcast_state(self.model, self.dist)
        valid_ranks = self.rank("valid")
        test_ranks = self.rank("test") if test else None  # the only time the test split is read
        if self.dist.is_main:
            save_ranks(self.out, valid_ranks, test_ranks)
        return valid_ranks, test_ranks

    def _write_results(self, valid_ranks, test_ranks, n_params: int, peak_reset) -> dict:
        main = self.dist.is_main
        run = {"seconds_total": time.perf_counter() - self._start, "trainable_parameters": n_params,
               "processes": self.dist.world_size}
        results = run_results(self.cfg, self.state, self.dataset, valid_ranks, test_ranks,
                              valid_users=self.valid_users, run=run,
                              flops_per_item=cost.item_flops(self.model) if main else None,
                              memory=cost.peak_memory(self.device, peak_reset))
        if main:
            atomic_write_text(self.out / "results.json", json.dumps(results, indent=2))
            if results["capped"]:
                self.log(capped_message(self.cfg, self.state.best_epoch, self.out))
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
        """One epoch trained, then judged: a non-finite loss collapses the run, an unvalidated epoch only counts
        for patience, a validated one may become the best and may stop the run."""
        cfg, st = self.cfg, self.state
        epoch = st.epoch
        loss = self.train_epoch(epoch)
        t_eval = time.perf_counter()
        seconds = st.close_epoch()
        if not math.isfinite(loss):
            judge_nonfinite_loss(st, cfg, epoch, loss, self.log)
        elif not validates(cfg, epoch):
            self._record({"epoch": epoch, "step": st.step, "loss": loss, "seconds": seconds})
            self.log(f"epoch {epoch:3d}  loss {loss:.4f}  (not validated: eval.valid_from {cfg.eval.valid_from}, "
                     f"valid_every {cfg.eval.valid_every})")
            judge_unvalidated(st, cfg)
        else:
            return self._validate(epoch, loss, seconds, t_eval)
        if cfg.train.checkpoints:
            self.save_checkpoint()

    def _validate(self, epoch: int, loss: float, seconds: float, t_eval: float) -> None:
        """Score ``epoch`` on the selection users, judge it, checkpoint, and keep its weights if it is the best."""
        cfg, st = self.cfg, self.state
        valid = self.evaluate("valid", self.valid_users)
        score = valid[cfg.eval.select_metric]
        improved = improves(st, score)
        seen = {} if self.valid_users is None else {"valid_users": len(self.valid_users)}
        self._record({"epoch": epoch, "step": st.step, "loss": loss, "seconds": seconds + time.perf_counter() - t_eval,
                      **{f"valid_{k}": v for k, v in valid.items()}, **seen})
        self.log(f"epoch {epoch:3d}  loss {loss:.4f}  " + "  ".join(f"valid {k} {v:.4f}" for k, v in valid.items())
                 + (f" ({len(self.valid_users)} users)" if seen else "") + ("  *" if improved else ""))
        judge_validated(st, cfg, epoch, score, time.perf_counter() - self._start, self.log)
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


def train(cfg: Config, dataset: PreparedDataset | None = None, log=print) -> dict:
    return Trainer(cfg, dataset, log).fit()


def resume(run_dir: str | Path, dataset: PreparedDataset | None = None, log=print,
           overrides: list[str] | dict | None = None) -> dict:
    """Continue an interrupted run from its last checkpoint (``morec train --resume RUN_DIR``)."""
    return Trainer.resume(run_dir, dataset, log, overrides)
