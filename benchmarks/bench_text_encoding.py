"""Text MoRec training-step cost on MovieLens-100K with the real MiniLM-L6 (6 layers, 384 wide):

* end to end: each distinct item in a batch encoded once (dedup) vs every position encoded,
  duplicates and padding included (what the paper's code does);
* top 2 of 6 layers trained: frozen lower 4 layers' outputs cached once vs run every step.

    python benchmarks/bench_text_encoding.py PREPARED_DIR [--steps 5] [--batch-size 32] [--max-len 50]

PREPARED_DIR is a prepared MovieLens-100K (``morec data fetch movielens-100k`` then ``morec data
prepare``, or ``benchmarks/bench_ml100k.py``, which leaves ``data/prepared/ml-100k``).

Each variant runs in its own process on the same fixed batches: warm-up step, then ``--steps`` timed
optimizer steps (forward + backward + AdamW); the fastest step is reported (on a shared machine other
processes only add time), the median is printed too. Memory is the peak resident set size (Linux VmHWM,
reset just before the steps via /proc/self/clear_refs; a fresh process otherwise) minus the RSS
before it: what the steps (and, for the cached variant, building the cache) add on top of the loaded
model and data. Building the cache is timed separately; it is paid once per run, not per step.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

VARIANTS = {  # name -> (encoder overrides, dedup)
    "e2e-dedup": (["--model.encoder.mode=e2e"], True),
    "e2e-every-position": (["--model.encoder.mode=e2e"], False),
    "top2-cached": (["--model.encoder.mode=top", "--model.encoder.train_layers=2",
                     "--model.encoder.cache_lower=true", "--model.encoder.disk_cache=false"], True),
    "top2-full-forward": (["--model.encoder.mode=top", "--model.encoder.train_layers=2",
                           "--model.encoder.cache_lower=false"], True),
    "top1-cached": (["--model.encoder.mode=top", "--model.encoder.train_layers=1",
                     "--model.encoder.cache_lower=true", "--model.encoder.disk_cache=false"], True),
    "top1-full-forward": (["--model.encoder.mode=top", "--model.encoder.train_layers=1",
                           "--model.encoder.cache_lower=false"], True),
}


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (Linux >= 4.0)
        return True
    except OSError:
        return False


def run_variant(name: str, args) -> dict:
    """One variant in this process: build, take the fixed batches, time the steps, measure memory."""
    from morec.config import load_config
    from morec.data.dataset import PreparedDataset
    from morec.train import Trainer, compute_loss

    if args.threads:
        torch.set_num_threads(args.threads)
    overrides, dedup = VARIANTS[name]
    cfg = load_config(None, [f"--data={args.data}", "--out=/tmp/morec-bench-text", "--model.dim=64",
                             f"--model.max_len={args.max_len}", f"--train.batch_size={args.batch_size}",
                             "--train.progress=false", "--model.encoder.kind=text",
                             "--model.encoder.pretrained=minilm", "--model.encoder.lr=1e-4", *overrides])
    trainer = Trainer(cfg, PreparedDataset(args.data), log=lambda s: None)
    model, opt = trainer.model, trainer.optimizer
    model.dedup = dedup
    model.train()
    batches = []
    for b in trainer.batches.epoch(np.random.default_rng(0)):
        batches.append(b)
        if len(batches) == args.steps + 1:
            break
    ids = [batches[0].targets, batches[0].negatives, batches[0].history]
    encoded = int(torch.cat([t.reshape(-1) for t in ids]).numel()) if not dedup else \
        int((torch.unique(torch.cat([t.reshape(-1) for t in ids])) > 0).sum())

    rss0 = _rss_kb("VmRSS")
    peak_reset = _reset_peak()
    cache_s = 0.0
    enc = model.item_encoder
    if getattr(enc, "mode", "") == "top" and enc.cache_lower:
        t0 = time.perf_counter()
        enc.lower_outputs()  # the one-off cost, kept out of the per-step time
        cache_s = time.perf_counter() - t0

    def step(batch):
        loss = compute_loss(model, batch, "bce")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step(batches[0])  # warm-up
    times = []
    for batch in batches[1:]:
        t0 = time.perf_counter()
        step(batch)
        times.append(time.perf_counter() - t0)
    peak = _rss_kb("VmHWM")
    # the fastest step: on a shared machine, other processes only ever add time to a step
    return {"variant": name, "step_s": float(np.min(times)), "median_s": float(np.median(times)),
            "steps": len(times), "items_encoded": encoded,
            "cache_build_s": cache_s, "peak_mb": (peak - rss0) / 1024,
            "memory_method": "VmHWM reset" if peak_reset else "VmHWM since process start"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data", help="prepared MovieLens-100K directory")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-len", type=int, default=50)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--only", default=",".join(VARIANTS))
    p.add_argument("--variant", help=argparse.SUPPRESS)  # internal: run one variant, print JSON
    args = p.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args)))
        return

    results = {}
    for name in args.only.split(","):
        cmd = [sys.executable, __file__, args.data, "--variant", name, "--steps", str(args.steps),
               "--batch-size", str(args.batch_size), "--max-len", str(args.max_len), "--threads", str(args.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{name}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
            continue
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
        r = results[name]
        print(f"{name:20s} step {r['step_s']:7.3f} s (median {r['median_s']:.3f})  items encoded/step {r['items_encoded']:6d}  "
              f"peak +{r['peak_mb']:7.0f} MB  cache build {r['cache_build_s']:.1f} s", flush=True)

    print(f"\nMiniLM-L6 on {args.data}, SASRec dim 64, batch {args.batch_size}, max_len {args.max_len}, "
          f"fastest of {args.steps} steps, threads {torch.get_num_threads() if not args.threads else args.threads}; "
          f"memory = peak RSS over the steps minus RSS before ({next(iter(results.values()))['memory_method']})")
    pairs = [("e2e-dedup", "e2e-every-position", 3.0), ("top2-cached", "top2-full-forward", 2.0),
             ("top1-cached", "top1-full-forward", 2.0)]
    summary = []
    for fast, slow, goal in pairs:
        if fast in results and slow in results:
            a, b = results[fast], results[slow]
            speed = b["step_s"] / a["step_s"]
            mem = b["peak_mb"] / max(a["peak_mb"], 1.0)
            print(f"{fast:>12s} vs {slow:<20s}: {a['step_s']:.3f} s vs {b['step_s']:.3f} s per step = {speed:.1f}x "
                  f"faster (goal >= {goal:.0f}x: {'met' if speed >= goal else 'NOT met'}); "
                  f"peak memory {a['peak_mb']:.0f} MB vs {b['peak_mb']:.0f} MB ({mem:.1f}x less)")
            summary.append(f"{fast} {speed:.1f}x faster than {slow} (goal {goal:.0f}x), memory {mem:.1f}x less")
    print("SUMMARY: " + "; ".join(summary))


if __name__ == "__main__":
    main()
