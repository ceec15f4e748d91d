"""Where an ID SASRec epoch on MovieLens-100K spends its time: building batches (window slicing, negative
sampling), forward + loss, backward, optimizer step, and one validation (full ranking of every user).

    python benchmarks/profile_ml100k.py [PREPARED_DIR] [--epochs 2] [--threads 1] [--only bce-all,ce-all,ce-last]

Each configuration trains ``--epochs`` epochs in this one process with the phases timed separately
(perf_counter around each; the first epoch is a warm-up and not reported when there are two or more).
The last line is one summary of the per-epoch figures side by side.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

from morec.config import load_config
from morec.data.dataset import PreparedDataset
from morec.evaluate import rank_users
from morec.train import Trainer

CONFIGS = {
    "bce-all": ["--train.loss=bce"],
    "ce-all": ["--train.loss=ce"],
    "ce-last": ["--train.loss=ce", "--train.windows=last"],
    "gbce-last": ["--train.loss=gbce", "--train.n_negatives=256", "--train.windows=last"],
    "sampled-last": ["--train.loss=sampled", "--train.n_negatives=256", "--train.windows=last"],
    "gbce-last-shared": ["--train.loss=gbce", "--train.n_negatives=256", "--train.negatives_shared=true",
                         "--train.windows=last"],
    "ce-last-ffn1": ["--train.loss=ce", "--train.windows=last", "--model.ffn_mult=1"],
    "ce-last-ffn1-fused": ["--train.loss=ce", "--train.windows=last", "--model.ffn_mult=1", "--model.attention=fused"],
}


def profile(name: str, dataset: PreparedDataset, args) -> dict:
    cfg = load_config(None, [f"--data={dataset.path}", "--out=/tmp/morec-profile", "--train.progress=false",
                             f"--train.threads={args.threads}", "--train.checkpoints=false", *CONFIGS[name]])
    tr = Trainer(cfg, dataset, log=lambda m: None)
    model, opt = tr.model, tr.optimizer
    rows = []
    for epoch in range(args.epochs):
        phases = dict.fromkeys(("batches", "forward", "backward", "step", "validation"), 0.0)
        model.train()
        it = tr.batches.epoch(np.random.default_rng([0, epoch]))
        n = 0
        while True:
            t0 = time.perf_counter()
            batch = next(it, None)
            t1 = time.perf_counter()
            phases["batches"] += t1 - t0
            if batch is None:
                break
            loss = tr.loss_module(batch)
            t2 = time.perf_counter()
            loss.backward()
            t3 = time.perf_counter()
            opt.step()
            opt.zero_grad(set_to_none=True)
            t4 = time.perf_counter()
            phases["forward"] += t2 - t1
            phases["backward"] += t3 - t2
            phases["step"] += t4 - t3
            n += 1
        t0 = time.perf_counter()
        rank_users(model, dataset, "valid", cfg.model.max_len)
        phases["validation"] = time.perf_counter() - t0
        rows.append(phases)
    keep = rows[1:] if len(rows) > 1 else rows
    mean = {k: float(np.mean([r[k] for r in keep])) for k in keep[0]}
    train_s = mean["batches"] + mean["forward"] + mean["backward"] + mean["step"]
    print(f"[{name}] {n} batches/epoch ({len(tr.batches.users)} windows, {tr.batches.n_targets:,} targets): "
          + ", ".join(f"{k} {v:.2f} s" for k, v in mean.items())
          + f" | training {train_s:.2f} s, validation = {mean['validation'] / (train_s + mean['validation']):.0%} "
            "of an epoch with validation", flush=True)
    return {"name": name, "train": train_s, **mean}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data", nargs="?", default="data/prepared/ml-100k")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--only", default=",".join(CONFIGS))
    args = p.parse_args(argv)
    print(f"[profile] torch {torch.__version__}, {args.threads} threads, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    dataset = PreparedDataset(args.data)
    rows = [profile(n.strip(), dataset, args) for n in args.only.split(",") if n.strip()]
    print("SUMMARY profile_ml100k | " + " | ".join(
        f"{r['name']}: train {r['train']:.2f} s (batches {r['batches']:.2f}, fwd {r['forward']:.2f}, "
        f"bwd {r['backward']:.2f}, step {r['step']:.2f}), validation {r['validation']:.2f} s" for r in rows), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
