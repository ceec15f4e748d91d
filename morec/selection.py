"""Which epoch a run keeps and when it stops, decided between epochs from the validation score alone.

The state these decisions read and write is ``TrainState``, which a checkpoint holds whole so that a resumed run
decides exactly as the uninterrupted one would have. Nothing here touches tensors: the trainer scores an epoch,
these functions judge it.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Callable

import numpy as np

from .config import Config


class TrainingCollapsed(RuntimeError):
    """The loss became NaN / inf before any epoch finished: results.json says ``stop_reason: collapsed``."""


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

    @classmethod
    def from_saved(cls, values: dict) -> "TrainState":
        """The state a checkpoint holds; fields an older version saved but this one no longer has are dropped."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def close_epoch(self) -> float:
        """Move on to the next epoch; returns the training seconds of the one just closed."""
        seconds = self.epoch_seconds
        self.train_seconds += seconds
        self.epoch, self.batches_done, self.loss_sum, self.loss_count, self.nonfinite, self.epoch_seconds = (
            self.epoch + 1, 0, 0.0, 0, 0, 0.0)
        return seconds

    def stop(self, reason: str) -> None:
        self.finished, self.stop_reason = True, reason


def selection_users(n_users: int, want: int, seed: int) -> np.ndarray | None:
    """The fixed random users per-epoch selection sees (eval.valid_users), sorted; None: every user."""
    if not want or want >= n_users:
        return None
    return np.sort(np.random.default_rng([seed, 16]).choice(n_users, want, replace=False))


def validates(cfg: Config, epoch: int) -> bool:
    """Whether ``epoch`` is validated (eval.valid_from / valid_every; the last epoch always is)."""
    e = cfg.eval
    return epoch >= cfg.train.epochs - 1 or (epoch >= e.valid_from and (epoch - e.valid_from) % e.valid_every == 0)


def collapse_message(cfg: Config, epoch: int, why: str) -> str:
    return (f"training collapsed at epoch {epoch}: {why}. Lower the learning rates: train.lr (now {cfg.train.lr}) "
            f"and model.encoder.lr (now {cfg.model.encoder.lr})")


def capped_message(cfg, best_epoch: int, out) -> str:
    """Said at the end of a run stopped by its epoch cap before patience ran out: more epochs may still help."""
    more = (f"continue it with: morec train --resume {out} --train.epochs={2 * cfg.train.epochs}"
            if cfg.train.checkpoints else f"train again with a larger train.epochs (it was {cfg.train.epochs})")
    return (f"note: the run stopped at its epoch cap (train.epochs={cfg.train.epochs}) while validation was still "
            f"improving (best epoch {best_epoch}, patience {cfg.train.patience} not used up); {more}")


def judge_nonfinite_loss(st: TrainState, cfg: Config, epoch: int, loss: float, log: Callable[[str], None]) -> None:
    """A NaN / inf training loss ends the run as collapsed."""
    st.collapse = collapse_message(cfg, epoch, f"the training loss is {loss}")
    log(st.collapse)
    st.stop("collapsed")


def judge_unvalidated(st: TrainState, cfg: Config) -> None:
    """An epoch without validation: patience still counts it, but only a validated epoch stops on it."""
    if st.best_score is not None:
        st.bad_epochs += 1
    if st.epoch >= cfg.train.epochs:
        st.stop("epochs")


def improves(st: TrainState, score: float) -> bool:
    return st.best_score is None or score > st.best_score


def judge_validated(st: TrainState, cfg: Config, epoch: int, score: float, seconds_since_start: float,
                    log: Callable[[str], None]) -> bool:
    """Keep ``epoch`` if its score is the best so far, and stop on a collapse, on patience or at the epoch cap;
    returns whether it improved."""
    improved = improves(st, score)
    if improved:
        st.best_score, st.best_epoch, st.bad_epochs = score, epoch, 0
        st.time_to_best = seconds_since_start
    else:
        st.bad_epochs += 1
    t = cfg.train
    st.low_epochs = st.low_epochs + 1 if (st.best_score >= t.collapse_floor
                                          and score < t.collapse_ratio * st.best_score) else 0
    if st.low_epochs >= t.collapse_epochs:
        st.collapse = collapse_message(cfg, epoch, f"valid {cfg.eval.select_metric} {score:.4g} has been under "
                                       f"{t.collapse_ratio:g} x its best ({st.best_score:.4g}, epoch "
                                       f"{st.best_epoch}) for {st.low_epochs} epochs")
        log(st.collapse)
        st.stop("collapsed")
    elif not improved and st.bad_epochs >= t.patience:
        log(f"early stop: no better valid {cfg.eval.select_metric} for {t.patience} epochs")
        st.stop("patience")
    if st.epoch >= t.epochs and not st.finished:
        st.stop("epochs")
    return improved


def validated_epochs(st: TrainState, cfg: Config) -> list[int]:
    return [r["epoch"] for r in st.log if f"valid_{cfg.eval.select_metric}" in r]


def capped(st: TrainState, cfg: Config) -> bool:
    """Stopped by the epoch cap while validation was still rising (its best validated epoch its last); a schedule
    ending by design at the cap after validation stopped rising is not capped."""
    validated = validated_epochs(st, cfg)
    return st.stop_reason == "epochs" and bool(validated) and validated[-1] == st.best_epoch
