"""Vision MoRec training-step cost on synthetic data: step time, images encoded per second and peak
memory, for deduplicated vs every-position encoding, fp32 vs bf16 autocast, and with / without
gradient checkpointing.

    python benchmarks/bench_vision_cpu.py [--model efficientnet-lite0] [--image-size 64] [--batch 32]
                                          [--steps 5] [--threads 1] [--work DIR]

Each configuration runs in its own process, so its peak resident memory (ru_maxrss) is its own; the
figure reported is that peak minus the process's resident memory right before the first step (model,
optimizer and data already loaded), i.e. what the training step itself needs. The last line is a JSON
summary. ``measure`` is shared with benchmarks/gpu_vision_check.py.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from itertools import product
from pathlib import Path

import numpy as np
import torch
from train_step import train_step

from morec.config import load_config
from morec.data.dataset import PreparedDataset
from morec.data.formats.registry import read_raw
from morec.data.prepare import prepare
from morec.data.synthetic import SynthConfig, write_synthetic
from morec.train import Trainer

QUIET = lambda s: None  # noqa: E731


def synthetic(work: Path, image_size: int, n_users: int, n_items: int, max_seq: int) -> Path:
    """A prepared synthetic dataset with images (written once per setting)."""
    out = work / f"synth-{image_size}px-{n_users}u-{n_items}i-{max_seq}"
    if not (out / "manifest.json").exists():
        raw = write_synthetic(SynthConfig(n_users=n_users, n_items=n_items, n_topics=8, seq_len_min=5,
                                          seq_len_max=max(max_seq, 8), image_size=image_size, seed=0), work / (out.name + "-raw"))
        prepare(read_raw(raw), out, log=QUIET)
    return out


def images_in(batch, dedup: bool) -> int:
    """Images the item encoder runs on for this batch: distinct real items, or every position."""
    parts = [t for t in (batch.targets, batch.negatives, batch.history) if t is not None]
    if dedup:
        flat = torch.cat([t.reshape(-1) for t in parts])
        return int((torch.unique(flat) > 0).sum())
    return sum(t.numel() for t in parts)


def measure(data: Path, model: str, image_size: int, batch_size: int, max_len: int, precision: str,
            checkpointing: bool, dedup: bool, steps: int, warmup: int, device: str, threads: int = 0,
            channels_last: bool = False) -> dict:
    """Train ``warmup + steps`` E2E vision SASRec steps; time the last ``steps``."""
    overrides = [f"--data={data}", "--out=/tmp/morec-bench-vision", "--model.encoder.kind=vision",
                 f"--model.encoder.pretrained={model}", f"--model.encoder.vision.image_size={image_size}",
                 f"--model.encoder.vision.grad_checkpointing={str(checkpointing).lower()}",
                 f"--model.encoder.vision.channels_last={str(channels_last).lower()}",
                 f"--train.precision={precision}", f"--train.batch_size={batch_size}", f"--model.max_len={max_len}",
                 f"--train.device={device}", f"--train.threads={threads}", "--train.progress=false",
                 "--train.checkpoints=false"]
    if model.startswith("timm:"):
        overrides.append("--model.encoder.from_scratch=true")  # random weights: no download
    cfg = load_config(None, overrides)
    trainer = Trainer(cfg, PreparedDataset(data), log=QUIET)
    trainer.model.dedup = dedup
    trainer.step_module.train()
    dev = trainer.device
    batches = trainer.batches.epoch(np.random.default_rng(0))
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
    times, images, positions = [], 0, 0
    for i in range(warmup + steps):
        batch = next(batches)
        sync()
        t0 = time.perf_counter()
        loss = train_step(trainer, batch.to(dev))
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
            images += images_in(batch, dedup)
            positions += int((batch.targets > 0).sum())
    step = float(np.median(times))
    out = {"model": model, "image_size": image_size, "batch": batch_size, "max_len": max_len, "precision": precision,
           "checkpointing": checkpointing, "dedup": dedup, "step_s": round(step, 4),
           "images_per_s": round(images / sum(times), 1), "positions_per_s": round(positions / sum(times), 1),
           "images_per_step": images // steps, "loss": round(loss.item(), 4)}
    if dev.type == "cuda":
        out["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated(dev) / 2**20)
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out["peak_rss_mib"], out["step_rss_mib"] = round(peak), round(peak - rss_before)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="efficientnet-lite0")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--max-len", type=int, default=13)  # the paper's image datasets: latest 13
    p.add_argument("--users", type=int, default=1000)
    p.add_argument("--items", type=int, default=500)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work", default="/tmp/morec-bench-vision-data")
    p.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one configuration (JSON) and print its result
    args = p.parse_args()
    if args.one:
        print(json.dumps(measure(**json.loads(args.one))))
        return
    torch.set_num_threads(args.threads)
    data = synthetic(Path(args.work), args.image_size, args.users, args.items, args.max_len + 1)
    rows = []
    for precision, checkpointing, dedup in product(("fp32", "bf16"), (False, True), (True, False)):
        spec = dict(data=str(data), model=args.model, image_size=args.image_size, batch_size=args.batch,
                    max_len=args.max_len, precision=precision, checkpointing=checkpointing, dedup=dedup,
                    steps=args.steps, warmup=args.warmup, device="cpu", threads=args.threads)
        run = subprocess.run([sys.executable, __file__, "--one", json.dumps(spec)], capture_output=True, text=True)
        if run.returncode:
            print(run.stderr[-2000:], file=sys.stderr)
            raise SystemExit(f"configuration failed: {spec}")
        row = json.loads(run.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"{precision:5s} ckpt={str(checkpointing):5s} dedup={str(dedup):5s}  step {row['step_s']:.3f} s  "
              f"{row['images_per_s']:8.1f} img/s ({row['images_per_step']} img/step)  "
              f"peak RSS {row['peak_rss_mib']} MiB (step +{row['step_rss_mib']} MiB)", flush=True)
    print(json.dumps({"benchmark": "vision-cpu", "torch": torch.__version__, "threads": args.threads, "rows": rows}))


if __name__ == "__main__":
    main()
