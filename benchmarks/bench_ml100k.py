"""MovieLens-100K benchmark: training speed, time to the best validation epoch, test accuracy and the
time of one full-ranking evaluation of all users.

    python benchmarks/bench_ml100k.py [DATA_DIR] [--only sasrec-bce,sasrec-ce,dssm-bce] [--epochs N]

DATA_DIR (default ``data``) gets ``raw/ml-100k`` (fetched: GroupLens, else the RecBole 1.2.1 wheel
from PyPI) and ``prepared/ml-100k`` (the paper's preprocessing; all interactions kept, leave-one-out),
the same layout as ``morec quickstart``. Each model trains to early stopping (patience 10 on valid
NDCG@10), is reloaded at its best epoch and scored once on test (full ranking, history masked).
``rank_users(model, dataset, "test", max_len)`` on the trained model is then timed ``--eval-repeats``
times (after one warm-up call) and the median is reported.

Reference: RecBole 1.2.1 SASRec (CE, 64-d, 2 layers, max len 50), measured earlier on this kind of
machine: test HR@10 0.136 / NDCG@10 0.064 after ~1620 s to its best validation epoch. The goal is that
accuracy in a tenth of that time or less (<= 162 s). The last line is one summary of all figures.
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

from morec.api import prepare_dataset
from morec.config import load_config
from morec.data.dataset import PreparedDataset
from morec.data.fetch import fetch_dataset
from morec.evaluate import metrics_from_ranks, most_popular_ranks, rank_users
from morec.train import Trainer

REFERENCE = {"name": "RecBole 1.2.1 SASRec (CE)", "hr@10": 0.136, "ndcg@10": 0.064, "seconds_to_best": 1620.0}

# name -> config overrides (everything else: the library's defaults = the paper's)
MODELS = {
    "sasrec-bce": ["--model.backbone=sasrec", "--train.loss=bce"],
    "sasrec-ce": ["--model.backbone=sasrec", "--train.loss=ce"],
    "dssm-bce": ["--model.backbone=dssm", "--train.loss=bce", "--train.batch_size=1024"],
}


def prepared_ml100k(root: Path) -> PreparedDataset:
    raw = fetch_dataset("movielens-100k", root / "raw")
    out = root / "prepared" / "ml-100k"
    if (out / "manifest.json").exists():
        print(f"[bench] using the prepared dataset in {out}")
        return PreparedDataset(out)
    return prepare_dataset(raw, out)


def time_eval(model, dataset, max_len: int, repeats: int) -> tuple[float, list[float]]:
    rank_users(model, dataset, "test", max_len)  # warm-up (allocator, lazy numpy views)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        rank_users(model, dataset, "test", max_len)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def seconds_to_reference(metrics_file: Path) -> tuple[float | None, int | None]:
    """Wall seconds (training + validation, summed from metrics.jsonl) until the first epoch whose
    *validation* HR@10 and NDCG@10 both reach the reference's *test* figures (an indication only)."""
    total = 0.0
    for line in metrics_file.read_text().splitlines():
        rec = json.loads(line)
        total += rec["seconds"]
        if rec["valid_hr@10"] >= REFERENCE["hr@10"] and rec["valid_ndcg@10"] >= REFERENCE["ndcg@10"]:
            return total, rec["epoch"]
    return None, None


def run_one(name: str, dataset: PreparedDataset, args) -> dict:
    overrides = [f"--data={dataset.path}", f"--out={Path(args.runs) / name}", f"--train.progress={args.progress}",
                 f"--train.patience={args.patience}", f"--train.seed={args.seed}", *MODELS[name]]
    if args.epochs:
        overrides.append(f"--train.epochs={args.epochs}")
    if args.threads:
        overrides.append(f"--train.threads={args.threads}")
    cfg = load_config(None, overrides + list(args.override or []))
    print(f"\n=== {name}: {' '.join(MODELS[name])} ===", flush=True)
    trainer = Trainer(cfg, dataset, log=lambda m: print(m, flush=True))
    res = trainer.fit()
    eval_median, eval_times = time_eval(trainer.model, dataset, cfg.model.max_len, args.eval_repeats)
    to_ref, ref_epoch = seconds_to_reference(Path(cfg.out) / "metrics.jsonl")
    row = {
        "name": name,
        "epochs_run": res["epochs_run"],
        "best_epoch": res["best_epoch"],
        "seconds_per_epoch": res["seconds_per_epoch"],
        "seconds_to_best": res["seconds_to_best"],
        "seconds_total": res["seconds_total"],
        "valid_hr@10": res["valid"]["hr@10"], "valid_ndcg@10": res["valid"]["ndcg@10"],
        "test_hr@10": res["test"]["hr@10"], "test_ndcg@10": res["test"]["ndcg@10"],
        "eval_seconds": eval_median,
        "to_best_fraction_of_ref": res["seconds_to_best"] / REFERENCE["seconds_to_best"],
        "seconds_to_ref_valid": to_ref, "ref_valid_epoch": ref_epoch,
    }
    print(f"[{name}] {row['epochs_run']} epochs, best epoch {row['best_epoch']}: "
          f"{row['seconds_per_epoch']:.2f} s/training epoch, {row['seconds_to_best']:.1f} s to best "
          f"(= {row['to_best_fraction_of_ref']:.3f} x the reference's {REFERENCE['seconds_to_best']:.0f} s), "
          f"{row['seconds_total']:.1f} s in all", flush=True)
    print(f"[{name}] first epoch with valid HR@10 >= {REFERENCE['hr@10']} and NDCG@10 >= {REFERENCE['ndcg@10']}: "
          + (f"epoch {ref_epoch}, {to_ref:.1f} s (= {to_ref / REFERENCE['seconds_to_best']:.3f} x 1620 s)"
             if to_ref is not None else "never"), flush=True)
    print(f"[{name}] valid HR@10 {row['valid_hr@10']:.4f} NDCG@10 {row['valid_ndcg@10']:.4f} | "
          f"test HR@10 {row['test_hr@10']:.4f} NDCG@10 {row['test_ndcg@10']:.4f} "
          f"(reference {REFERENCE['hr@10']:.3f} / {REFERENCE['ndcg@10']:.3f})", flush=True)
    print(f"[{name}] full-ranking evaluation of all {dataset.n_users} users x {dataset.n_items} items "
          f"(history masked): median {eval_median * 1000:.1f} ms over {len(eval_times)} runs "
          f"({', '.join(f'{t * 1000:.1f}' for t in eval_times)} ms)", flush=True)
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data", nargs="?", default="data", help="data root (gets raw/ml-100k and prepared/ml-100k)")
    p.add_argument("--only", default=",".join(MODELS), help=f"comma list of {', '.join(MODELS)}")
    p.add_argument("--epochs", type=int, default=0, help="max epochs (default: the config's, 200; early stop decides)")
    p.add_argument("--patience", type=int, default=10)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--eval-repeats", type=int, default=5)
    p.add_argument("--runs", default="runs/bench-ml100k", help="where the run directories go")
    p.add_argument("--progress", action="store_true", help="show tqdm progress bars")
    p.add_argument("--override", action="append", help="extra config override, e.g. --override=--train.lr=2e-3")
    args = p.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        p.error(f"unknown model(s) {unknown}; known: {', '.join(MODELS)}")

    print(f"[bench] torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    dataset = prepared_ml100k(Path(args.data))
    print(f"[bench] {dataset.stats()}", flush=True)
    pop = metrics_from_ranks(most_popular_ranks(dataset, "test"), [10])
    print(f"[bench] most-popular baseline, test: HR@10 {pop['hr@10']:.4f} NDCG@10 {pop['ndcg@10']:.4f}", flush=True)

    rows = [run_one(n, dataset, args) for n in names]

    print("\nmodel        epochs best  s/epoch  s_to_best  x1620s  test_HR@10  test_NDCG@10  eval_ms")
    for r in rows:
        print(f"{r['name']:<12} {r['epochs_run']:>6} {r['best_epoch']:>4} {r['seconds_per_epoch']:>8.2f} "
              f"{r['seconds_to_best']:>10.1f} {r['to_best_fraction_of_ref']:>7.3f} {r['test_hr@10']:>11.4f} "
              f"{r['test_ndcg@10']:>13.4f} {r['eval_seconds'] * 1000:>8.1f}")
    print(f"{'reference':<12} {'':>6} {'':>4} {'':>8} {REFERENCE['seconds_to_best']:>10.1f} {1.0:>7.3f} "
          f"{REFERENCE['hr@10']:>11.4f} {REFERENCE['ndcg@10']:>13.4f}   ({REFERENCE['name']})")
    parts = [f"{r['name']}: {r['seconds_per_epoch']:.2f} s/epoch, {r['seconds_to_best']:.1f} s to best "
             f"({r['to_best_fraction_of_ref']:.3f}x ref 1620 s), "
             + (f"ref-level valid after {r['seconds_to_ref_valid']:.1f} s, " if r["seconds_to_ref_valid"] is not None else "")
             + f"test HR@10 {r['test_hr@10']:.4f} "
             f"NDCG@10 {r['test_ndcg@10']:.4f}, eval all users {r['eval_seconds'] * 1000:.1f} ms" for r in rows]
    print("SUMMARY bench_ml100k | " + " | ".join(parts) + f" | most-popular test HR@10 {pop['hr@10']:.4f} "
          f"NDCG@10 {pop['ndcg@10']:.4f} | reference HR@10 0.136 NDCG@10 0.064 in 1620 s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
