"""Training throughput with 1 vs N processes (torchrun, gloo on CPU / NCCL on GPU) and checkpoint cost.

    .venv/bin/python benchmarks/bench_distributed.py                      # CPU: 1 vs 2 processes, 1 thread each
    .venv/bin/python benchmarks/bench_distributed.py --device cuda --procs 1 --precision bf16

Each configuration is one `torchrun --standalone -m morec train` on the same synthetic dataset with the same
global batch; throughput = training targets per epoch / training seconds per epoch (evaluation excluded),
from the run's results.json. Checkpoint figures: the size and write time of the run's own checkpoint, and
of a large-catalogue one (--big-items x --dim ID table + AdamW moments), written with morec.checkpoint.
The last line is a one-line summary.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def prepare(root: Path, users: int, items: int) -> Path:
    from morec.data.prepare import prepare as prepare_raw
    from morec.data.synthetic import SynthConfig, generate

    out = root / "prepared"
    raw = generate(SynthConfig(n_users=users, n_items=items, n_topics=12, seq_len_min=10, seq_len_max=40,
                               image_size=0, seed=0))
    prepare_raw(raw, out, log=lambda s: None)
    return out


def n_targets(data: Path, max_len: int, batch_size: int) -> int:
    from morec.data.batches import make_batches
    from morec.data.dataset import PreparedDataset

    return make_batches(PreparedDataset(data), True, max_len, batch_size, 1).n_targets


def run(procs: int, data: Path, out: Path, args) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}", "-m", "morec",
           "train", f"--data={data}", f"--out={out}", f"--model.dim={args.dim}", f"--model.max_len={args.max_len}",
           f"--train.batch_size={args.batch_size}", f"--train.epochs={args.epochs}", "--train.patience=100",
           f"--train.threads={args.threads}", f"--train.device={args.device}", f"--train.precision={args.precision}",
           "--train.progress=false", "--json"]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"torchrun with {procs} processes failed:\n{done.stderr[-4000:]}")
    results = json.loads((out / "results.json").read_text())
    results["wall"] = time.perf_counter() - t0
    return results


def big_checkpoint(run_dir: Path, n_items: int, dim: int) -> tuple[int, float]:
    """Bytes and seconds of one checkpoint of an n_items x dim ID table with AdamW state."""
    import torch

    from morec.checkpoint import flatten_optimizer, rng_state, save_checkpoint

    table = torch.nn.Embedding(n_items + 1, dim)
    opt = torch.optim.AdamW(table.parameters())
    table.weight.sum().backward()
    opt.step()
    tensors, index = flatten_optimizer(opt.state_dict())
    tensors.update({f"model.{k}": v for k, v in table.state_dict().items()})
    rng_tensors, rng_info = rng_state()
    tensors.update(rng_tensors)
    times = []
    for serial in range(3):
        t0 = time.perf_counter()
        info = save_checkpoint(run_dir, tensors, {"serial": serial, "optimizer": index, "rng": rng_info})
        times.append(time.perf_counter() - t0)
    return info["bytes"], min(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=3000)
    p.add_argument("--items", type=int, default=2000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--max-len", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=128, help="global batch, split over the processes")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="fp32")
    p.add_argument("--big-items", type=int, default=1_000_000)
    p.add_argument("--work", help="folder for data and runs (default: a temporary one)")
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.work or tmp)
        root.mkdir(parents=True, exist_ok=True)
        data = prepare(root, args.users, args.items)
        targets = n_targets(data, args.max_len, args.batch_size)
        print(f"data: {args.users} users, {args.items} items, {targets:,} training targets per epoch; "
              f"global batch {args.batch_size}, {args.threads} thread(s) per process, device {args.device}, "
              f"precision {args.precision}; CPUs on this machine: {os.cpu_count()}")
        rows = {}
        for procs in args.procs:
            r = run(procs, data, root / f"run{procs}", args)
            rows[procs] = r
            print(f"{procs} process(es): {r['seconds_per_epoch']:.2f} s/epoch -> {targets / r['seconds_per_epoch']:,.0f} "
                  f"targets/s | test ndcg@10 {r['test']['ndcg@10']:.4f} | checkpoint {r['checkpoint_bytes'] / 2**20:.2f} MiB "
                  f"in {r['checkpoint_seconds'] * 1e3:.0f} ms | wall {r['wall']:.0f} s")
        big_bytes, big_s = big_checkpoint(root / "big", args.big_items, args.dim)
        print(f"checkpoint of a {args.big_items:,} x {args.dim} ID table + AdamW moments: {big_bytes / 2**20:.0f} MiB "
              f"written (atomic, fsynced) in {big_s:.2f} s = {big_bytes / 2**20 / big_s:.0f} MiB/s")

    base = rows[args.procs[0]]
    parts = [f"{n}p {targets / r['seconds_per_epoch']:,.0f} t/s" for n, r in rows.items()]
    speedup = ", ".join(f"x{base['seconds_per_epoch'] / r['seconds_per_epoch']:.2f} with {n}p"
                        for n, r in rows.items() if n != args.procs[0])
    drift = max(abs(r["test"]["ndcg@10"] - base["test"]["ndcg@10"]) for r in rows.values())
    print(f"SUMMARY bench_distributed {args.device}: " + " | ".join(parts) + (f" ({speedup})" if speedup else "")
          + f" | test ndcg@10 max diff {drift:.4f} | run checkpoint {base['checkpoint_bytes'] / 2**20:.2f} MiB "
          f"{base['checkpoint_seconds'] * 1e3:.0f} ms | {args.big_items:,}-item checkpoint {big_bytes / 2**20:.0f} MiB "
          f"{big_s:.2f} s")


if __name__ == "__main__":
    main()
