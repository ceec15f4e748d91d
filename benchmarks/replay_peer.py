"""RePlay's SASRec as a peer of morec's, run on morec's own prepared split and read with morec's metric code.

RePlay and morec pin different torch builds, so RePlay lives in a virtual environment of its own
(:func:`ensure_venv`) and trains in a subprocess (``replay_sasrec_job.py``). The split crosses over as plain
arrays (:func:`export_split`), the job writes back every user's rank per epoch-best, and :func:`run_replay`
turns them into a run directory that `morec compare` reads like one of its own.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from morec.config import load_config, save_config, to_dict
from morec.evaluate import metrics_from_ranks, subset_metrics
from morec.ranks import save_ranks

TORCH = "torch==2.13.0"
REPLAY = "replay-rec[torch]==0.22.0"
DEFAULT_VENV = Path("runs/replay-venv")
MARKER = "morec-replay-peer.json"
SPLIT_FILE = "split.npz"  # what export_split writes and the job reads


def ensure_venv(venv_dir: Path = DEFAULT_VENV) -> Path:
    """RePlay's own virtual environment (created once; the marker file records the pinned versions, so a venv
    with other pins is rebuilt in place). Returns its python."""
    venv_dir = Path(venv_dir)
    python = venv_dir / "bin" / "python"
    marker = venv_dir / MARKER
    want = {"torch": TORCH, "replay": REPLAY}
    if python.exists() and marker.exists() and json.loads(marker.read_text()) == want:
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv_dir)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    # torch first and alone: replay-rec's torch extra would otherwise pick its own torch release
    subprocess.run([*pip, TORCH], check=True)
    subprocess.run([*pip, REPLAY, TORCH], check=True)
    marker.write_text(json.dumps(want))
    return python


def export_split(dataset, out_dir: str | Path) -> Path:
    """Write ``dataset``'s leave-one-out split for the job as plain arrays (``split.npz``): every user's training
    sequence in order (CSR: ``train_offsets``, ``train_items``), the ``valid`` and ``test`` target of each user
    (user index order, morec's item indices 1..n_items), and ``n_items``. The history before the valid target is
    the training sequence; before the test target it is the training sequence plus the valid target."""
    if dataset.split != "loo":
        raise ValueError(f"{dataset.path}: RePlay's peer run needs a leave-one-out split, this one was prepared "
                         f"with prepare.split={dataset.split}; prepare the data with prepare.split=loo")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez(out_dir / SPLIT_FILE, train_offsets=np.asarray(dataset.train_offsets, dtype=np.int64),
             train_items=np.asarray(dataset.train_items, dtype=np.int64),
             valid=dataset.targets("valid"), test=dataset.targets("test"), n_items=np.int64(dataset.n_items))
    return out_dir / SPLIT_FILE


# RePlay's run in morec's terms (config.yaml of the run directory): what `morec compare` reads for its budget
# notes and evaluation settings. The model and its training are RePlay's own (replay_sasrec_job.py); these
# settings describe them, they are not morec's code. eval.ks leads with 10: `morec compare` defaults to hr@K of
# the first arm's first K, and morec's runs keep only K = 10 unless told otherwise.
REPLAY_AS_MOREC = ["--model.dim=64", "--model.n_layers=2", "--model.n_heads=2", "--model.max_len=50",
                   "--model.ffn_mult=1", "--model.dropout=0.2", "--train.loss=ce", "--train.windows=last",
                   "--train.lr=1e-3", "--train.betas=[0.9,0.98]", "--train.weight_decay=0", "--train.batch_size=128",
                   "--eval.ks=[10,5,20]", "--eval.select_metric=ndcg@10", "--eval.mask_history=true"]
JOB = Path(__file__).resolve().parent / "replay_sasrec_job.py"


def run_job(python: Path, job_dir: Path, seed: int, threads: int, patience: int, max_epochs: int,
            log=print) -> dict:
    """The job in RePlay's venv with its threads pinned; its lines are echoed (prefixed) and kept in job.log."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    env.pop("PYTHONPATH", None)  # morec's checkout stays out of RePlay's interpreter
    cmd = [str(python), str(JOB), str(job_dir), str(job_dir), f"--seed={seed}", f"--threads={threads}",
           f"--patience={patience}", f"--max-epochs={max_epochs}"]
    with (job_dir / "job.log").open("w") as keep, subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:
            keep.write(line)
            log(f"[replay seed {seed}] {line.rstrip()}")
    if proc.returncode:
        raise RuntimeError(f"RePlay's job failed (exit {proc.returncode}); its output: {job_dir / 'job.log'}")
    return json.loads((job_dir / "job.json").read_text())


def run_replay(prepared_dir, seed: int, threads: int, work_dir, patience: int = 10, max_epochs: int = 200,
               venv_dir: Path = DEFAULT_VENV, log=print) -> dict:
    """RePlay's SASRec on ``prepared_dir``'s split, one seed, as a morec run directory ``work_dir/replay-s{seed}``
    (ranks.npz, results.json, config.yaml, peer.json), so `morec compare` pairs it with morec's runs user by user.
    Returns a row like bench_fast_sasrec's ``run_arm``: best_epoch (0-based, as morec's), epochs_run,
    seconds_per_epoch (training only), seconds_to_best (from the start of training to the end of the best epoch's
    validation), and valid / test HR@k and NDCG@k for k in 5, 10, 20 from morec's metric code."""
    from morec.data.dataset import PreparedDataset

    dataset = PreparedDataset(prepared_dir)
    python = ensure_venv(venv_dir)
    run_dir = Path(work_dir) / f"replay-s{seed}"
    job_dir = run_dir / "job"
    export_split(dataset, job_dir)
    t0 = time.perf_counter()
    job = run_job(python, job_dir, seed, threads, patience, max_epochs, log)
    results = write_run(run_dir, dataset, job, seed, threads, patience, max_epochs)
    return {"arm": "replay", "seed": seed, "overrides": REPLAY_AS_MOREC, "best_epoch": job["best_epoch"],
            "epochs_run": job["epochs_run"], "seconds_per_epoch": job["seconds_per_epoch"],
            "seconds_to_best": job["seconds_to_best"], "seconds_total": time.perf_counter() - t0,
            "valid": results["valid"], "test": results["test"], "selection": results["selection"],
            "run_dir": str(run_dir)}


def write_run(run_dir: Path, dataset, job: dict, seed: int, threads: int, patience: int, max_epochs: int) -> dict:
    """ranks.npz, results.json and config.yaml as a morec run writes them (metrics from morec's code on the
    job's ranks), and peer.json: which system really trained."""
    valid = np.load(run_dir / "job" / "ranks_valid.npy")
    test = np.load(run_dir / "job" / "ranks_test.npy")
    if valid.shape != (dataset.n_users,) or test.shape != (dataset.n_users,) or valid.min() < 1 or test.min() < 1:
        raise RuntimeError(f"{run_dir / 'job'}: the job's ranks are not one rank >= 1 per user ({dataset.n_users})")
    cfg = load_config(None, [f"--data={dataset.path}", f"--out={run_dir}", f"--train.seed={seed}",
                             f"--train.threads={threads}", f"--train.patience={patience}",
                             f"--train.epochs={max_epochs}", *REPLAY_AS_MOREC])
    save_ranks(run_dir, valid, test)
    save_config(cfg, run_dir / "config.yaml")
    e = cfg.eval
    capped = job["stop_reason"] == "epochs" and job["best_epoch"] == job["epochs_run"] - 1
    results = {
        "best_epoch": job["best_epoch"], "epochs_run": job["epochs_run"],
        "valid": metrics_from_ranks(valid, e.ks),
        "selection": {"metric": e.select_metric, "score": job["selection_score"], "valid_users": dataset.n_users,
                      "users_of": dataset.n_users, "epochs_validated": job["epochs_run"], "valid_from": 0,
                      "valid_every": 1},
        "test": metrics_from_ranks(test, e.ks),
        "test_subsets": subset_metrics(test, dataset, "test", e.ks, e.subsets, e.cold_threshold),
        "seconds_per_epoch": job["seconds_per_epoch"], "seconds_to_best": job["seconds_to_best"],
        "seconds_total": job["seconds_total"], "trainable_parameters": job["trainable_parameters"],
        "processes": 1, "stop_reason": job["stop_reason"], "valid_rising_at_cap": capped, "capped": capped,
        "dataset": dataset.identity(), "config": to_dict(cfg), "peer": peer_note(job)}
    (run_dir / "results.json").write_text(json.dumps(results, indent=2))
    (run_dir / "peer.json").write_text(json.dumps(peer_note(job), indent=2))
    return results


def peer_note(job: dict) -> dict:
    return {"system": f"RePlay {job['replay']} SASRec (replay.models.nn.sequential.SasRec, Lightning "
                      f"{job['lightning']}, torch {job['torch']})",
            "job": "benchmarks/replay_sasrec_job.py",
            "note": "trained by RePlay in its own venv; config.yaml states its settings in morec's terms (64-d, "
                    "2 blocks x 2 heads, max length 50, FFN width 64, dropout 0.2, full CE over each user's latest "
                    "window, Adam lr 1e-3 betas (0.9, 0.98), batch 128); ranks and metrics follow morec's protocol",
            "seed": job["seed"], "threads": job["threads"]}
