"""What MoRec costs next to IDRec on MovieLens-100K SASRec, each training mode measured side by side in one
process: seconds per epoch, seconds to the best validation epoch, trainable parameters, the run's own peak
memory, valid / test HR@10 and NDCG@10, and every figure's ratio to IDRec (same seed).

    python benchmarks/bench_morec_cost.py [--data data/prepared/ml-100k] [--arms idrec,ts,side,...]
        [--seeds 1,2,3] [--runs runs/bench-morec-cost] [--e2e-run RUN_DIR] [--new-items data/prepared/ml-100k-new]

Budget: the published ML-100K sweep's (docs/results/ml100k_sweep.yaml): dim 64, max_len 50, batch 128,
weight decay 0.1, patience 10 on valid NDCG@10, epoch cap 300, MiniLM (`pretrained: minilm`) on titles.
Arms run seed by seed (all arms of seed 1, then seed 2, ...), so an interrupted benchmark holds complete
seeds; a run directory that already has results.json is read back instead of retrained, and one with a checkpoint
but no results (an interrupted run) resumes from it exactly.
``--e2e-run`` adds a saved whole-encoder E2E run (trained elsewhere, e.g. on a GPU) as a row read from its
results.json. ``--new-items`` also trains the arms on a dataset prepared with ``prepare.new_items`` and
reports HR@10 over the test users whose target is a held-out new item (negatives from training items only), with
each arm's paired verdict against TS over those users (``--new-items-seeds 1,2,3`` pools seeds).
The last line is one summary with each arm's mean over seeds and its ratios to IDRec.

``--time-epochs`` is the speed measurement when the full runs could not run alone (the whole-encoder E2E run
takes hours on one core, so other arms trained beside it): every arm trains one epoch, alone and one after the
other in this process, and its epoch (training + validation) and the time to best it implies, (best epoch + 1)
epochs of the full run, are given as ratios to IDRec's. The epochs to best come from the full runs: a seeded
run's epochs do not depend on how fast the machine was.

    python benchmarks/bench_morec_cost.py --time-epochs --arms idrec,ts,side,e2e --seeds 1
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

from morec.checkpoint import POINTER
from morec.config import load_config
from morec.data.dataset import PreparedDataset
from morec.evaluate import metrics_from_ranks, most_popular_ranks, rank_users
from morec.ranks import per_user_metric
from morec.runs import load_run
from morec.stats import format_p, paired
from morec.train import Trainer

BUDGET = ["--model.dim=64", "--model.max_len=50", "--model.backbone=sasrec", "--train.batch_size=128",
          "--train.weight_decay=0.1", "--train.patience=10", "--train.epochs=300", "--eval.select_metric=ndcg@10",
          "--model.encoder.pretrained=minilm", "--model.encoder.text.fields=[title]", "--train.progress=false",
          "--train.threads=1"]
TEXT = ["--model.encoder.kind=text"]
ARMS = {
    "idrec": ["--model.encoder.kind=id"],
    "ts": TEXT + ["--model.encoder.mode=frozen"],
    "top1": TEXT + ["--model.encoder.mode=top", "--model.encoder.train_layers=1"],
    "top2": TEXT + ["--model.encoder.mode=top", "--model.encoder.train_layers=2"],
    "side": TEXT + ["--model.encoder.mode=side"],
    "side+id": TEXT + ["--model.encoder.mode=side", "--model.encoder.fusion=add"],
    "lora": TEXT + ["--model.encoder.mode=lora", "--model.encoder.train_layers=2", "--model.encoder.lr=1e-3"],
    # the paper's mode: every encoder weight trained; hours on CPU, so it checkpoints mid-epoch too
    "e2e": TEXT + ["--model.encoder.mode=e2e", "--train.checkpoint_every_steps=4"],
}
FIELDS = ("seconds_per_epoch", "seconds_to_best", "trainable_parameters", "peak_memory_bytes")


def arm_config(name: str, seed: int, data: Path, out: Path, *extra: str):
    """The config of one arm at the benchmark's budget (gpu_check's E2E run uses it too)."""
    return load_config(None, [f"--data={data}", f"--out={out}", f"--train.seed={seed}", *BUDGET, *ARMS[name], *extra])


def run_arm(name: str, seed: int, data: Path, runs: Path, extra: list[str]) -> dict:
    out = runs / f"{name}-seed{seed}"
    if (out / "results.json").exists():
        print(f"[bench] {name} seed {seed}: read back from {out}", flush=True)
        return json.loads((out / "results.json").read_text())
    if (out / POINTER).exists():  # an interrupted run continues from its last checkpoint (time over every resume)
        print(f"[bench] {name} seed {seed}: resuming {out}", flush=True)
        return Trainer.resume(out, PreparedDataset(data), log=lambda m: print(m, flush=True))
    cfg = arm_config(name, seed, data, out, *extra)
    print(f"\n=== {name} seed {seed}: {' '.join(ARMS[name] + extra)} ===", flush=True)
    return Trainer(cfg, PreparedDataset(data), log=lambda m: print(m, flush=True)).fit()


def time_one_epoch(name: str, seed: int, data: Path, runs: Path, extra: list[str]) -> dict:
    """One epoch (training and validation) of an arm, timed alone; caches already built by the full run."""
    out = runs.parent / f"{runs.name}-timing" / f"{name}-seed{seed}"  # beside, not inside: report must not see it
    cfg = arm_config(name, seed, data, out, *extra, "--train.epochs=1", "--train.checkpoints=false",
                     "--train.checkpoint_every_steps=0", "--train.tensorboard=false")
    Trainer(cfg, PreparedDataset(data), log=lambda m: None).fit()
    epoch = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    full = json.loads((runs / f"{name}-seed{seed}" / "results.json").read_text())
    return {"arm": name, "seed": seed, "epoch_seconds": epoch["seconds"], "best_epoch": full["best_epoch"],
            "to_best": (full["best_epoch"] + 1) * epoch["seconds"]}


def timing_pass(arms: list[str], seed: int, data: Path, runs: Path, extra: list[str]) -> int:
    unfinished = [a for a in arms if not (runs / f"{a}-seed{seed}" / "results.json").exists()]
    if unfinished:
        raise SystemExit(f"bench_morec_cost --time-epochs: no finished run of {', '.join(unfinished)} (seed {seed}) in "
                         f"{runs}; train them first (the same command without --time-epochs)")
    rows = [time_one_epoch(a, seed, data, runs, extra) for a in ["idrec"] + [a for a in arms if a != "idrec"]]
    ref = rows[0]
    print("\narm        seed  epoch_s  x_id_epoch  best_epoch  est_s_to_best  x_id_to_best")
    for r in rows:
        r["x_epoch"], r["x_to_best"] = r["epoch_seconds"] / ref["epoch_seconds"], r["to_best"] / ref["to_best"]
        print(f"{r['arm']:<10} {seed:>4} {r['epoch_seconds']:>8.2f} {r['x_epoch']:>11.2f} {r['best_epoch']:>11} "
              f"{r['to_best']:>14.0f} {r['x_to_best']:>13.2f}")
    (runs.parent / f"{runs.name}-timing" / "timing_rows.json").write_text(json.dumps(rows, indent=1))
    print("SUMMARY bench_morec_cost --time-epochs (one epoch each, alone, one process) | " + " | ".join(
        f"{r['arm']}: {r['epoch_seconds']:.1f} s/epoch ({r['x_epoch']:.2f}x IDRec), best epoch {r['best_epoch']}, "
        f"~{r['to_best']:.0f} s to best ({r['x_to_best']:.2f}x)" for r in rows), flush=True)
    return 0


def token_budget(ds: PreparedDataset, chunk: int = 256, max_tokens: int = 30) -> str:
    """The item-title token lengths (MiniLM tokenizer, special tokens included) and the token positions one pass
    over every item computes: padded to max_tokens, to the longest title, or in the encoders' length groups (at
    most ``chunk`` items, padding bounded), so a step pays for little padding."""
    from morec.data.content import item_tokens
    from morec.encoders.modality import length_groups
    from morec.encoders.text import load_text_model

    _, tokenizer, _ = load_text_model("minilm")
    lengths = item_tokens(ds, tokenizer, ["title"], max_tokens).lengths[1:].astype(int)

    def grouped(cap: int) -> int:
        sizes = torch.from_numpy(np.minimum(lengths, cap))
        return sum(int(sizes[g].max()) * len(g) for g in length_groups(sizes, chunk))

    p99 = int(np.percentile(lengths, 99))
    return (f"title tokens: mean {lengths.mean():.1f}, median {int(np.median(lengths))}, 99th pct "
            f"{p99}, max {lengths.max()} (max_tokens {max_tokens}); positions per pass over "
            f"{len(lengths)} items: padded to max_tokens {len(lengths) * max_tokens}, to the longest "
            f"{len(lengths) * lengths.max()}, length groups of <= {chunk} {grouped(max_tokens)}, the same with "
            f"max_tokens at the 99th percentile {grouped(p99)} (real tokens {lengths.sum()})")


def new_item_ranks(run_dir: Path) -> np.ndarray:
    """Test ranks of the users whose target item never occurs in training (the held-out new items)."""
    cfg, model, ds = load_run(run_dir)
    users = np.flatnonzero(ds.train_item_counts[ds.targets("test")] == 0)
    return rank_users(model, ds, "test", cfg.model.max_len, users=users)


def new_items_pass(arms: list[str], seeds: list[int], data: Path, runs: Path, extra: list[str], k: int = 10) -> dict:
    """Train (or read back) each arm on a prepare.new_items dataset for every seed, negatives from training items
    only; HR@k over the new-item users, and each arm against the frozen two-stage arm (the reference an adapted
    encoder must keep up with), paired over those users and pooled over seeds with morec's statistics: a handful
    of hits is rarely beyond noise on one seed."""
    ranks: dict[str, list[np.ndarray]] = {}
    for arm in arms:
        for seed in seeds:
            res = run_arm(arm, seed, data, runs, ["--train.negatives_from=train", *extra])
            out_dir = Path(res["config"]["out"]) if "config" in res else runs / f"{arm}-seed{seed}"
            ranks.setdefault(arm, []).append(new_item_ranks(out_dir))
    metric = f"hr@{k}"
    # every run ranks the same new-item users (the dataset's); paired() below refuses arms that do not
    out = {"seeds": seeds, "metric": metric, "users": len(ranks[arms[0]][0]), "hr": {}, "hits": {}, "vs": {}}
    for arm, per_seed in ranks.items():
        out["hits"][arm] = [int(per_user_metric(r, metric).sum()) for r in per_seed]
        out["hr"][arm] = float(np.mean([metrics_from_ranks(r, [k])[metric] for r in per_seed]))
        print(f"[bench] new items, {arm}: HR@{k} {out['hr'][arm]:.4f} (hits of {out['users']} users, seed by seed: "
              f"{' / '.join(map(str, out['hits'][arm]))})", flush=True)
    base = "ts" if "ts" in ranks else arms[0]
    for arm in arms:
        if arm != base:
            c = paired(ranks[base], ranks[arm], metric)
            out["vs"][f"{arm} vs {base}"] = c.to_dict()
            print(f"[bench] new items, {arm} vs {base} ({len(seeds)} seed{'s' if len(seeds) > 1 else ''}): HR@{k} "
                  f"{100 * c.diff:+.2f} points [{100 * c.diff_ci[0]:+.2f}, {100 * c.diff_ci[1]:+.2f}], "
                  f"p {format_p(c.p)}: {c.verdict}", flush=True)
    return out


def row_of(name: str, res: dict) -> dict:
    row = {"arm": name, **{f: res.get(f) for f in FIELDS}, "best_epoch": res.get("best_epoch")}
    for split in ("valid", "test"):
        for m in ("hr@10", "ndcg@10"):
            row[f"{split}_{m}"] = res[split][m]
    return row


def mean(rows: list[dict], key: str) -> float | None:
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.fmean(vals) if vals else None


def seed_list(text: str) -> list[int]:
    """'1,2,3' -> [1, 2, 3] (an argparse type: a bad list is a one-line usage error, not a traceback)."""
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integer seeds such as 1,2,3, got {text!r}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="data/prepared/ml-100k")
    p.add_argument("--arms", default="idrec,ts,side,side+id,lora", help=f"comma list of {', '.join(ARMS)}")
    p.add_argument("--seeds", type=seed_list, default="1,2,3")
    p.add_argument("--idrec-seeds", type=seed_list, default="", help="seeds IDRec (the reference) runs with (default: --seeds); "
                   "other seeds' ratios are to the first IDRec seed")
    p.add_argument("--runs", default="runs/bench-morec-cost")
    p.add_argument("--e2e-run", default="", help="a saved mode=e2e run directory to add as a row")
    p.add_argument("--new-items", default="", help="dataset prepared with prepare.new_items (new-item HR@10)")
    p.add_argument("--new-items-arms", default="idrec,ts,side,side+id,lora")
    p.add_argument("--new-items-seeds", type=seed_list, default="", help="seeds of the new-item runs (default: the first of --seeds)")
    p.add_argument("--override", action="append", default=[], help="extra config override for every arm")
    p.add_argument("--time-epochs", action="store_true", help="time one epoch of each arm alone (see above)")
    args = p.parse_args(argv)
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = [a for a in arms if a not in ARMS]
    if unknown or "idrec" not in arms:
        p.error(f"--arms must include idrec (the reference) and name only {', '.join(ARMS)}; got {arms}")
    seeds = args.seeds
    if not seeds:
        p.error("--seeds needs at least one seed, e.g. --seeds 1")
    data, runs = Path(args.data), Path(args.runs)
    torch.set_num_threads(1)
    print(f"[bench] torch {torch.__version__}, {torch.get_num_threads()} thread, {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; arms {arms}, seeds {seeds}", flush=True)
    if args.time_epochs:
        return timing_pass(arms, seeds[0], data, runs, args.override)
    ds = PreparedDataset(data)
    pop = metrics_from_ranks(most_popular_ranks(ds, "test"), [10])
    print(f"[bench] {ds.stats()}\n[bench] most-popular test HR@10 {pop['hr@10']:.4f} NDCG@10 {pop['ndcg@10']:.4f}")

    print(f"[bench] {token_budget(ds)}", flush=True)
    rows: dict[str, list[dict]] = {a: [] for a in arms}
    idrec_seeds = args.idrec_seeds or seeds
    for seed in sorted(set(seeds) | set(idrec_seeds)):
        for arm in arms:
            if seed not in (idrec_seeds if arm == "idrec" else seeds):
                continue
            rows[arm].append({**row_of(arm, run_arm(arm, seed, data, runs, args.override)), "seed": seed})
    if args.e2e_run:
        res = json.loads((Path(args.e2e_run) / "results.json").read_text())
        rows["e2e (saved run)"] = [{**row_of("e2e", res), "seed": res["config"]["train"]["seed"]}]

    new = {}
    if args.new_items:
        new = new_items_pass([a.strip() for a in args.new_items_arms.split(",") if a.strip()],
                             args.new_items_seeds or seeds[:1],
                             Path(args.new_items), runs / "new-items", args.override)

    ref = {seed: r for r in rows["idrec"] for seed in [r["seed"]]}
    print("\narm             seed  s/epoch  s_to_best  x_id_time  params   x_id  peak_MB  x_id_mem  "
          "valid_HR  valid_NDCG  test_HR  test_NDCG")
    for arm, rs in rows.items():
        for r in rs:
            base = ref.get(r["seed"], rows["idrec"][0])
            r["x_time"] = r["seconds_to_best"] / base["seconds_to_best"]
            r["x_mem"] = (r["peak_memory_bytes"] or 0) / base["peak_memory_bytes"] if base["peak_memory_bytes"] else None
            r["x_params"] = r["trainable_parameters"] / base["trainable_parameters"]
            print(f"{arm:<15} {r['seed']:>4} {r['seconds_per_epoch']:>8.2f} {r['seconds_to_best']:>10.1f} "
                  f"{r['x_time']:>10.2f} {r['trainable_parameters']:>7} {r['x_params']:>6.2f} "
                  f"{(r['peak_memory_bytes'] or 0) / 2**20:>8.0f} {r['x_mem'] or float('nan'):>9.2f} "
                  f"{r['valid_hr@10']:>9.4f} {r['valid_ndcg@10']:>11.4f} {r['test_hr@10']:>8.4f} {r['test_ndcg@10']:>10.4f}")
    Path(runs).mkdir(parents=True, exist_ok=True)
    (runs / "bench_rows.json").write_text(json.dumps({"rows": rows, "new_items": new}, indent=1))
    parts = []
    for arm, rs in rows.items():
        sd = statistics.stdev([r["test_ndcg@10"] for r in rs]) if len(rs) > 1 else None
        parts.append(f"{arm} ({len(rs)} seed{'s' if len(rs) > 1 else ''}): {mean(rs, 'seconds_per_epoch'):.2f} s/epoch, "
                     f"{mean(rs, 'seconds_to_best'):.0f} s to best ({mean(rs, 'x_time'):.2f}x IDRec), "
                     f"peak {mean(rs, 'x_mem') or float('nan'):.2f}x, params {mean(rs, 'x_params'):.2f}x, "
                     f"test HR@10 {mean(rs, 'test_hr@10'):.4f} NDCG@10 {mean(rs, 'test_ndcg@10'):.4f}"
                     + (f" (sd {sd:.4f})" if sd is not None else "")
                     + (f", new-item HR@10 {new['hr'][arm]:.4f}" if arm in new.get("hr", {}) else ""))
    print("SUMMARY bench_morec_cost | " + " | ".join(parts) + f" | most-popular test NDCG@10 {pop['ndcg@10']:.4f}",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
