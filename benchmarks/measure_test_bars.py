"""Measure, over seeds, the values that the suite's learning tests hold to a bar, so that each bar can sit below
the lowest seed with room and still far above what a broken model reaches (most-popular: 1.0x).

    python benchmarks/measure_test_bars.py --parts backbones,quickstart,top1,cheap-modes [--seeds 42,1,2,3]

Each run appends one JSON row to ``--out`` (default ``benchmarks/results/test_bars.jsonl``): the test it serves,
the setting, the seed, and test NDCG@10 / HR@10 with their ratio to most-popular on the same split. The last line
is a summary: per test setting, the lowest and highest ratio over the seeds. Seed 42 is the training default, the
seed the tests themselves use. Not a timing: run it at any priority.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def most_popular(ds) -> dict:
    from morec.evaluate import metrics_from_ranks, most_popular_ranks

    return metrics_from_ranks(most_popular_ranks(ds, "test"), [10])


def row(test: str, setting: str, seed: int, results: dict, popular: dict) -> dict:
    """One measured run: its test metrics and their ratio to most-popular's on the same split."""
    return {"test": test, "setting": setting, "seed": seed, "best_epoch": results["best_epoch"],
            "epochs": results["config"]["train"]["epochs"],
            **{m: round(results["test"][m], 4) for m in ("hr@10", "ndcg@10")},
            **{f"{m}/popular": round(results["test"][m] / popular[m], 3) for m in ("hr@10", "ndcg@10")}}


def backbones(seeds: list[int], work: Path):
    """tests/conftest.py's synth_prepared, each backbone as test_backbone_beats_most_popular trains it."""
    import conftest
    from morec.data.dataset import PreparedDataset
    from morec.data.prepare import prepare
    from morec.data.synthetic import SynthConfig, generate
    from morec.train import train
    from test_backbones import BACKBONE_BARS, backbone_run

    data = work / "synth"
    prepare(generate(SynthConfig(**conftest.SYNTH)), data, log=lambda s: None)
    ds = PreparedDataset(data)
    popular = most_popular(ds)
    for backbone, loss, epochs, _ in BACKBONE_BARS:
        for seed in seeds:
            cfg = backbone_run(data, work / f"{backbone}-{loss}-{seed}", backbone, loss, epochs, f"--train.seed={seed}")
            yield row("test_backbones.py::test_backbone_beats_most_popular", f"{backbone} {loss}", seed,
                      train(cfg, ds, log=lambda s: None), popular)


def quickstart(seeds: list[int], work: Path, data_root: Path, morec: str):
    """tests/test_movielens.py's two quickstart tests: ``ts`` (both arms) or ``top1`` (its MoRec arm), each at
    that test's budget."""
    import test_movielens
    from morec import api
    from morec.data.dataset import PreparedDataset

    test, budget, arms = {
        "ts": ("test_quickstart_on_movielens", test_movielens.QUICKSTART_BUDGET, None),
        "top1": ("test_quickstart_with_top_layer_training", test_movielens.TOP1_BUDGET, ["MoRec (MiniLM, E2E top-1)"]),
    }[morec]
    popular = None
    for seed in seeds:
        out = api.quickstart(root=data_root, runs=work / f"{morec}-{seed}", morec=morec, log=lambda s: None,
                             overrides=[*budget, "--train.progress=false", f"--train.seed={seed}"])
        popular = popular or most_popular(PreparedDataset(Path(data_root) / "prepared" / "ml-100k"))
        for arm in arms or out["results"]:
            yield row(f"test_movielens.py::{test}", "top-1" if morec == "top1" else arm, seed, out["results"][arm],
                      popular)


def cheap_modes(seeds: list[int], work: Path):
    """tests/test_cheap_modes.py's trained fixture (TS, side, LoRA on the real MiniLM, 8 epochs) for each seed."""
    import test_cheap_modes as tcm
    from morec.data.dataset import PreparedDataset
    from morec.data.prepare import prepare
    from morec.data.synthetic import synthesize
    from morec.train import Trainer
    from test_text_encoder import QUIET, WORLD_DATA

    prepare(synthesize(WORLD_DATA)[0], work / "text", log=QUIET)
    world = {"data": work / "text", "ds": PreparedDataset(work / "text"), "bert": None}
    popular = most_popular(world["ds"])
    for seed in seeds:
        for name, extra in tcm.MODES:
            cfg = tcm.run_config(world, work / f"{name}-{seed}", *tcm.BUDGET, f"--train.seed={seed}", *extra,
                                 model="minilm")
            yield row("test_cheap_modes.py::test_side_and_lora_learn_far_above_most_popular_and_beat_two_stage",
                      name, seed, Trainer(cfg, world["ds"], log=QUIET).fit(), popular)


def summary(rows: list[dict]) -> str:
    by = defaultdict(list)
    for r in rows:
        by[(r["test"].split("::")[0], r["setting"])].append(r)
    span = lambda rs, m: f"{min(r[m] for r in rs):.2f}-{max(r[m] for r in rs):.2f}"  # noqa: E731
    return "SUMMARY measure_test_bars | HR@10 and NDCG@10 / most-popular's, lowest-highest over seeds | " + "; ".join(
        f"{t} {s}: {span(rs, 'hr@10/popular')}, {span(rs, 'ndcg@10/popular')} ({len(rs)} seeds)"
        for (t, s), rs in by.items())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", default="backbones,quickstart,top1,cheap-modes")
    ap.add_argument("--seeds", default="42,1,2,3")
    ap.add_argument("--data-root", type=Path, default=ROOT / "data", help="quickstart's --root (MovieLens-100K)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "test_bars.jsonl")
    ap.add_argument("--summary-only", action="store_true", help="print the summary of the rows in --out, train nothing")
    args = ap.parse_args(argv)
    if args.summary_only:
        print(summary_of(args.out))
        return 0
    import torch

    torch.set_num_threads(1)  # as the suite runs (tests/conftest.py)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        parts = {"backbones": lambda: backbones(seeds, Path(tmp) / "b"),
                 "quickstart": lambda: quickstart(seeds, Path(tmp) / "q", args.data_root, "ts"),
                 "top1": lambda: quickstart(seeds, Path(tmp) / "t", args.data_root, "top1"),
                 "cheap-modes": lambda: cheap_modes(seeds, Path(tmp) / "c")}
        for part in args.parts.split(","):
            for row in parts[part]():
                rows.append(row)
                print(json.dumps(row), flush=True)
                with open(args.out, "a", encoding="utf-8") as f:
                    f.write(json.dumps(row) + "\n")
    print(summary(rows))
    return 0


def summary_of(path: Path) -> str:
    """The summary line of a rows file (``--summary-only``)."""
    return summary([json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()])


if __name__ == "__main__":
    raise SystemExit(main())
