"""Text MoRec training-step cost on MovieLens-100K with the real MiniLM-L6 (6 layers, 384 wide):

* end to end: each distinct item in a batch encoded once (dedup) vs every position encoded,
  duplicates and padding included (what the paper's code does);
* top 2 (or 1) of 6 layers trained: frozen lower layers' outputs cached once and the last layer run
  for [CLS] only (morec's top mode) vs the straightforward way, the frozen layers run every step and
  the top layers on every token; ``*-cached-all-tokens`` separates the two savings.

    python benchmarks/bench_text_encoding.py PREPARED_DIR [--steps 5] [--batch-size 32] [--max-len 50]

PREPARED_DIR is a prepared MovieLens-100K (``morec data fetch movielens-100k`` then ``morec data
prepare``, or ``benchmarks/bench_ml100k.py``, which leaves ``data/prepared/ml-100k``).

Each variant runs in its own process on the same fixed batches: warm-up step, then ``--steps`` timed
optimizer steps (forward + backward + AdamW); the fastest step is reported (on a shared machine other
processes only add time), the median is printed too. The speed-up of each pair is then measured side
by side: one process builds both variants and alternates their steps, so a change in the machine's
load hits both alike; the ratio of their fastest steps is the figure the goals are checked against. Memory is the peak resident set size (Linux VmHWM,
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


def _top(n: int, cached: bool) -> list[str]:
    return ["--model.encoder.mode=top", f"--model.encoder.train_layers={n}",
            f"--model.encoder.cache_lower={str(cached).lower()}", "--model.encoder.disk_cache=false"]


# name -> (encoder overrides, dedup, last layer for [CLS] only). Both E2E variants run every token through the
# last layer, so their ratio is the deduplication alone.
VARIANTS = {
    "e2e-dedup": (["--model.encoder.mode=e2e"], True, False),
    "e2e-every-position": (["--model.encoder.mode=e2e"], False, False),
    "top2-cached": (_top(2, True), True, True),
    "top2-cached-all-tokens": (_top(2, True), True, False),
    "top2-full-forward": (_top(2, False), True, False),
    "top1-cached": (_top(1, True), True, True),
    "top1-cached-all-tokens": (_top(1, True), True, False),
    "top1-full-forward": (_top(1, False), True, False),
}
PAIRS = [("e2e-dedup", "e2e-every-position", 3.0), ("top2-cached", "top2-full-forward", 2.0),
         ("top2-cached", "top2-cached-all-tokens", 0.0), ("top1-cached", "top1-full-forward", 2.0)]


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


def build_variant(name: str, args):
    """(model, optimizer, fixed batches, items encoded per step) for one variant."""
    from morec.config import load_config
    from morec.data.dataset import PreparedDataset
    from morec.train import Trainer

    overrides, dedup, first_token = VARIANTS[name]
    cfg = load_config(None, [f"--data={args.data}", "--out=/tmp/morec-bench-text", "--model.dim=64",
                             f"--model.max_len={args.max_len}", f"--train.batch_size={args.batch_size}",
                             "--train.progress=false", "--model.encoder.kind=text",
                             "--model.encoder.pretrained=minilm", "--model.encoder.lr=1e-4", *overrides])
    trainer = Trainer(cfg, PreparedDataset(args.data), log=lambda s: None)
    model, opt = trainer.model, trainer.optimizer
    model.dedup = dedup
    if hasattr(model.item_encoder, "first_token_only"):
        model.item_encoder.first_token_only = first_token and model.item_encoder.first_token_only
    model.train()
    batches = []
    for b in trainer.batches.epoch(np.random.default_rng(0)):
        batches.append(b)
        if len(batches) == args.steps + 1:
            break
    ids = [batches[0].targets, batches[0].negatives, batches[0].history]
    encoded = int(torch.cat([t.reshape(-1) for t in ids]).numel()) if not dedup else \
        int((torch.unique(torch.cat([t.reshape(-1) for t in ids])) > 0).sum())
    return model, opt, batches, encoded


def _build_cache(model) -> float:
    """Seconds to build the lower-layer cache (the one-off cost, kept out of the per-step time)."""
    enc = model.item_encoder
    if getattr(enc, "mode", "") == "top" and enc.cache_lower:
        t0 = time.perf_counter()
        enc.lower_outputs()
        return time.perf_counter() - t0
    return 0.0


def _step(model, opt, batch) -> float:
    from morec.train import compute_loss

    t0 = time.perf_counter()
    loss = compute_loss(model, batch, "bce")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return time.perf_counter() - t0


def run_variant(name: str, args) -> dict:
    """One variant in this process: build, take the fixed batches, time the steps, measure memory."""
    if args.threads:
        torch.set_num_threads(args.threads)
    model, opt, batches, encoded = build_variant(name, args)
    rss0 = _rss_kb("VmRSS")
    peak_reset = _reset_peak()
    cache_s = _build_cache(model)
    _step(model, opt, batches[0])  # warm-up
    times = [_step(model, opt, batch) for batch in batches[1:]]
    peak = _rss_kb("VmHWM")
    # the fastest step: on a shared machine, other processes only ever add time to a step
    return {"variant": name, "step_s": float(np.min(times)), "median_s": float(np.median(times)),
            "steps": len(times), "items_encoded": encoded,
            "cache_build_s": cache_s, "peak_mb": (peak - rss0) / 1024,
            "memory_method": "VmHWM reset" if peak_reset else "VmHWM since process start"}


def run_pair(names: list[str], args) -> dict:
    """Both variants in one process, their steps alternated: the side-by-side speed-up."""
    if args.threads:
        torch.set_num_threads(args.threads)
    built = {n: build_variant(n, args) for n in names}
    for n, (model, opt, batches, _) in built.items():
        _build_cache(model)
        _step(model, opt, batches[0])  # warm-up
    times = {n: [] for n in names}
    for i in range(1, args.steps + 1):
        for n in (names if i % 2 else names[::-1]):  # alternate which goes first
            model, opt, batches, _ = built[n]
            times[n].append(_step(model, opt, batches[i]))
    return {n: float(np.min(t)) for n, t in times.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data", help="prepared MovieLens-100K directory")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-len", type=int, default=50)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--only", default=",".join(VARIANTS))
    p.add_argument("--variant", help=argparse.SUPPRESS)  # internal: run one variant, print JSON
    p.add_argument("--pair", help=argparse.SUPPRESS)  # internal: FAST,SLOW side by side, print JSON
    args = p.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args)))
        return
    if args.pair:
        print(json.dumps(run_pair(args.pair.split(","), args)))
        return

    def child(*flag: str) -> dict | None:
        cmd = [sys.executable, __file__, args.data, *flag, "--steps", str(args.steps),
               "--batch-size", str(args.batch_size), "--max-len", str(args.max_len), "--threads", str(args.threads)]
        out = subprocess.run(cmd, check=False, capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{' '.join(flag)}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
            return None
        return json.loads(out.stdout.strip().splitlines()[-1])

    results = {}
    for name in args.only.split(","):
        r = child("--variant", name)
        if r is None:
            continue
        results[name] = r
        print(f"{name:20s} step {r['step_s']:7.3f} s (median {r['median_s']:.3f})  items encoded/step {r['items_encoded']:6d}  "
              f"peak +{r['peak_mb']:7.0f} MB  cache build {r['cache_build_s']:.1f} s", flush=True)

    print(f"\nMiniLM-L6 on {args.data}, SASRec dim 64, batch {args.batch_size}, max_len {args.max_len}, "
          f"fastest of {args.steps} steps, threads {torch.get_num_threads() if not args.threads else args.threads}; "
          f"memory = peak RSS over the steps minus RSS before ({next(iter(results.values()))['memory_method']})")
    summary = []
    for fast, slow, goal in PAIRS:
        if fast in results and slow in results:
            side = child("--pair", f"{fast},{slow}")
            if side is None:
                continue
            a, b = results[fast], results[slow]
            speed = side[slow] / side[fast]
            mem = b["peak_mb"] / max(a["peak_mb"], 1.0)
            verdict = f" (goal >= {goal:.0f}x: {'met' if speed >= goal else 'NOT met'})" if goal else ""
            print(f"{fast:>12s} vs {slow:<22s}: side by side {side[fast]:.3f} s vs {side[slow]:.3f} s per step = "
                  f"{speed:.2f}x faster{verdict}; peak memory {a['peak_mb']:.0f} MB vs {b['peak_mb']:.0f} MB "
                  f"({mem:.1f}x less)")
            summary.append(f"{fast} {speed:.2f}x faster than {slow}{verdict}, memory {mem:.1f}x less")
    print("SUMMARY: " + "; ".join(summary))


if __name__ == "__main__":
    main()
