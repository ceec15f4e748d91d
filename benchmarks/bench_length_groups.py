"""What grouping a training step's item texts by padding (``morec.encoders.modality.length_groups``) saves over
the fixed-count chunks of similar length the text encoder used before, on MovieLens-100K titles with MiniLM-L6:
token positions per pass over every item, and the seconds of one forward + backward pass over every item (what
an E2E / top-n SASRec step at batch 128 encodes), the two groupings alternated in one process.

    python benchmarks/bench_length_groups.py [--data data/prepared/ml-100k] [--modes e2e,top] [--reps 3]

The last line is one summary with each mode's ratio (fixed chunks / length groups).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from morec.config import load_config
from morec.data.dataset import PreparedDataset
from morec.encoders import build_item_encoder
from morec.encoders.modality import length_groups


def fixed_chunks(sizes: torch.Tensor, chunk: int) -> list[torch.Tensor]:
    """The previous grouping: items sorted by length, cut every ``chunk`` items."""
    return list(torch.argsort(sizes, stable=True).split(chunk))


def step_seconds(enc, items: torch.Tensor, groups: list[torch.Tensor]) -> float:
    enc.zero_grad(set_to_none=True)
    t0 = time.perf_counter()
    pooled = torch.cat([enc._mode.pooled_items(enc, items[g]) for g in groups])
    pooled.square().mean().backward()
    return time.perf_counter() - t0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="data/prepared/ml-100k")
    p.add_argument("--modes", default="e2e,top")
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    ds = PreparedDataset(args.data)
    parts = []
    for mode in args.modes.split(","):
        cfg = load_config(None, [f"--data={args.data}", "--model.encoder.kind=text", f"--model.encoder.mode={mode}",
                                 "--model.encoder.train_layers=2", "--model.encoder.pretrained=minilm",
                                 "--model.encoder.text.fields=[title]"]).model.encoder
        enc = build_item_encoder(cfg, ds, 64)
        enc.train()
        items = torch.arange(1, ds.n_items + 1)
        sizes = enc.item_sizes(items)
        grouping = {"fixed": fixed_chunks(sizes, enc.chunk), "groups": length_groups(sizes, enc.chunk)}
        positions = {k: sum(int(sizes[g].max()) * len(g) for g in gs) for k, gs in grouping.items()}
        step_seconds(enc, items, grouping["groups"])  # warm-up: caches, allocator
        times = {k: [] for k in grouping}
        for _ in range(args.reps):
            for k, gs in grouping.items():
                times[k].append(step_seconds(enc, items, gs))
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"[{mode}] {len(items)} items, real tokens {int(sizes.sum())}; fixed chunks of {enc.chunk}: "
              f"{len(grouping['fixed'])} groups, {positions['fixed']} positions, {med['fixed']:.2f} s; length groups: "
              f"{len(grouping['groups'])} groups, {positions['groups']} positions, {med['groups']:.2f} s "
              f"(runs: {times})", flush=True)
        parts.append(f"{mode}: positions {positions['fixed'] / positions['groups']:.2f}x fewer, "
                     f"forward+backward over every item {med['fixed'] / med['groups']:.2f}x faster "
                     f"({med['fixed']:.2f} s -> {med['groups']:.2f} s)")
    print("SUMMARY bench_length_groups | " + " | ".join(parts), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
