"""Full-ranking evaluation of a large synthetic catalogue: seconds and peak memory.

    python benchmarks/bench_eval_large.py [--users 50000] [--items 200000] [--mean-len 20] [--threads N]

A prepared dataset of random interactions (popularity-skewed items, 5..35 per user, mean ~20) is
written directly in the prepared-dataset layout (seq_offsets.npy, seq_items.npy, seq_times.npy,
items.parquet, users.parquet, manifest.json): no text or image generator, a few seconds. An
untrained ID SASRec (the default config: 64-d, 2 blocks, max_len 50) then ranks every user's test
item against every item with history masking, in a fresh child process, so that its memory figures
belong to the evaluation alone.

In the same child, after the evaluation: the matrix multiplication alone (every user's final vector,
computed beforehand, times the item table, in the evaluation's own blocks into one reused output
buffer) is timed, and the ratio evaluation / matmul is printed (goal: <= 3). The ranks of the first
``--check-users`` users are also recomputed by the plain definition (a fresh score matrix per block,
history masked, 1 + number of other items scoring >= the target or NaN) and must be identical.

Memory is the resident set size read by the kernel (torch allocations included; tracemalloc would
miss them): VmHWM from /proc/self/status after resetting it through /proc/self/clear_refs just
before the evaluation (so it is the evaluation's own peak), and ru_maxrss from
resource.getrusage (the process's lifetime peak) before and after. psutil is not needed.
The last line is one summary of the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def write_dataset(out: Path, n_users: int, n_items: int, mean_len: int, seed: int) -> dict:
    """Random interactions written straight into the prepared layout; item 0 is padding."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    lo = max(5, mean_len - 15)
    lengths = rng.integers(lo, 2 * mean_len - lo + 1, size=n_users)  # mean = mean_len, min >= 5
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    n = int(offsets[-1])
    # popularity ~ 1 / (rank + 10): a long tail like real catalogues, every item still possible
    weights = 1.0 / (np.arange(n_items) + 10.0)
    cdf = np.cumsum(weights / weights.sum())
    items = (np.searchsorted(cdf, rng.random(n), side="right").clip(max=n_items - 1) + 1).astype(np.int32)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "seq_offsets.npy", offsets)
    np.save(out / "seq_items.npy", items)
    np.save(out / "seq_times.npy", np.arange(n, dtype=np.int64))
    pd.DataFrame({"item": np.arange(1, n_items + 1).astype(str)}).to_parquet(out / "items.parquet", index=False)
    pd.DataFrame({"user": np.arange(n_users).astype(str)}).to_parquet(out / "users.parquet", index=False)
    manifest = {
        "format_version": 1, "name": f"synthetic-eval-{n_users}x{n_items}", "n_users": n_users, "n_items": n_items,
        "n_interactions": n, "split": "leave-one-out: last = test, second-to-last = valid, rest = train",
        "text_columns": [], "has_images": False, "image_root": None,
        "prepare": {"note": "written directly by benchmarks/bench_eval_large.py", "seed": seed},
        "filters": [], "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest


def child(args) -> None:
    """Runs in a fresh process: load, build, then measure the evaluation alone."""
    import torch

    from morec.config import load_config
    from morec.cost import reset_peak_memory, status_kib
    from morec.data.dataset import PreparedDataset
    from morec.evaluate import metrics_from_ranks, rank_users
    from morec.model import build_model

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ds = PreparedDataset(args.dir)
    cfg = load_config(None, [f"--data={args.dir}", "--out=/tmp/unused", f"--model.max_len={args.max_len}"])
    model = build_model(cfg.model, ds).eval()
    _ = ds.targets("test"), ds.offsets  # dataset arrays are loaded before the baseline
    rss_before = status_kib("VmRSS")
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    hwm_reset = reset_peak_memory(torch.device("cpu"))
    times, ranks = [], None
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        ranks = rank_users(model, ds, "test", cfg.model.max_len, mask_history=not args.no_mask,
                           user_batch=cfg.eval.user_batch)
        times.append(time.perf_counter() - t0)
    hwm = status_kib("VmHWM") if hwm_reset else None
    maxrss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    n_items = ds.n_items
    block = max(1, min(cfg.eval.user_batch, (1 << 26) // (n_items + 1)))
    matmul, states_seconds, identical = matmul_only(model, ds, cfg.model.max_len, block, ranks, args)
    print(json.dumps({
        "matmul_seconds": matmul, "user_state_seconds": states_seconds, "identical": identical,
        "threads": torch.get_num_threads(), "seconds": times, "rss_before_kib": rss_before,
        "peak_rss_eval_kib": hwm, "maxrss_before_kib": maxrss_before, "maxrss_after_kib": maxrss_after,
        "score_block_users": block, "score_block_mib": block * (n_items + 1) * 4 / 2**20,
        "metrics": metrics_from_ranks(ranks, [10]), "n_users": ds.n_users, "n_items": n_items,
        "n_interactions": int(ds.offsets[-1]),
    }))


def matmul_only(model, ds, max_len: int, block: int, ranks, args) -> tuple[float, float, bool]:
    """(seconds of the score multiplication alone over every user, seconds to compute every user's
    vector, whether the plain definition gives the same ranks for the first --check-users users)."""
    import numpy as np
    import torch

    from morec.data.batches import trim_left_padding
    from morec.evaluate import csr_rows, left_padded

    offsets, hist_items = ds.history_csr("test")
    targets = ds.targets("test")
    with torch.no_grad():
        inputs = model.encode_all_items()
        table_t = model.backbone.item_output(inputs).T
        t0 = time.perf_counter()
        vecs = []
        for start in range(0, ds.n_users, block):
            chunk = np.arange(start, min(start + block, ds.n_users))
            (hist,) = trim_left_padding(left_padded(offsets, hist_items, chunk, max_len))
            hist = torch.from_numpy(hist)
            vecs.append(model.user_vectors(torch.from_numpy(chunk), hist, inputs[hist]))
        states_seconds = time.perf_counter() - t0
        vecs = torch.cat(vecs)
        out = torch.empty(block, ds.n_items + 1)
        t0 = time.perf_counter()
        for start in range(0, ds.n_users, block):
            v = vecs[start:start + block]
            torch.matmul(v, table_t, out=out[:len(v)])
        matmul = time.perf_counter() - t0
        identical = True
        for start in range(0, min(args.check_users, ds.n_users), block):  # the plain definition
            chunk = np.arange(start, min(start + block, args.check_users, ds.n_users))
            scores = vecs[chunk] @ table_t
            scores[:, 0] = float("-inf")
            t = torch.from_numpy(targets[chunk])
            if not args.no_mask:
                row, _, items = csr_rows(offsets, hist_items, chunk)
                row, items = torch.from_numpy(row), torch.from_numpy(items.astype(np.int64))
                keep = items != t[row]
                scores[row[keep], items[keep]] = float("-inf")
            target = scores.gather(1, t[:, None])
            plain = ((scores >= target) | scores.isnan()).sum(1)
            plain = torch.where(target[:, 0].isnan(), scores.shape[1] - 1, plain)
            identical &= bool(np.array_equal(plain.numpy(), ranks[chunk]))
    return matmul, states_seconds, identical


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=50_000)
    p.add_argument("--items", type=int, default=200_000)
    p.add_argument("--mean-len", type=int, default=20, help="mean interactions per user (5..2*mean-5)")
    p.add_argument("--max-len", type=int, default=50, help="SASRec input length")
    p.add_argument("--dir", default="", help="dataset directory (default: /tmp/morec-bench-eval-USERSxITEMS)")
    p.add_argument("--repeats", type=int, default=1, help="evaluations timed in the child (median reported)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads in the child (0: torch's default)")
    p.add_argument("--no-mask", action="store_true", help="evaluate without history masking")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--check-users", type=int, default=2000, help="users whose ranks are checked against the plain definition")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.dir = args.dir or f"/tmp/morec-bench-eval-{args.users}x{args.items}-{args.mean_len}"
    if args.child:
        child(args)
        return 0

    out = Path(args.dir)
    manifest_file = out / "manifest.json"
    t0 = time.perf_counter()
    if manifest_file.exists() and json.loads(manifest_file.read_text())["n_users"] == args.users \
            and json.loads(manifest_file.read_text())["n_items"] == args.items:
        print(f"[bench] reusing {out}", flush=True)
    else:
        write_dataset(out, args.users, args.items, args.mean_len, args.seed)
        print(f"[bench] wrote {out} in {time.perf_counter() - t0:.1f} s", flush=True)
    print(f"[bench] {os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)

    cmd = [sys.executable, __file__, "--child", f"--dir={out}", f"--max-len={args.max_len}",
           f"--repeats={args.repeats}", f"--threads={args.threads}", f"--check-users={args.check_users}"] + (["--no-mask"] if args.no_mask else [])
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stdout + done.stderr, file=sys.stderr)
        return done.returncode
    r = json.loads(done.stdout.strip().splitlines()[-1])
    secs = statistics.median(r["seconds"])
    mib = lambda kib: None if kib is None else kib / 1024  # noqa: E731
    peak = mib(r["peak_rss_eval_kib"])
    print(f"[bench] {r['n_users']:,} users x {r['n_items']:,} items, {r['n_interactions']:,} interactions; "
          f"untrained ID SASRec (64-d, 2 blocks, max_len {args.max_len}), history masked: {not args.no_mask}, "
          f"torch threads {r['threads']}")
    print(f"[bench] one full-ranking evaluation of all users: {secs:.1f} s (runs: "
          f"{', '.join(f'{t:.1f}' for t in r['seconds'])}); {r['n_users'] / secs:,.0f} users/s, "
          f"{r['n_users'] * r['n_items'] / secs / 1e9:.2f} G user-item scores/s")
    ratio = secs / r["matmul_seconds"]
    print(f"[bench] the score matrix multiplication alone (same blocks, vectors precomputed): "
          f"{r['matmul_seconds']:.1f} s = {r['n_users'] * r['n_items'] * 2 * 64 / r['matmul_seconds'] / 1e9:.1f} GFLOP/s; "
          f"evaluation / matmul = {ratio:.2f}x (goal <= 3x); every user's vector (SASRec forward) alone "
          f"{r['user_state_seconds']:.1f} s")
    print(f"[bench] ranks of the first {min(args.check_users, r['n_users']):,} users identical to the plain "
          f"definition (fresh score matrix, >= target or NaN counts): {'yes' if r['identical'] else 'NO'}")
    print(f"[bench] score blocks of {r['score_block_users']} users = {r['score_block_mib']:.0f} MiB of float32 scores each")
    print(f"[bench] RSS before evaluation {mib(r['rss_before_kib']):.0f} MiB; peak RSS during evaluation "
          + (f"{peak:.0f} MiB (VmHWM after reset), +{peak - mib(r['rss_before_kib']):.0f} MiB"
             if peak is not None else "n/a (clear_refs not writable)")
          + f"; ru_maxrss {mib(r['maxrss_before_kib']):.0f} -> {mib(r['maxrss_after_kib']):.0f} MiB")
    print(f"[bench] untrained-model sanity: test HR@10 {r['metrics']['hr@10']:.5f} (random ~ {10 / r['n_items']:.5f})")
    peak_txt = f"{peak:.0f}" if peak is not None else f"{mib(r['maxrss_after_kib']):.0f}(ru_maxrss)"
    print(f"SUMMARY bench_eval_large | {r['n_users']} users x {r['n_items']} items, "
          f"mask={not args.no_mask}, threads={r['threads']} | eval {secs:.2f} s | matmul alone "
          f"{r['matmul_seconds']:.2f} s | ratio {ratio:.2f}x | ranks identical {r['identical']} | peak RSS {peak_txt} MiB "
          f"(+{(peak or mib(r['maxrss_after_kib'])) - mib(r['rss_before_kib']):.0f} MiB over "
          f"{mib(r['rss_before_kib']):.0f} MiB before) | score block {r['score_block_users']} users "
          f"({r['score_block_mib']:.0f} MiB)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
