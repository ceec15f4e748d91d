"""The fast training recipes, measured side by side on MovieLens-100K (leave-one-out, full ranking):

- ``replay``: RePlay 0.22's SASRec against morec's fast ID SASRec (``configs/ml100k_sasrec_id_fast.yaml``),
  seed by seed back to back in this process; RePlay runs in its own virtual environment made by
  ``replay_peer.py`` on the same prepared split, scored by morec's ranking and metrics;
- ``arms``: each MoRec arm's fast config (``configs/ml100k_sasrec_text_*_fast.yaml``) against its default (the
  budget of ``bench_morec_cost.py``, the paper's setting: BCE with one negative, every window, constant lr);
- ``jobs``: one 3-seed x 3-arm sweep run with ``--jobs 2 --train.threads=1`` and with ``--jobs 1
  --train.threads=2``, back to back.

    python benchmarks/bench_recipes.py [--data data/prepared/ml-100k] [--parts replay,arms,jobs]
        [--id-seeds 1,2,3,4,5] [--arm-seeds 1,2,3] [--work runs/bench-recipes] [--threads 2]

Time to best is wall seconds from the start of training to the end of the best epoch's validation
(``results.json``'s ``seconds_to_best``). A default MoRec arm takes minutes to hours per seed, so its time to
best is its epoch (training and validation), timed here in this process beside the fast runs, times the epochs to
its best in the committed default runs (five seeds; a seeded run's epochs do not depend on how fast the machine
was). Accuracy verdicts pair the fast runs with those committed default runs, user by user, with seeds and users
resampled (morec.stats), Holm over every test of a part.

Finished rows are kept in ``WORK/rows.jsonl`` and finished runs are read back, so the parts can run in chunks;
the summary says when each row was measured. The last line is one summary of ratios.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_morec_cost import ARMS as DEFAULT_ARMS, BUDGET as DEFAULT_BUDGET  # noqa: E402

from morec.compare import comparisons  # noqa: E402
from morec.config import load_config, to_dict  # noqa: E402
from morec.data.dataset import PreparedDataset  # noqa: E402
from morec.recipes import fast  # noqa: E402
from morec.stats.seeds import mean_std  # noqa: E402
from morec.train import Trainer  # noqa: E402

ML100K_RUNS = ROOT / "docs/results/ml100k/runs"
MODES_RUNS = ROOT / "benchmarks/results/morec_modes_cost"
COMMITTED = ROOT / "benchmarks/results/fast_recipes"
SWEEP_SASREC = "encoder.mlp_layers-0_encoder.fusion-none_backbone-sasrec_batch_size-128_weight_decay-0.1_seed-{s}"


def committed_default(arm: str) -> list[Path]:
    """The committed default runs (seeds 1-5) of an arm: the published sweep for IDRec and TS, the modes
    benchmark's for the others."""
    seeds = range(1, 6)
    if arm == "idrec":
        return [ML100K_RUNS / ("encoder.kind-id_encoder.mode-e2e_" + SWEEP_SASREC.format(s=s)) for s in seeds]
    if arm == "ts":
        return [ML100K_RUNS / ("encoder.kind-text_encoder.mode-frozen_" + SWEEP_SASREC.format(s=s)) for s in seeds]
    return [MODES_RUNS / arm.removesuffix("-study") / f"seed-{s}" for s in seeds]


# arm -> (its fast config, its key in bench_morec_cost's default arms)
FAST_CONFIGS = {"idrec": ("ml100k_sasrec_id_fast.yaml", "idrec"), "ts": ("ml100k_sasrec_text_ts_fast.yaml", "ts"),
                "side": ("ml100k_sasrec_text_side_fast.yaml", "side"),
                "side-id": ("ml100k_sasrec_text_side_id_fast.yaml", "side+id"),
                "top1": ("ml100k_sasrec_text_top1_fast.yaml", "top1"),
                # Side + ID at the recipe `morec study` gives every arm (morec.recipes), beside its own faster one
                "side-id-study": (None, "side+id")}


def fast_config(arm: str, overrides: list[str]):
    name, default_key = FAST_CONFIGS[arm]
    if name:
        return load_config(str(ROOT / "configs" / name), overrides)
    content = ["--model.encoder.pretrained=minilm", "--model.encoder.text.fields=[title]"]
    return load_config(None, [*fast("sasrec"), *content, *DEFAULT_ARMS[default_key], *overrides])


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = Path(args.work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.rows_file = Path(args.rows) if args.rows else self.work / "rows.jsonl"
        self.rows = [json.loads(x) for x in self.rows_file.read_text().splitlines()] if self.rows_file.exists() else []
        self._dataset = None

    @property
    def dataset(self) -> PreparedDataset:  # loaded on first training: a summary needs only the rows and runs
        if self._dataset is None:
            self._dataset = PreparedDataset(self.args.data)
        return self._dataset

    def row(self, part: str, arm: str, seed: int) -> dict | None:
        return next((r for r in self.rows if (r["part"], r["arm"], r["seed"]) == (part, arm, seed)), None)

    def keep(self, row: dict) -> dict:
        row["measured"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        self.rows.append(row)
        with self.rows_file.open("a") as f:
            f.write(json.dumps(row) + "\n")
        return row

    # --- training ----------------------------------------------------------------------------------------------
    def train(self, cfg) -> dict:
        return Trainer(cfg, self.dataset, log=lambda m: print(m, flush=True) if self.args.verbose else None).fit()

    def fast_run(self, arm: str, seed: int) -> dict:
        part = "replay" if arm == "idrec" else "arms"
        done = self.row(part, arm, seed)
        if done:
            return done
        out = self.work / f"{arm}-fast-s{seed}"
        cfg = fast_config(arm, [f"--data={self.args.data}", f"--out={out}", f"--train.seed={seed}",
                                 f"--train.threads={self.args.threads}", "--train.progress=false",
                                 "--train.tensorboard=false", "--train.checkpoints=false"])
        res = self.train(cfg)
        print(f"[fast {arm} s{seed}] best epoch {res['best_epoch']} of {res['epochs_run']}, "
              f"{res['seconds_to_best']:.1f} s to best, test HR@10 {res['test']['hr@10']:.4f}", flush=True)
        return self.keep({"part": part, "arm": arm, "seed": seed, "recipe": "fast", "dir": str(out),
                          **{k: res[k] for k in ("best_epoch", "epochs_run", "seconds_per_epoch", "seconds_to_best")},
                          "valid_rising_at_cap": res.get("valid_rising_at_cap"), "test": res["test"]})

    def default_epoch(self, arm: str) -> dict:
        """One epoch (training and validation) of the arm's default recipe, timed here."""
        done = self.row("arms", arm, 0)
        if done:
            return done
        out = self.work / f"{arm}-default-epoch"
        cfg = load_config(None, [f"--data={self.args.data}", f"--out={out}", "--train.seed=1",
                                 *DEFAULT_BUDGET, *DEFAULT_ARMS[FAST_CONFIGS[arm][1]], "--train.epochs=2",
                                 f"--train.threads={self.args.threads}", "--train.checkpoints=false",
                                 "--train.checkpoint_every_steps=0", "--train.tensorboard=false"])
        self.train(cfg)
        # the second epoch: the first may pay a one-off cache build
        seconds = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])["seconds"]
        epochs = [json.loads((d / "results.json").read_text())["best_epoch"] + 1 for d in committed_default(arm)]
        print(f"[default {arm}] {seconds:.2f} s per epoch with validation; epochs to best {epochs}", flush=True)
        return self.keep({"part": "arms", "arm": arm, "seed": 0, "recipe": "default", "epoch_seconds": seconds,
                          "epochs_to_best": epochs, "seconds_to_best": seconds * statistics.mean(epochs)})

    # --- the parts ---------------------------------------------------------------------------------------------
    def replay_part(self) -> None:
        from replay_peer import run_replay

        for seed in self.args.id_seeds:
            if not self.row("replay", "replay", seed):
                res = run_replay(self.args.data, seed=seed, threads=self.args.threads, work_dir=self.work / "replay")
                self.keep({**res, "part": "replay", "arm": "replay", "seed": seed, "dir": res["run_dir"]})
            self.fast_run("idrec", seed)

    def arms_part(self) -> None:
        self.default_epoch("idrec")  # the yardstick of Side + ID's goal: IDRec's default time to best
        for arm in self.args.arms:
            self.default_epoch(arm)
            for seed in self.args.arm_seeds:
                self.fast_run(arm, seed)

    def jobs_part(self) -> None:
        for jobs, threads in ((1, 2), (2, 1)):
            key = f"jobs{jobs}x{threads}"
            if self.row("jobs", key, 0):
                continue
            out = (self.work / f"sweep-{key}").resolve()
            spec = self.work / f"jobs_sweep_{key}.yaml"
            spec.write_text(yaml.safe_dump(jobs_sweep(self.args.data, out), sort_keys=False))
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "morec", "sweep", str(spec.resolve()), f"--jobs={jobs}",
                            f"--train.threads={threads}"], check=True, cwd=ROOT,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
            wall = time.perf_counter() - started
            print(f"[jobs] {jobs} run(s) at once x {threads} thread(s): {wall:.0f} s", flush=True)
            self.keep({"part": "jobs", "arm": key, "seed": 0, "jobs": jobs, "threads": threads, "seconds": wall})


def jobs_sweep(data: str, out: Path) -> dict:
    """The jobs measurement's sweep: IDRec, TS and TS + ID at the shared fast recipe (morec.recipes), 3 seeds each."""
    cfg = load_config(None, [f"--data={Path(data).resolve()}", *fast("sasrec"), "--model.encoder.pretrained=minilm",
                             "--model.encoder.text.fields=[title]", "--train.progress=false",
                             "--train.tensorboard=false", "--train.checkpoints=false"])
    base = {k: v for k, v in to_dict(cfg).items() if k != "out"}
    grid = {"model.encoder.kind,model.encoder.mode,model.encoder.fusion": [["id", "e2e", "none"],
                                                                           ["text", "frozen", "none"],
                                                                           ["text", "frozen", "add"]]}
    return {"base": base, "grid": grid, "seeds": [1, 2, 3], "out": str(out)}


def run_dir(row: dict) -> Path:
    """A row's run directory: where it trained, else its committed copy (config, results, ranks; no weights)."""
    where = Path(row["dir"])
    return where if (where / "results.json").exists() else COMMITTED / where.name


def spread(values: list[float], digits: int = 4) -> str:
    mean, sd = mean_std(values)
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


def verdicts(pairs: list[tuple[str, list, list]]) -> dict[str, dict]:
    """Each (name, runs A, runs B) compared on HR@10 and NDCG@10, as one Holm family."""
    pairs = [p for p in pairs if p[1] and p[2]]
    if not pairs:
        return {}
    done = comparisons([(a, b) for _, a, b in pairs], metrics=["hr@10", "ndcg@10"], allow_unequal_budgets=True)
    return {name: result for (name, _, _), result in zip(pairs, done)}


def verdict_words(result: dict) -> str:
    return "; ".join(f"{m.upper()} {100 * c.improv:+.2f}% [{100 * c.improv_ci[0]:+.2f}%, {100 * c.improv_ci[1]:+.2f}%] "
                     f"Holm p {c.p_adj:.3f}: {c.verdict}" for m, c in result["paired"].items())


def summarise(bench: Bench) -> str:
    rows, out = bench.rows, []
    by = lambda part, arm: sorted((r for r in rows if (r["part"], r["arm"]) == (part, arm) and r["seed"] > 0),  # noqa: E731
                                  key=lambda r: r["seed"])
    replay, fast_id = by("replay", "replay"), by("replay", "idrec")
    if replay and fast_id:
        checks = verdicts([("RePlay -> morec fast", [run_dir(r) for r in replay], [run_dir(r) for r in fast_id]),
                           ("morec default -> fast", committed_default("idrec"), [run_dir(r) for r in fast_id])])
        t_r, t_f = statistics.mean(r["seconds_to_best"] for r in replay), statistics.mean(r["seconds_to_best"] for r in fast_id)
        for name, rs in (("RePlay 0.22 SASRec", replay), ("morec fast ID SASRec", fast_id)):
            print(f"{name:<22} {len(rs)} seeds | s/epoch {spread([r['seconds_per_epoch'] for r in rs], 2)} | best epoch "
                  f"{spread([r['best_epoch'] for r in rs], 1)} | s to best {spread([r['seconds_to_best'] for r in rs], 1)} | "
                  f"test HR@10 {spread([r['test']['hr@10'] for r in rs])} NDCG@10 {spread([r['test']['ndcg@10'] for r in rs])}")
        for name, result in checks.items():
            print(f"  {name}: {verdict_words(result)}")
        hr = lambda rs, m: statistics.mean(r["test"][m] for r in rs)  # noqa: E731
        out.append(f"ID fast vs RePlay ({len(fast_id)}/{len(replay)} seeds): HR@10 {hr(fast_id, 'hr@10'):.4f} vs "
                   f"{hr(replay, 'hr@10'):.4f}, NDCG@10 {hr(fast_id, 'ndcg@10'):.4f} vs {hr(replay, 'ndcg@10'):.4f}, "
                   f"{t_f / t_r:.2f}x RePlay's time to best ({t_f:.1f} s vs {t_r:.1f} s)")
    arm_results = [(arm, by("arms", arm), bench.row("arms", arm, 0)) for arm in FAST_CONFIGS if arm != "idrec"]
    arm_results = [x for x in arm_results if x[1] and x[2]]
    checks = verdicts([(arm, committed_default(arm), [run_dir(r) for r in rs]) for arm, rs, _ in arm_results])
    for arm, rs, default in arm_results:
        t = statistics.mean(r["seconds_to_best"] for r in rs)
        ratio = t / default["seconds_to_best"]
        capped = sum(bool(r.get("valid_rising_at_cap")) for r in rs)
        print(f"{arm:<8} default: {default['epoch_seconds']:.2f} s/epoch x {statistics.mean(default['epochs_to_best']):.1f} "
              f"epochs to best = {default['seconds_to_best']:.0f} s | fast ({len(rs)} seeds): best epoch "
              f"{spread([r['best_epoch'] for r in rs], 1)}, s to best {spread([r['seconds_to_best'] for r in rs], 1)} = "
              f"{ratio:.2f}x default | test HR@10 {spread([r['test']['hr@10'] for r in rs])} NDCG@10 "
              f"{spread([r['test']['ndcg@10'] for r in rs])} | still rising at the cap: {capped} of {len(rs)}")
        words = verdict_words(checks[arm]) if arm in checks else "no verdict"
        print(f"  default -> fast: {words}")
        short = "; ".join(f"{m.upper()} {c.verdict}" for m, c in checks[arm]["paired"].items()) if arm in checks else "?"
        out.append(f"{arm} fast {ratio:.2f}x default time to best ({short})")
    id_default, side_id = bench.row("arms", "idrec", 0), by("arms", "side-id")
    if id_default and side_id:
        t = statistics.mean(r["seconds_to_best"] for r in side_id)
        print(f"Side + ID fast: {t:.1f} s to best; IDRec default: {id_default['epoch_seconds']:.2f} s/epoch x "
              f"{statistics.mean(id_default['epochs_to_best']):.1f} epochs = {id_default['seconds_to_best']:.0f} s")
        out.append(f"side-id fast {t / id_default['seconds_to_best']:.2f}x IDRec's default time to best")
    jobs = {r["arm"]: r for r in rows if r["part"] == "jobs"}
    if {"jobs1x2", "jobs2x1"} <= set(jobs):
        a, b = jobs["jobs1x2"]["seconds"], jobs["jobs2x1"]["seconds"]
        print(f"jobs: 3 arms x 3 seeds, jobs 1 x 2 threads {a:.0f} s, jobs 2 x 1 thread {b:.0f} s")
        out.append(f"sweep jobs 2 x 1 thread {b / a:.2f}x the wall time of jobs 1 x 2 threads ({b:.0f} s vs {a:.0f} s)")
    return "SUMMARY bench_recipes | " + " | ".join(out)


def seed_list(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s.strip()]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="data/prepared/ml-100k")
    p.add_argument("--parts", default="replay,arms,jobs", help="which parts this call runs (replay,arms,jobs)")
    p.add_argument("--arms", default="ts,side,side-id,top1,side-id-study", help="MoRec arms of the arms part")
    p.add_argument("--id-seeds", type=seed_list, default="1,2,3,4,5")
    p.add_argument("--arm-seeds", type=seed_list, default="1,2,3")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--work", default="runs/bench-recipes")
    p.add_argument("--summary-only", action="store_true", help="print the summary of the rows kept so far")
    p.add_argument("--rows", help="the rows file (default WORK/rows.jsonl); the committed one: "
                   "benchmarks/results/fast_recipes_rows.jsonl, with --summary-only")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    args.arms = [a for a in args.arms.split(",") if a]
    unknown = [a for a in args.arms if a not in FAST_CONFIGS or a == "idrec"]
    if unknown:
        p.error(f"--arms names {', '.join(unknown)}; the MoRec arms are "
                f"{', '.join(a for a in FAST_CONFIGS if a != 'idrec')}")
    bench = Bench(args)
    import torch

    print(f"[bench] torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    if not args.summary_only:
        parts = args.parts.split(",")
        for name, run in (("arms", bench.arms_part), ("replay", bench.replay_part), ("jobs", bench.jobs_part)):
            if name in parts:
                run()
    print(summarise(bench), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
