"""The optimizer and its learning-rate schedule: AdamW over named parameter groups, and each group's share of its
peak learning rate as a pure function of the optimizer step (so a resumed run continues the schedule exactly)."""
from __future__ import annotations

import math

import torch

from .config import Config
from .model import Recommender


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
