"""ID SASRec on MovieLens-100K: morec's default training against its fast configuration, side by side,
over several seeds, with RePlay's figures (measured earlier under the same protocol, not re-run) printed
as the reference.

    python benchmarks/bench_fast_sasrec.py [PREPARED_DIR] [--seeds 1,2,3] [--threads 1] [--results FILE]

For each seed the chosen arms (``--arms``, default both) run back to back in this process, default
first; a seed whose two arms ran in one process gives one side-by-side ratio of seconds to best (a
ratio is never formed across processes). Each finished (arm, seed) is appended to ``--results`` (JSON
lines); a later call skips what is already there, so the seeds can be run in chunks on a shared
machine (the summary says which process measured what). Seconds to best are
wall seconds from the start of training to the end of the best epoch's validation (training plus
every validation before it), as ``results.json``'s ``seconds_to_best``. Each arm trains to its own
stopping rule, selects its best epoch on validation and reads test once.

The last line is one summary of the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from morec.config import load_config
from morec.data.dataset import PreparedDataset
from morec.evaluate import metrics_from_ranks, most_popular_ranks
from morec.train import Trainer

# An earlier measurement of the peer (same protocol: leave-one-out, full ranking, history masked, 64-d,
# 2 blocks x 2 heads, max length 50; 2 cores, 2 threads, quiet machine). Not re-run here.
REPLAY = {"name": "RePlay 0.22.0 SASRec (full CE, last window per user, Adam 1e-3 betas (0.9, 0.98), batch 128, "
                  "FFN width 64)", "seconds_per_epoch": 0.96, "best_epoch": 30, "seconds_to_best": 29.0,
          "hr@10": 0.1729, "ndcg@10": 0.0899}
GOAL_SECONDS = 15.0  # half of RePlay's time to best

# the library's defaults (the paper's setting, configs/ml100k_sasrec_id.yaml): BCE, 1 negative, every
# window, AdamW lr 1e-3 constant, batch 128, FFN 4 x 64, validation of every user after every epoch
DEFAULT: list[str] = []
# the first fast configuration (superseded by configs/ml100k_sasrec_id_fast.yaml, which samples half of every
# window each epoch; benchmarks/bench_recipes.py measures it): full CE over each user's latest window (as RePlay), FFN width 64 (as RePlay), fused
# attention, Adam betas (0.9, 0.98), batch 32, peak lr 3e-3 with 10% warm-up and cosine decay over 20 epochs,
# validation from epoch 8. Chosen on seed 1's validation NDCG@10 among five short configurations
# (benchmarks/results/fast_recipe_search_seed1.jsonl and fast_recipe_search_ffn256_seed1.jsonl; benchmarks/README.md).
FAST = ["--train.loss=ce", "--train.windows=last", "--model.ffn_mult=1", "--model.attention=fused",
        "--train.betas=[0.9,0.98]", "--train.lr=3e-3", "--train.schedule=cosine", "--train.warmup=0.1",
        "--train.batch_size=32", "--train.epochs=20", "--eval.valid_from=8"]
ARMS = {"default": DEFAULT, "fast": FAST}


def run_arm(arm: str, seed: int, dataset: PreparedDataset, args, chunk: str) -> dict:
    overrides = [f"--data={dataset.path}", f"--out={Path(args.runs) / f'{arm}-{seed}'}", "--train.progress=false",
                 f"--train.seed={seed}", f"--train.threads={args.threads}", "--train.checkpoints=false", *ARMS[arm]]
    cfg = load_config(None, overrides)
    print(f"\n=== {arm}, seed {seed}: {' '.join(ARMS[arm]) or '(library defaults)'} ===", flush=True)
    t0 = time.perf_counter()
    res = Trainer(cfg, dataset, log=lambda m: print(m, flush=True) if args.verbose else None).fit()
    row = {"arm": arm, "seed": seed, "chunk": chunk, "overrides": ARMS[arm], "best_epoch": res["best_epoch"],
           "epochs_run": res["epochs_run"], "seconds_per_epoch": res["seconds_per_epoch"],
           "seconds_to_best": res["seconds_to_best"], "seconds_total": time.perf_counter() - t0,
           "valid": res["valid"], "test": res["test"], "selection": res.get("selection")}
    print(f"[{arm} seed {seed}] best epoch {row['best_epoch']} of {row['epochs_run']}, {row['seconds_per_epoch']:.2f} s "
          f"per training epoch, {row['seconds_to_best']:.1f} s to best, test HR@10 {row['test']['hr@10']:.4f} "
          f"NDCG@10 {row['test']['ndcg@10']:.4f}", flush=True)
    return row


def spread(values: list[float], digits: int = 4) -> str:
    mean = statistics.mean(values)
    sd = statistics.stdev(values) if len(values) > 1 else float("nan")
    return f"{mean:.{digits}f} ± {sd:.{digits}f} (sd; {min(values):.{digits}f}–{max(values):.{digits}f})"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data", nargs="?", default="data/prepared/ml-100k")
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--arms", default="default,fast", help="which arms this call runs (default,fast)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 on a shared machine)")
    p.add_argument("--results", default="runs/bench-fast-sasrec/results.jsonl")
    p.add_argument("--runs", default="runs/bench-fast-sasrec")
    p.add_argument("--max-seconds", type=float, default=0, help="start no new seed pair after this many seconds")
    p.add_argument("--verbose", action="store_true", help="print every epoch")
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    rows = [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
    chunk = time.strftime("%Y-%m-%dT%H:%M:%S") + f" pid {os.getpid()}"
    print(f"[bench] torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; this process: {chunk}", flush=True)
    dataset = PreparedDataset(args.data)
    pop = metrics_from_ranks(most_popular_ranks(dataset, "test"), [10])
    start = time.perf_counter()
    arms = [a for a in ARMS if a in args.arms.split(",")]
    for seed in seeds:
        todo = [a for a in arms if not any(r["arm"] == a and r["seed"] == seed for r in rows)]
        if not todo:
            continue
        if args.max_seconds and time.perf_counter() - start > args.max_seconds:
            print(f"[bench] --max-seconds reached; seed {seed} and later left for the next call", flush=True)
            break
        for arm in todo:  # default first
            rows.append(run_arm(arm, seed, dataset, args, chunk))
            with results.open("a") as f:
                f.write(json.dumps(rows[-1]) + "\n")

    by = {(r["arm"], r["seed"]): r for r in rows}
    print(f"\nML-100K ID SASRec, {args.threads} thread(s); most-popular test HR@10 {pop['hr@10']:.4f} "
          f"NDCG@10 {pop['ndcg@10']:.4f}")
    print(f"reference (earlier measurement, not re-run): {REPLAY['name']}: {REPLAY['seconds_per_epoch']} s/epoch, best epoch "
          f"{REPLAY['best_epoch']}, {REPLAY['seconds_to_best']:.0f} s to best, test HR@10 {REPLAY['hr@10']} "
          f"NDCG@10 {REPLAY['ndcg@10']} (quiet machine, 2 threads)")
    summary = []
    for arm in ARMS:
        rs = sorted((r for r in rows if r["arm"] == arm), key=lambda r: r["seed"])
        if not rs:
            continue
        print(f"  {arm:<8} {len(rs)} seed(s): {', '.join(str(r['seed']) for r in rs)}")
        t = [r["seconds_to_best"] for r in rs]
        hr, nd = [r["test"]["hr@10"] for r in rs], [r["test"]["ndcg@10"] for r in rs]
        beats = statistics.mean(hr) >= REPLAY["hr@10"] and statistics.mean(nd) >= REPLAY["ndcg@10"]
        print(f"  {arm:<8} s to best {spread(t, 1)} = {statistics.mean(t) / REPLAY['seconds_to_best']:.2f} x RePlay's "
              f"29 s | best epoch {spread([r['best_epoch'] for r in rs], 1)} of {spread([r['epochs_run'] for r in rs], 1)} "
              f"run | s/epoch {statistics.mean(r['seconds_per_epoch'] for r in rs):.2f}")
        noise = ""
        if len(rs) >= 3:  # is the mean's distance from RePlay's (single-seed) figure beyond the seeds' noise?
            from scipy.stats import ttest_1samp

            p_hr, p_nd = (ttest_1samp(v, REPLAY[m]).pvalue for v, m in ((hr, "hr@10"), (nd, "ndcg@10")))
            noise = f" (one-sample t-test vs RePlay's figure: p = {p_hr:.2g} HR, {p_nd:.2g} NDCG)"
        print(f"  {'':<8} test HR@10 {spread(hr)} | NDCG@10 {spread(nd)} | mean >= RePlay's: {'yes' if beats else 'no'}"
              + noise)
        summary.append(f"{arm} ({len(rs)} seeds): {statistics.mean(t):.1f} s to best (sd {statistics.stdev(t) if len(t) > 1 else 0:.1f}, "
                       f"{statistics.mean(t) / REPLAY['seconds_to_best']:.2f}x RePlay 29 s), best epoch "
                       f"{statistics.mean(r['best_epoch'] for r in rs):.1f}, test HR@10 {statistics.mean(hr):.4f} "
                       f"± {statistics.stdev(hr) if len(hr) > 1 else 0:.4f} NDCG@10 {statistics.mean(nd):.4f} "
                       f"± {statistics.stdev(nd) if len(nd) > 1 else 0:.4f}")
    done = sorted(s for (a, s) in by if a == "fast" and ("default", s) in by and by[("default", s)]["chunk"] == by[("fast", s)]["chunk"])
    ratios = [by[("default", s)]["seconds_to_best"] / by[("fast", s)]["seconds_to_best"] for s in done]
    if ratios:
        print(f"  fast vs default, seconds to best measured side by side per seed: {spread(ratios, 2)} x faster "
              f"({', '.join(f'seed {s}: {x:.2f}x' for s, x in zip(done, ratios))}); chunks: "
              f"{'; '.join(sorted({by[('fast', s)]['chunk'] for s in done}))}")
        summary.append(f"fast/default speed-up {statistics.mean(ratios):.2f}x (per-seed {', '.join(f'{x:.2f}' for x in ratios)})")
    print("SUMMARY bench_fast_sasrec | " + " | ".join(summary) + f" | RePlay (earlier measurement): 29 s to best, test HR@10 "
          f"0.1729 NDCG@10 0.0899 | goal <= {GOAL_SECONDS:.0f} s | side-by-side seeds {','.join(map(str, done)) or 'none'}",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
