"""A million users on one machine: prepare, one training epoch, full-ranking evaluation, serving.

    python benchmarks/bench_million.py STAGE [--dir /tmp/morec-million] [--users 1000000] [--items 200000]

Stages (each writes DIR/results/STAGE.json and can be run again; ``all`` runs those not yet done):

* ``limits``   this machine's measured ceilings on one thread: float32 matmul GFLOP/s (torch.mm, 2048²)
               and memory bandwidth (GB/s, a 256 MiB torch copy, read + write counted), the arithmetic
               every other figure is compared with;
* ``raw``      the raw input, ID-only: DIR/raw/interactions.parquet (user, item, timestamp as int64),
               1,000,000 users x 10..30 interactions (mean 20) over 200,000 items of long-tailed popularity,
               written by vectorised numpy in seconds (`morec data synth` writes titles and topics that an
               ID-only run does not need, through a per-item Python loop);
* ``prepare``  ``python -m morec data prepare DIR/raw --out DIR/prepared --format table`` under
               /usr/bin/time: wall seconds and peak RSS of the whole command (reading the parquet included);
* ``train-inbatch`` / ``train-sampled``  one epoch of ID SASRec (64-d, 2 blocks, max_len 50, batch
               ``--batch``) with the in-batch softmax (logQ, own items masked) or the sampled softmax
               (``--negatives`` uniform negatives) through ``Trainer.train_epoch``: targets per second and
               peak RSS. Long: it checkpoints every ``--checkpoint-steps`` optimizer steps and stops after
               ``--chunk-minutes``; run the stage again to continue (the Trainer's own mid-epoch resume);
* ``eval``     full-ranking evaluation (history masked) of a seeded ``--eval-users`` sample with the
               in-batch model: seconds and peak RSS; all users' time is extrapolated linearly (stated so);
* ``serve``    ``benchmarks/bench_serve.py --run DIR/runs/inbatch --index faiss``: ``morec serve`` with the
               faiss index over every item, closed-loop clients on 127.0.0.1: p50 / p99 latency, errors;
* ``summary``  one SUMMARY line from the stored results.

Memory is the kernel's resident-set peak (VmHWM of the child doing the work, /usr/bin/time's maximum
resident set size for ``prepare``). Run it under the long-job lock with one torch thread, e.g.
``flock /tmp/morec-long.lock python benchmarks/bench_million.py train-inbatch``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
STAGES = ("limits", "raw", "prepare", "train-inbatch", "train-sampled", "eval", "serve")


def _status_kib(field: str) -> int:
    from morec.cost import status_kib

    return status_kib(field) or 0


def _save(args, stage: str, result: dict) -> dict:
    out = Path(args.dir) / args.results
    out.mkdir(parents=True, exist_ok=True)
    result = {**result, "stage": stage, "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "load_average": os.getloadavg()[0]}
    (out / f"{stage}.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result), flush=True)
    return result


def _load(args, stage: str) -> dict | None:
    f = Path(args.dir) / args.results / f"{stage}.json"
    return json.loads(f.read_text()) if f.exists() else None


# --- stages ------------------------------------------------------------------------------------------

def stage_limits(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    torch.mm(a, b)
    best_mm = min(_timed(lambda: torch.mm(a, b)) for _ in range(5))
    src = torch.ones(64 * 2**20)  # 256 MiB
    dst = torch.empty_like(src)
    dst.copy_(src)
    best_copy = min(_timed(lambda: dst.copy_(src)) for _ in range(5))
    return {"threads": args.threads, "gflops": 2 * 2048**3 / best_mm / 1e9,
            "gbps": 2 * src.numel() * 4 / best_copy / 1e9}


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def stage_raw(args) -> dict:
    import pandas as pd

    rng = np.random.default_rng(args.seed)
    lengths = rng.integers(10, 31, size=args.users)  # mean 20
    n = int(lengths.sum())
    users = np.repeat(np.arange(args.users, dtype=np.int64), lengths)
    # popularity ~ 1 / (rank + 10): a long tail, every item possible (repeats are removed by prepare's dedup)
    weights = 1.0 / (np.arange(args.items) + 10.0)
    cdf = np.cumsum(weights / weights.sum())
    items = np.searchsorted(cdf, rng.random(n), side="right").clip(max=args.items - 1).astype(np.int64)
    starts = np.repeat(1_600_000_000 + rng.integers(0, 180 * 86400, size=args.users), lengths)
    within = np.arange(n) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    times = starts + within * 3600
    order = rng.permutation(n)  # a log file is not sorted by user: prepare must sort it
    raw = Path(args.dir) / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"user": users[order], "item": items[order], "timestamp": times[order]}).to_parquet(
        raw / "interactions.parquet", index=False)
    return {"users": args.users, "items": args.items, "interactions": n,
            "bytes": (raw / "interactions.parquet").stat().st_size}


def stage_prepare(args) -> dict:
    out = Path(args.dir) / args.prepare_out
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "morec", "data", "prepare", str(Path(args.dir) / "raw"),
           "--out", str(out), "--format", "table"]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(done.stdout + done.stderr)
    peak_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    cpu = sum(float(re.search(rf"{k} time \(seconds\): ([\d.]+)", done.stderr).group(1)) for k in ("User", "System"))
    manifest = json.loads((out / "manifest.json").read_text())
    log = [line for line in done.stdout.splitlines() if line.startswith("[")]
    return {"seconds": wall, "cpu_seconds": cpu, "peak_rss_mib": peak_kib / 1024, "n_users": manifest["n_users"],
            "n_items": manifest["n_items"], "n_interactions": manifest["n_interactions"], "log": log,
            "command": " ".join(cmd[2:])}


def _train_config(args, loss: str):
    from morec.config import load_config

    run = Path(args.dir) / args.runs / loss
    extra = [f"--train.n_negatives={args.negatives}"] if loss == "sampled" else []
    return load_config(None, [f"--data={Path(args.dir) / 'prepared'}", f"--out={run}", f"--train.loss={loss}",
                              f"--train.batch_size={args.batch}", "--train.epochs=1", f"--train.threads={args.threads}",
                              "--train.device=cpu", "--train.progress=false",
                              f"--train.checkpoint_every_steps={args.checkpoint_steps}", *extra])


class _ChunkDone(Exception):
    pass


def stage_train(args, loss: str) -> dict | None:
    """One epoch, in chunks of ``--chunk-minutes`` (the Trainer's mid-epoch checkpoints carry it on)."""
    import torch

    from morec.checkpoint import atomic_save_tensors, read_checkpoint_meta
    from morec.config import save_config
    from morec.train import Trainer

    t_start = time.perf_counter()
    deadline = t_start + 60 * args.chunk_minutes

    class ChunkedTrainer(Trainer):
        def save_checkpoint(self):
            super().save_checkpoint()
            if time.perf_counter() > deadline:
                raise _ChunkDone

    cfg = _train_config(args, loss)
    run = Path(cfg.out)
    resumed = (run / "checkpoint.json").exists()
    if resumed:
        trainer = ChunkedTrainer.from_checkpoint(run, log=print)
    else:
        trainer = ChunkedTrainer(cfg, log=print)
        run.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run / "config.yaml")
    setup_s = time.perf_counter() - t_start
    trainer._start = time.perf_counter() - trainer.state.elapsed
    chunk_log = run / "chunks.jsonl"
    try:
        mean_loss = trainer.train_epoch(0)
    except _ChunkDone:
        st = trainer.state
        # the weights so far, so that eval / serve can run before the epoch ends (their speed does not
        # depend on how far training got)
        atomic_save_tensors(trainer.model.state_dict(), run / "model.safetensors", {"epoch": "0", "partial": "1"})
        record = {"batches_done": st.batches_done, "of": len(trainer.batches), "epoch_seconds": st.epoch_seconds,
                  "checkpoint_seconds": st.checkpoint_seconds, "targets": trainer.batches.n_targets,
                  "peak_rss_mib": _status_kib("VmHWM") / 1024, "setup_s": setup_s, "load_average": os.getloadavg()[0]}
        with open(chunk_log, "a") as f:
            f.write(json.dumps(record) + "\n")
        print(f"[bench] chunk done: {record}; run the stage again to continue", flush=True)
        return None
    st = trainer.state
    atomic_save_tensors(trainer.model.state_dict(), run / "model.safetensors", {"epoch": "0"})
    chunks = [json.loads(x) for x in chunk_log.read_text().splitlines()] if chunk_log.exists() else []
    peak = max([_status_kib("VmHWM") / 1024] + [c["peak_rss_mib"] for c in chunks])
    n_targets = trainer.batches.n_targets
    return {"loss": loss, "batch_size": args.batch, "n_negatives": args.negatives if loss == "sampled" else None,
            "threads": torch.get_num_threads(), "batches": len(trainer.batches), "targets": n_targets,
            "epoch_seconds": st.epoch_seconds, "checkpoint_seconds": st.checkpoint_seconds,
            "checkpoints": st.serial, "targets_per_s": n_targets / st.epoch_seconds, "mean_loss": mean_loss,
            "chunks": len(chunks) + 1, "setup_s_last_chunk": setup_s, "peak_rss_mib": peak,
            "checkpoint_meta_serial": read_checkpoint_meta(run)["serial"]}


def stage_eval(args) -> dict:
    import torch

    from morec.evaluate import metrics_from_ranks, rank_users
    from morec.runs import load_run

    torch.set_num_threads(args.threads)
    cfg, model, ds = load_run(Path(args.dir) / args.runs / "inbatch")
    users = np.sort(np.random.default_rng(args.seed).choice(ds.n_users, size=min(args.eval_users, ds.n_users),
                                                            replace=False))
    _ = ds.targets("test"), ds.offsets
    rss_before = _status_kib("VmRSS") / 1024
    Path("/proc/self/clear_refs").write_text("5")
    t0 = time.perf_counter()
    ranks = rank_users(model, ds, "test", cfg.model.max_len, cfg.eval.mask_history, cfg.eval.user_batch, users=users)
    secs = time.perf_counter() - t0
    return {"users": len(users), "n_users": ds.n_users, "n_items": ds.n_items, "seconds": secs,
            "users_per_s": len(users) / secs, "scores_per_s": len(users) * ds.n_items / secs,
            "all_users_seconds_extrapolated": secs * ds.n_users / len(users), "threads": torch.get_num_threads(),
            "rss_before_mib": rss_before, "peak_rss_mib": _status_kib("VmHWM") / 1024,
            "test": metrics_from_ranks(ranks, [10]), "evaluate_py": _git_blob("morec/evaluate.py")}


def _git_blob(path: str) -> str:
    done = subprocess.run(["git", "log", "-1", "--format=%h %cI", "--", path], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip()


def stage_serve(args) -> dict:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_serve.py"), "--run", str(Path(args.dir) / args.runs / "inbatch"),
           "--index", "faiss", "--startup-timeout", "900", "--clients", str(args.clients), "--seconds", str(args.serve_seconds), "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode:
        raise SystemExit(done.stdout[-3000:] + done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def partial_epoch(args, loss: str) -> dict | None:
    """An epoch not finished yet: its throughput so far and the epoch time extrapolated from it (the batches
    come in a random order, so each holds the epoch's mean number of targets in expectation)."""
    log = Path(args.dir) / args.runs / loss / "chunks.jsonl"
    if not log.exists():
        return None
    chunks = [json.loads(x) for x in log.read_text().splitlines()]
    last = chunks[-1]
    fraction = last["batches_done"] / last["of"]
    targets_done = last["targets"] * fraction
    return {"fraction": fraction, "targets_per_s": targets_done / last["epoch_seconds"],
            "epoch_seconds": last["epoch_seconds"] / fraction, "peak_rss_mib": max(c["peak_rss_mib"] for c in chunks),
            "batches_done": last["batches_done"], "batches": last["of"], "chunks": len(chunks)}


def summary(args) -> str:
    r = {s: _load(args, s) for s in STAGES}
    parts = ["SUMMARY bench_million"]
    if r["limits"]:
        parts.append(f"1 thread: {r['limits']['gflops']:.0f} GFLOP/s mm, {r['limits']['gbps']:.1f} GB/s copy")
    if r["prepare"]:
        p = r["prepare"]
        parts.append(f"prepare {p['n_users']:,} users / {p['n_items']:,} items / {p['n_interactions']:,} interactions: "
                     f"{p['seconds']:.0f} s, peak {p['peak_rss_mib']:.0f} MiB")
    for loss in ("inbatch", "sampled"):
        t = r[f"train-{loss}"] or partial_epoch(args, loss)
        if t:
            done = "" if t.get("fraction", 1) == 1 else \
                f" (extrapolated from {t['fraction']:.1%} of the epoch)"
            parts.append(f"epoch {loss}: {t['epoch_seconds']:.0f} s{done}, {t['targets_per_s']:,.0f} targets/s, "
                         f"peak {t['peak_rss_mib']:.0f} MiB")
    if r["eval"]:
        e = r["eval"]
        parts.append(f"eval {e['users']:,} users: {e['seconds']:.0f} s ({e['users_per_s']:.0f} users/s, "
                     f"{e['scores_per_s'] / 1e9:.2f} G scores/s), peak {e['peak_rss_mib']:.0f} MiB; all "
                     f"{e['n_users']:,} users ~{e['all_users_seconds_extrapolated'] / 3600:.1f} h (extrapolated)")
    if r["serve"]:
        s = r["serve"]
        parts.append(f"serve faiss {s['items']:,} items: p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms, "
                     f"{s['rps']} req/s, {s['errors']} errors")
    return " | ".join(parts)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("stage", choices=[*STAGES, "all", "summary"])
    p.add_argument("--dir", default="/tmp/morec-million")
    p.add_argument("--users", type=int, default=1_000_000)
    p.add_argument("--items", type=int, default=200_000)
    p.add_argument("--prepare-out", default="prepared", help="prepare: output folder under --dir (training reads "
                   "DIR/prepared)")
    p.add_argument("--runs", default="runs", help="training runs' folder under --dir (a fresh name re-measures "
                   "training without resuming an older epoch; eval and serve read its inbatch run)")
    p.add_argument("--results", default="results", help="results' folder under --dir")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=128, help="training batch (sequences; 128 = the paper's SASRec)")
    p.add_argument("--negatives", type=int, default=64, help="sampled softmax: uniform negatives per target")
    p.add_argument("--checkpoint-steps", type=int, default=500)
    p.add_argument("--chunk-minutes", type=float, default=12.0)
    p.add_argument("--eval-users", type=int, default=50_000)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--serve-seconds", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    stages = [s for s in STAGES if _load(args, s) is None] if args.stage == "all" else [args.stage]
    for stage in stages if args.stage != "summary" else []:
        print(f"[bench] {stage} ({time.strftime('%H:%M:%S')})", flush=True)
        if stage.startswith("train-"):
            result = stage_train(args, stage.split("-", 1)[1])
            if result is None:
                return 3  # a chunk ended: run again
        else:
            result = {"limits": stage_limits, "raw": stage_raw, "prepare": stage_prepare, "eval": stage_eval,
                      "serve": stage_serve}[stage](args)
        _save(args, stage, result)
    print(summary(args), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
