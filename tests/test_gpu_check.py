"""benchmarks/gpu_check.py --smoke: the prepared GPU check runs end to end on the CPU, so it cannot rot
while no GPU is lent."""
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from metric_reference import plain_metrics

REPO = Path(__file__).resolve().parents[1]


def test_gpu_check_smoke_runs_every_part(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--smoke", f"--work={tmp_path}",
                           f"--keep-run={tmp_path / 'kept'}"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[-1].startswith("SUMMARY gpu_check | cpu (smoke) |") and lines[-1].endswith("failed: none")
    results = json.loads(lines[-2])["results"]
    assert set(results) == {"sasrec-id", "minilm-top2", "minilm-e2e", "vision-efficientnet-lite0", "vision-resnet50", "ddp",
                            "minilm-e2e-run"}
    wall = time.perf_counter() - started
    ram_mib = int(Path("/proc/meminfo").read_text().split()[1]) / 1024  # MemTotal, kB
    for name, r in results.items():
        if "step_s" in r:
            # a step is a fraction of the whole check; the CPU peak is the process's resident set, in MiB: above
            # what torch alone keeps resident (~200 MiB), below the machine (bytes or KiB read as MiB would not be)
            assert 0 < r["step_s"] < wall and 150 < r["peak_mib"] < ram_mib and math.isfinite(r["loss"]), (name, r)
    assert results["sasrec-id"]["epochs_run"] == 2 and results["ddp"]["processes"] == 1
    # the reported HR@10 is the share of the ddp run's scored test users ranked in the top 10, each rank a real
    # position in the catalogue (a NaN or out-of-range metric, or one read from the wrong split, would differ)
    ddp_test = np.load(tmp_path / "ddp" / "ranks.npz")["test"]
    scored = [int(x) for x in ddp_test if x > 0]
    n_items = json.loads((tmp_path / "ddp" / "results.json").read_text())["dataset"]["n_items"]
    assert scored and all(1 <= x <= n_items for x in scored)
    assert results["ddp"]["test_hr@10"] == round(plain_metrics(ddp_test, 10)["hr@10"], 4)
    # the whole-encoder E2E run keeps a summary bench_morec_cost --e2e-run reads: the e2e arm's own config
    kept = json.loads((tmp_path / "kept" / "results.json").read_text())
    assert kept["config"]["model"]["encoder"]["mode"] == "e2e" and kept["epochs_run"] == results["minilm-e2e-run"]["epochs_run"] == 1
    assert (tmp_path / "kept" / "ranks.npz").exists()
