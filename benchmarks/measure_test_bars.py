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

# (backbone, loss, epochs): tests/test_backbones.py::test_backbone_beats_most_popular's settings (dim 32, lr 1e-2)
TOP1_EPOCHS = 6
BACKBONES = [("gru4rec", "bce", 40), ("nextitnet", "bce", 30), ("bert4rec", "bce", 50), ("bert4rec", "inbatch", 30)]


def ratios(ds, results: dict) -> dict:
    from morec.evaluate import metrics_from_ranks, most_popular_ranks

    popular = metrics_from_ranks(most_popular_ranks(ds, "test"), [10])
    return {m: round(results["test"][m], 4) for m in ("hr@10", "ndcg@10")} | {
        f"{m}/popular": round(results["test"][m] / popular[m], 3) for m in ("hr@10", "ndcg@10")}


def backbones(seeds: list[int], work: Path):
    """tests/conftest.py's synth_prepared, each backbone as test_backbone_beats_most_popular trains it."""
    from morec.config import load_config
    from morec.data.dataset import PreparedDataset
    from morec.data.prepare import prepare
    from morec.data.synthetic import SynthConfig, generate
    from morec.train import train

    data = work / "synth"
    prepare(generate(SynthConfig(n_users=800, n_items=300, n_topics=6, seq_len_min=8, seq_len_max=20, image_size=0,
                                 seed=1)), data, log=lambda s: None)
    ds = PreparedDataset(data)
    for backbone, loss, epochs in BACKBONES:
        for seed in seeds:
            cfg = load_config(None, [f"--data={data}", f"--out={work / f'{backbone}-{loss}-{seed}'}", "--model.dim=32",
                                     "--train.progress=false", f"--train.epochs={epochs}",
                                     f"--train.patience={epochs}", "--train.lr=1e-2", f"--model.backbone={backbone}",
                                     f"--train.loss={loss}", f"--train.seed={seed}"])
            r = train(cfg, ds, log=lambda s: None)
            yield {"test": "test_backbones.py::test_backbone_beats_most_popular", "setting": f"{backbone} {loss}",
                   "seed": seed, "best_epoch": r["best_epoch"], "epochs": epochs, **ratios(ds, r)}


def quickstart(seeds: list[int], work: Path, data_root: Path):
    """tests/test_movielens.py::test_quickstart_on_movielens: the README's quickstart at 8 epochs, both arms."""
    from morec import api
    from morec.data.dataset import PreparedDataset

    for seed in seeds:
        out = api.quickstart(root=data_root, runs=work / f"quickstart-{seed}", morec="ts", log=lambda s: None,
                             overrides=["--train.epochs=8", "--train.lr=3e-3", "--train.progress=false",
                                        f"--train.seed={seed}"])
        ds = PreparedDataset(Path(data_root) / "prepared" / "ml-100k")
        for arm, r in out["results"].items():
            yield {"test": "test_movielens.py::test_quickstart_on_movielens", "setting": arm, "seed": seed,
                   "best_epoch": r["best_epoch"], "epochs": 8, **ratios(ds, r)}


def top1(seeds: list[int], work: Path, data_root: Path):
    """tests/test_movielens.py::test_quickstart_with_top_layer_training: quickstart --morec top1 at 6 epochs."""
    from morec import api
    from morec.data.dataset import PreparedDataset

    for seed in seeds:
        out = api.quickstart(root=data_root, runs=work / f"top1-{seed}", morec="top1", log=lambda s: None,
                             overrides=[f"--train.epochs={TOP1_EPOCHS}", "--train.progress=false",
                                        f"--train.seed={seed}"])
        ds = PreparedDataset(Path(data_root) / "prepared" / "ml-100k")
        r = out["results"]["MoRec (MiniLM, E2E top-1)"]
        yield {"test": "test_movielens.py::test_quickstart_with_top_layer_training", "setting": "top-1", "seed": seed,
               "best_epoch": r["best_epoch"], "epochs": TOP1_EPOCHS, **ratios(ds, r)}


def cheap_modes(seeds: list[int], work: Path):
    """tests/test_cheap_modes.py's trained fixture (TS, side, LoRA on the real MiniLM, 8 epochs) for each seed."""
    import test_cheap_modes as tcm
    from morec.data.dataset import PreparedDataset
    from morec.data.prepare import prepare
    from morec.data.synthetic import SynthConfig, synthesize
    from morec.train import Trainer
    from test_text_encoder import QUIET

    raw, _ = synthesize(SynthConfig(n_users=500, n_items=160, n_topics=6, n_new_items=18, seq_len_min=8,
                                    seq_len_max=20, image_size=0, seed=3))
    prepare(raw, work / "text", log=QUIET)
    world = {"data": work / "text", "ds": PreparedDataset(work / "text"), "bert": None}
    for seed in seeds:
        for name, extra in tcm.MODES:
            cfg = tcm.run_config(world, work / f"{name}-{seed}", *tcm.BUDGET, f"--train.seed={seed}", *extra,
                                 model="minilm")
            r = Trainer(cfg, world["ds"], log=QUIET).fit()
            yield {"test": "test_cheap_modes.py::test_side_and_lora_learn_far_above_most_popular_and_beat_two_stage",
                   "setting": name, "seed": seed, "best_epoch": r["best_epoch"], "epochs": 8, **ratios(world["ds"], r)}


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
                 "quickstart": lambda: quickstart(seeds, Path(tmp) / "q", args.data_root),
                 "top1": lambda: top1(seeds, Path(tmp) / "t", args.data_root),
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
