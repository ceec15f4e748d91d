"""One short GPU check (about 5 minutes on one H100): E2E vision SASRec with ResNet50 and Swin-T at 224 px
(random weights, no download) on synthetic data; images per second and peak GPU memory for fp32 vs bf16,
with / without gradient checkpointing, deduplicated vs every-position encoding.

    python benchmarks/gpu_vision_check.py                 # on the GPU machine
    python benchmarks/gpu_vision_check.py --smoke         # tiny sizes on CPU (~4 min): checks the script works

The synthetic catalogue is small on purpose (``--items 400`` 224 px images, written and decoded once in
about 10 s on the GPU machine's CPUs): a batch of 16 users x 13 positions touches at most ~400 items, so
a larger catalogue changes nothing measured and only costs lent device time (a first version generated
3,000 images and spent its whole slot on that). A configuration that runs out of GPU memory is reported as OOM and the check goes on. Compare with the
paper's Table 6 (HM, SASRec, E2E): ResNet50 80 GB on 4 x V100-32G, Swin-T 157 GB on 4 x A100-40G
(their batch and sequence settings; memory summed over GPUs), 83 / 107 minutes per epoch.
The last line is a JSON summary.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from itertools import product
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_vision_cpu import measure, synthetic  # noqa: E402

MODELS = {"resnet50": "timm:resnet50", "swin-t": "timm:swin_tiny_patch4_window7_224"}
PAPER_TABLE6 = {"resnet50": "31M params, 91G FLOPs, 83 min/epoch, 80G GPU memory, 4 x V100-32G",
                "swin-t": "34M params, 96G FLOPs, 107 min/epoch, 157G GPU memory, 4 x A100-40G"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny sizes on CPU, 1 step each: does the script work?")
    p.add_argument("--batch", type=int, default=16, help="users per batch")
    p.add_argument("--max-len", type=int, default=13, help="the paper's image datasets keep the latest 13")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--users", type=int, default=300)
    p.add_argument("--items", type=int, default=400)
    p.add_argument("--models", default="resnet50,swin-t")
    p.add_argument("--work", default="/tmp/morec-gpu-vision-data")
    args = p.parse_args()
    if args.smoke:
        device, users, items, batch, max_len, steps, warmup = "cpu", 40, 40, 1, 2, 1, 0
        torch.set_num_threads(1)
    else:
        if not torch.cuda.is_available():
            raise SystemExit("no CUDA device; use --smoke to check the script on CPU")
        device, users, items, batch, max_len, steps, warmup = ("cuda", args.users, args.items, args.batch,
                                                              args.max_len, args.steps, args.warmup)
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32 here; bf16 is the fast path
        torch.backends.cudnn.allow_tf32 = False
    t0 = time.perf_counter()
    data = synthetic(Path(args.work), 224, users, items, max_len + 1)
    print(f"data: {data} ({time.perf_counter() - t0:.0f} s)", flush=True)
    name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu (smoke)"
    rows = []
    for model_name in args.models.split(","):
        print(f"--- {model_name} ({PAPER_TABLE6[model_name]} in the paper)", flush=True)
        for precision, checkpointing, dedup in product(("fp32", "bf16"), (False, True), (True, False)):
            if args.smoke and precision == "bf16" and (checkpointing or not dedup):
                continue  # bf16 convolutions are ~10x slower than fp32 on CPUs without bf16 units: one suffices
            spec = dict(data=data, model=MODELS[model_name], image_size=224, batch_size=batch, max_len=max_len,
                        precision=precision, checkpointing=checkpointing, dedup=dedup, steps=steps, warmup=warmup,
                        device=device, channels_last=model_name == "resnet50" and device == "cuda")
            label = f"{model_name:8s} {precision} ckpt={str(checkpointing):5s} dedup={str(dedup):5s}"
            try:
                row = measure(**spec)
            except torch.cuda.OutOfMemoryError:
                row = {"model": model_name, "precision": precision, "checkpointing": checkpointing, "dedup": dedup,
                       "oom": True}
                print(f"{label}  OOM", flush=True)
            else:
                mem = row.get("peak_gpu_mib", row.get("peak_rss_mib"))
                print(f"{label}  step {row['step_s']:.3f} s  {row['images_per_s']:8.1f} img/s "
                      f"({row['images_per_step']} img/step, {row['positions_per_s']:.0f} positions/s)  "
                      f"peak {'GPU' if device == 'cuda' else 'RSS'} {mem} MiB", flush=True)
            row["model"] = model_name
            rows.append(row)
            if device == "cuda":
                torch.cuda.empty_cache()
    print(json.dumps({"check": "gpu-vision", "device": name, "torch": torch.__version__, "batch_users": batch,
                      "max_len": max_len, "seconds": round(time.perf_counter() - t0), "rows": rows}))


if __name__ == "__main__":
    main()
