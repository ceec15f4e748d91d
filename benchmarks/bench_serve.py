"""Bounded load test of `morec serve`: a tiny trained model served by a real uvicorn process on
loopback, N closed-loop clients (httpx, keep-alive) posting /recommend for T seconds. Prints
requests, throughput, p50 / p99 / max latency and the error count (which must be 0).

    .venv/bin/python benchmarks/bench_serve.py                      # synthetic data, ID SASRec, 8 clients, 3 s
    .venv/bin/python benchmarks/bench_serve.py --items 20000 --clients 8 --seconds 3
    .venv/bin/python benchmarks/bench_serve.py --run RUN_DIR         # an existing run or export directory

Everything stays on 127.0.0.1; the server runs with one torch thread (``--threads``).
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_run(work: Path, users: int, items: int, dim: int, backbone: str) -> Path:
    from morec.config import load_config
    from morec.data.prepare import prepare
    from morec.data.synthetic import SynthConfig, generate
    from morec.train import train

    raw = generate(SynthConfig(n_users=users, n_items=items, n_topics=8, seq_len_min=8, seq_len_max=20, image_size=0, seed=0))
    prepare(raw, work / "prepared", log=lambda s: None)
    out = work / "run"
    cfg = load_config(None, [f"--data={work / 'prepared'}", f"--out={out}", f"--model.dim={dim}", "--model.max_len=20",
                             f"--model.backbone={backbone}", "--train.epochs=1", "--train.threads=1",
                             "--train.progress=false", "--train.checkpoints=false"])
    train(cfg, log=lambda s: None)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", help="serve this run / export directory instead of training a tiny one")
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--items", type=int, default=5000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--backbone", default="sasrec")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--threads", type=int, default=1, help="server torch threads")
    ap.add_argument("--startup-timeout", type=float, default=120.0,
                    help="seconds the server may take to answer /health (a large catalogue's index takes longer)")
    ap.add_argument("--index", default="exact", choices=["exact", "faiss", "auto"], help="morec serve --index")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)

    from morec.recommend import RecommenderService
    from morec.serve import load_test, wait_until_healthy

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run = Path(args.run) if args.run else make_run(Path(tmp), args.users, args.items, args.dim, args.backbone)
        svc = RecommenderService.load(run)
        prep_s = time.perf_counter() - t0
        ids = svc.snapshot.ids[1:]
        bodies = []
        for i in range(200):
            if svc.uses_history:
                bodies.append({"history": [ids[(i * 37 + j * 11) % len(ids)] for j in range(10)], "k": 10})
            bodies.append({"user": svc.user_ids[(i * 13) % len(svc.user_ids)], "k": 10})
        port = free_port()
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        proc = subprocess.Popen([sys.executable, "-m", "morec", "serve", str(run), "--port", str(port),
                                 "--threads", str(args.threads), "--index", args.index], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        url = f"http://127.0.0.1:{port}"
        try:
            try:
                wait_until_healthy(url, proc, timeout=args.startup_timeout)
            except RuntimeError as err:
                raise SystemExit(f"server did not start: {err}") from None
            load_test(url, bodies[:16], clients=2, seconds=0.5)  # warm-up
            stats = load_test(url, bodies, clients=args.clients, seconds=args.seconds)
        finally:
            proc.send_signal(2)
            proc.communicate(timeout=30)
    info = {"items": svc.n_items, "users": len(svc.user_ids), "backbone": svc.cfg.model.backbone,
            "dim": svc.cfg.model.dim, "index": args.index, "setup_s": round(prep_s, 1), "server_threads": args.threads, **stats}
    if args.json:
        print(json.dumps(info))
    else:
        print(f"morec serve, {info['backbone']} d={info['dim']}, {info['items']:,} items, {info['users']:,} users; "
              f"{stats['clients']} clients for {stats['seconds']} s on loopback (server: 1 process, "
              f"{args.threads} torch thread(s); cores: {os.cpu_count()}, load avg {os.getloadavg()[0]:.1f})")
        print(f"  requests {stats['requests']}, ok {stats['ok']}, errors {stats['errors']}, {stats['rps']} req/s")
        print(f"  latency p50 {stats['p50_ms']} ms, p99 {stats['p99_ms']} ms, max {stats['max_ms']} ms")
        if stats["errors"]:
            print(f"  first errors: {stats['first_errors']}")
    if stats["errors"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
