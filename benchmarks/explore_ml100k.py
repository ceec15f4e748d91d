"""Run named override sets x seeds on MovieLens-100K, one after another in this process; append one JSON
line per finished run (its best epoch, seconds, valid and test metrics, what selection saw). Resumable:
pairs already in OUT are skipped; no new run starts after DEADLINE seconds.

    python benchmarks/explore_ml100k.py OUT.jsonl SPEC.json [DEADLINE_SECONDS]

SPEC.json: {"seeds": [1], "configs": {"name": ["--train.loss=ce", ...], ...}} (the fast
recipe's search: benchmarks/results/fast_recipe_search_spec.json, its results fast_recipe_search_seed1.jsonl).
"""
import json
import sys
import time
from pathlib import Path

from morec.config import load_config
from morec.data.dataset import PreparedDataset
from morec.train import Trainer

out = Path(sys.argv[1])
spec = json.loads(Path(sys.argv[2]).read_text())
done = {(json.loads(line)["name"], json.loads(line)["seed"]) for line in out.read_text().splitlines()} if out.exists() else set()
ds = PreparedDataset("data/prepared/ml-100k")
deadline = time.time() + float(sys.argv[3]) if len(sys.argv) > 3 else float("inf")
for name, overrides in spec["configs"].items():
    for seed in spec["seeds"]:
        if (name, seed) in done:
            continue
        if time.time() > deadline:
            sys.exit(0)
        cfg = load_config(None, ["--data=data/prepared/ml-100k", f"--out=/tmp/morec-explore/{name}-{seed}",
                                 "--train.progress=false", "--train.threads=1", "--train.checkpoints=false",
                                 f"--train.seed={seed}"] + overrides)
        r = Trainer(cfg, ds, log=lambda m: None).fit()
        rec = {"name": name, "seed": seed, "ov": overrides,
               **{k: r[k] for k in ("best_epoch", "epochs_run", "seconds_per_epoch", "seconds_to_best",
                                    "seconds_total", "valid", "test", "selection")}}
        print(name, seed, r["best_epoch"], r["epochs_run"], round(r["seconds_to_best"], 1), r["test"], flush=True)
        with out.open("a") as f:
            f.write(json.dumps(rec) + "\n")
