"""``train``: the loss, the optimizer and its schedule, batches, devices, checkpoints and when a run stops."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from .errors import _check

LOSSES = ("bce", "ce", "inbatch", "sampled", "gbce")  # implemented in morec.losses
SCHEDULES = ("constant", "cosine", "onecycle")  # learning-rate shapes over the run (morec.optim.lr_factor)


@dataclass
class TrainConfig:
    loss: str = "bce"  # bce (paper eq. 1, K sampled negatives) | ce (full softmax) | inbatch (in-batch softmax) | sampled (sampled softmax, K negatives)
    # | gbce (gSASRec's generalised BCE: K negatives, positive term scaled by beta from K / (n_items - 1) and gbce_t)
    n_negatives: int = 1  # K, for bce, sampled and gbce
    gbce_t: float = 0.75  # gbce calibration t in [0, 1]: 0 = plain BCE, 1 = fully calibrated (gSASRec's default 0.75)
    negative_sampler: str = "uniform"  # uniform | popularity (training counts); negatives never a user's training item
    # bce / sampled / gbce: one set of K negatives per batch shared by every position (one matmul, cheap on CPU
    # with K in the hundreds) instead of K per position; a negative that is the position's target or one of the
    # user's training items is left out of that position's loss
    negatives_shared: bool = False
    negatives_from: str = "all"  # all: any item (the paper's code) | train: only items with a training interaction
    # (strict new-item setting: held-out items are never a negative nor a full-softmax class)
    logq: bool = True  # inbatch / sampled with popularity negatives: subtract log(sampling probability) from logits
    lr: float = 1e-3  # the peak learning rate under a schedule
    weight_decay: float = 0.1  # AdamW weight decay of the backbone (and ID embeddings)
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # AdamW's (beta1, beta2)
    # constant (the paper's) | cosine: linear warm-up over `warmup` of the run's steps, then cosine decay to 0 at
    # train.epochs | onecycle: cosine rise from lr/25 over `warmup` (0: 0.3) of the steps, cosine fall to lr/1e4
    schedule: str = "constant"
    warmup: float = 0.0  # share of the run's optimizer steps spent warming up (cosine / onecycle)
    batch_size: int = 128  # paper: 128 SASRec, 1024 DSSM
    epochs: int = 200  # the cap: training stops here at the latest (or earlier, after patience epochs)
    patience: int = 10  # epochs without a better validation score before stopping
    windows: str = "all"  # all: tile each user's whole training sequence into max_len windows; last: only the latest;
    # sample: every epoch a fresh random window_fraction of the `all` windows
    window_fraction: float = 0.5  # windows=sample: the share of windows an epoch trains on
    grad_clip: float = 0.0  # clip the gradient norm to this; 0 = no clipping
    seed: int = 42  # seeds initialisation, negatives and batch order
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # torch CPU threads; 0 = torch's default
    progress: bool = True  # progress bars (plain lines when the output is not a terminal)
    accumulate: int = 1  # micro-batches of batch_size per optimizer step (effective batch = accumulate x batch_size)
    precision: str = "fp32"  # fp32 | bf16 (autocast) | fp16 (autocast + gradient scaler)
    checkpoints: bool = True  # write a resumable checkpoint every epoch (morec train --resume RUN_DIR)
    checkpoint_every_steps: int = 0  # also every K optimizer steps within an epoch; 0 = only at epoch ends
    log_every: int = 10  # a steps.jsonl / TensorBoard record (loss, learning rates, step time, memory) every K steps
    tensorboard: bool = True  # TensorBoard event files in the run directory (needs the tensorboard package)
    # Collapse (the paper's Figure 5): the run stops, marked collapsed, when the loss is NaN / inf, or when the
    # validation score stays under collapse_ratio x its best for collapse_epochs epochs in a row once that
    # best has reached collapse_floor (so an untrained start near zero is not a collapse).
    collapse_ratio: float = 0.1
    collapse_epochs: int = 2
    collapse_floor: float = 1e-3

    def validate(self) -> None:
        _check(self.loss in LOSSES, f"train.loss must be one of {', '.join(LOSSES)}, not {self.loss!r}")
        _check(self.negative_sampler in ("uniform", "popularity"), f"train.negative_sampler must be uniform or popularity, not {self.negative_sampler!r}")
        _check(self.negatives_from in ("all", "train"), f"train.negatives_from must be all or train, not {self.negatives_from!r}")
        _check(self.n_negatives >= 1, "train.n_negatives must be >= 1")
        _check(self.lr > 0, f"train.lr must be > 0, got {self.lr}")
        _check(math.isfinite(self.lr), f"train.lr must be a finite number, got {self.lr}")
        _check(self.weight_decay >= 0, "train.weight_decay must be >= 0")
        _check(self.batch_size > 0 and self.epochs > 0 and self.patience > 0, "train.batch_size, epochs and patience must be > 0")
        _check(self.windows in ("all", "last", "sample"), f"train.windows must be all, last or sample, not {self.windows!r}")
        _check(0 < self.window_fraction <= 1, f"train.window_fraction must be in (0, 1], got {self.window_fraction}")
        _check(0 <= self.gbce_t <= 1, f"train.gbce_t must be in [0, 1], got {self.gbce_t}")
        _check(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
               f"train.betas must be two numbers in [0, 1) (Adam's beta1, beta2), got {self.betas}")
        _check(self.schedule in SCHEDULES, f"train.schedule must be one of {', '.join(SCHEDULES)}, not {self.schedule!r}")
        _check(0 <= self.warmup < 1, f"train.warmup must be a share of the run's steps in [0, 1), got {self.warmup}")
        _check(self.grad_clip >= 0, f"train.grad_clip must be >= 0 (0 = no clipping), got {self.grad_clip}")
        _check(self.threads >= 0, f"train.threads must be >= 0 (0 = torch's default), got {self.threads}")
        _check(self.accumulate >= 1, f"train.accumulate must be >= 1 (micro-batches per optimizer step), got {self.accumulate}")
        _check(self.precision in ("fp32", "bf16", "fp16"), f"train.precision must be fp32, bf16 or fp16, not {self.precision!r}")
        _check(self.checkpoint_every_steps >= 0, f"train.checkpoint_every_steps must be >= 0 (0 = every epoch only), got {self.checkpoint_every_steps}")
        _check(self.checkpoints or not self.checkpoint_every_steps, "train.checkpoint_every_steps needs train.checkpoints=true")
        _check(self.log_every >= 1, f"train.log_every must be >= 1 (optimizer steps per logged record), got {self.log_every}")
        _check(0 < self.collapse_ratio < 1, f"train.collapse_ratio must be in (0, 1), got {self.collapse_ratio}")
        _check(self.collapse_epochs >= 1, f"train.collapse_epochs must be >= 1, got {self.collapse_epochs}")
        _check(self.collapse_floor >= 0, f"train.collapse_floor must be >= 0, got {self.collapse_floor}")
        _check(self.device == "auto" or self.device in ("cpu", "cuda", "mps") or self.device.startswith("cuda:"),
               f"train.device must be auto, cpu, cuda or cuda:N, not {self.device!r}")
