"""Peak memory of the image work done once: the feature pass of a first image run, and building a large image store.

    python benchmarks/bench_image_memory.py [--items 300] [--store-items 20000] [--pretrained efficientnet-lite0]
                                            [--photo-px 600] [--image-size 224] [--work DIR] [--code DIR]

A small shop is generated: ``--items`` articles whose JPEG photos (``--photo-px`` square, colour and stripes carry
the category) are decoded into the image store on first use, users buying by category. Each measurement runs in its
own process and reports that process's peak resident memory (Linux ``VmHWM``, which starts anew at exec):

* ``first run``: ``morec train`` in two-stage mode (``--pretrained``, ImageNet EfficientNet-Lite0 by default) on
  the fresh dataset: the image store is built and every image's features are computed, then 2 epochs;
* ``cached run``: the same training again, the store and the features read from the dataset's cache;
* ``store 300`` / ``store N``: building the image store alone for the shop and for a ``--store-items`` catalogue
  (its items reuse the shop's photo files in turn; every item is still decoded, resized and written).

The last line is the summary: the first run's peak over the cached run's (target: at most 1.5x), and the large
store's peak beside its size on disk and the small store's peak. ``--code DIR`` runs the measurements with the
``morec`` package found in DIR (an older checkout) to compare against.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def peak_kib() -> int:
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith("VmHWM")).split()[1])


def write_shop(raw: Path, n_items: int, n_users: int, photo_px: int, photos: int | None = None) -> None:
    """Orders and articles tables, and one JPEG per article (``photos``: only that many files, reused in turn)."""
    from PIL import Image

    from morec.data.synthetic import SynthConfig, render_item_image, synthesize

    # a flat popularity (alpha 0.3) so that nearly every article is bought and kept by prepare
    raw_data, truth = synthesize(SynthConfig(n_users=n_users, n_items=n_items, n_topics=6, image_size=0,
                                             seq_len_min=6, seq_len_max=15, seed=1, popularity_alpha=0.3))
    (raw / "img").mkdir(parents=True, exist_ok=True)
    files = photos or n_items
    for k in range(files):
        if not (raw / "img" / f"{k}.jpg").exists():
            small = render_item_image(int(truth.item_topic[k]), int(truth.item_seeds[k]), 64)
            Image.fromarray(small).resize((photo_px, photo_px)).save(raw / "img" / f"{k}.jpg", quality=88)
    raw_data.interactions.to_csv(raw / "orders.csv", index=False)
    items = raw_data.items.copy()
    items["photo"] = [f"img/{k % files}.jpg" for k in range(len(items))]
    items.to_csv(raw / "articles.csv", index=False)


def child(args) -> dict:
    """One measurement, in this process; returns its figures with the peak."""
    from morec.data.dataset import PreparedDataset

    quiet = lambda s: None  # noqa: E731
    if args.what == "store":
        from morec.data.images import build_image_store

        t0 = time.perf_counter()
        store = build_image_store(PreparedDataset(args.data), args.image_size, "blank", log=quiet)
        return {"seconds": time.perf_counter() - t0, "store_bytes": store.path.stat().st_size,
                "items": store.n_items, "peak_kib": peak_kib()}
    from morec.config import load_config
    from morec.train import Trainer

    cfg = load_config(None, [f"--data={args.data}", f"--out={args.out}", "--model.encoder.kind=vision",
                             f"--model.encoder.pretrained={args.pretrained}", "--model.encoder.mode=frozen",
                             f"--model.encoder.vision.image_size={args.image_size}", "--train.epochs=2",
                             "--model.dim=32", "--train.progress=false", f"--train.threads={args.threads}"])
    t0 = time.perf_counter()
    r = Trainer(cfg, log=quiet).fit()
    return {"seconds": time.perf_counter() - t0, "seconds_per_epoch": r["seconds_per_epoch"],
            "feature_pass_seconds": r.get("feature_pass_seconds"), "peak_kib": peak_kib()}


def measure(label: str, what: str, data: Path, args, out: Path | None = None) -> dict:
    cmd = [sys.executable, __file__, "--child", what, "--data", str(data), "--out", str(out or data / "run"),
           "--pretrained", args.pretrained, "--image-size", str(args.image_size), "--threads", str(args.threads)]
    env = {**os.environ, "PYTHONPATH": str(args.code)}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode:
        sys.exit(f"{label} failed:\n{done.stderr[-3000:]}")
    row = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"{label:<16} {json.dumps(row)}", flush=True)
    return row


def prepared(work: Path, name: str, n_items: int, n_users: int, photo_px: int, photos: int | None) -> Path:
    from morec.data.formats.registry import read_raw
    from morec.data.prepare import prepare

    raw, out = work / name / "raw", work / name / "prepared"
    if out.exists():
        import shutil

        shutil.rmtree(out)  # a fresh dataset: no store, no features cached
    write_shop(raw, n_items, n_users, photo_px, photos)
    prepare(read_raw(raw, "table", image_column="photo", text_columns="title"), out,
            log=lambda s: None)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--items", type=int, default=300)
    p.add_argument("--users", type=int, default=400)
    p.add_argument("--store-items", type=int, default=20_000)
    p.add_argument("--photo-px", type=int, default=600)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--pretrained", default="efficientnet-lite0")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--work", type=Path, default=Path("/tmp/morec_bench_image_memory"))
    p.add_argument("--code", type=Path, default=ROOT, help="folder whose morec package is measured")
    p.add_argument("--child", choices=["store", "train"], dest="what", help=argparse.SUPPRESS)
    p.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.what:
        print(json.dumps(child(args)))
        return
    shop = prepared(args.work, "shop", args.items, args.users, args.photo_px, None)
    print(f"morec from {args.code}; {args.items} items, {args.photo_px} px JPEGs -> {args.image_size} px, "
          f"{args.pretrained}, {args.threads} threads")
    first = measure("first run", "train", shop, args)
    cached = measure("cached run", "train", shop, args, shop / "run2")
    shop2 = prepared(args.work, "shop2", args.items, args.users, args.photo_px, None)
    small = measure(f"store {args.items}", "store", shop2, args)
    big_data = prepared(args.work, "catalogue", args.store_items, max(args.users, args.store_items),
                        args.photo_px, args.items)
    big = measure(f"store {args.store_items}", "store", big_data, args)
    gib = lambda kib: kib / 2**20  # noqa: E731
    print(f"SUMMARY: first image run (store + feature pass, {args.items} images) peak {gib(first['peak_kib']):.2f} GiB"
          f" = {first['peak_kib'] / cached['peak_kib']:.2f}x the cached-feature run's {gib(cached['peak_kib']):.2f} GiB"
          f" (target <= 1.5x); {big['items']:,}-image store ({big['store_bytes'] / 2**30:.2f} GiB on disk) built at"
          f" peak {gib(big['peak_kib']):.2f} GiB = {big['peak_kib'] / small['peak_kib']:.2f}x the {args.items}-image"
          f" store's {gib(small['peak_kib']):.2f} GiB")


if __name__ == "__main__":
    main()
