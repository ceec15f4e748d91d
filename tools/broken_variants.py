"""Deliberately broken variants of morec, each with the tests that must catch it: the check that a test's bar is
one a broken model would not clear (not run in CI: the learning tests train for minutes).

For each variant the script copies the package, tests, benchmarks and configs into a scratch folder, applies
the variant's text edits (each must match exactly once, so a variant cannot silently go stale), runs its tests
there and reports whether every one of them failed on an assertion (the full suite passing on the unbroken code
is the control). The last line is a summary; exit status 1 if a variant got
through.

    python tools/broken_variants.py [NAME ...] [--out benchmarks/results/broken_variants.log]
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from scratch_copy import fresh_copy

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Variant:
    why: str
    edits: tuple[tuple[str, str, str], ...]  # (file, text, replacement)
    tests: tuple[str, ...]  # every one must fail


HISTORY_BLIND = (
    ("morec/model.py", "return vecs, self.backbone.batch_states(batch, history)",
     "return vecs, self.backbone.batch_states(batch, history * 0)"),
    ("morec/model.py", "return self.backbone.user_vectors(history_vectors, history > 0, users)",
     "return self.backbone.user_vectors(history_vectors * 0, history > 0, users)"))
BACKBONE_BARS = tuple(f"tests/test_backbones.py::test_backbone_beats_most_popular[{p}]" for p in (
    "gru4rec-bce-40-1.8", "nextitnet-bce-30-1.6", "bert4rec-bce-50-1.5", "bert4rec-inbatch-30-1.7"))

VARIANTS = {
    "history-blind": Variant(
        "the backbone never sees the history (every sequence model then learns popularity at best)",
        HISTORY_BLIND, (*BACKBONE_BARS, "tests/test_movielens.py::test_quickstart_on_movielens")),
    "history-blind-top1": Variant(
        "the same break, under the ML-100K top-1 test (3 minutes)",
        HISTORY_BLIND, ("tests/test_movielens.py::test_quickstart_with_top_layer_training",)),
    "lora-never-trains": Variant(
        "LoRA's low-rank matrices frozen after injection: the top layers stay pretrained",
        (("morec/encoders/lora.py", "    inject_adapter_in_model(config, part)\n",
          "    inject_adapter_in_model(config, part)\n    part.requires_grad_(False)\n"),),
        ("tests/test_cheap_modes.py::test_side_and_lora_learn_far_above_most_popular_and_beat_two_stage",)),
    "side-never-trains": Variant(
        "the side network's weights frozen at their random start",
        (("morec/encoders/side.py", "        self.gates = nn.Parameter(torch.full((len(self.widths) - 1,), -3.0))\n",
          "        self.gates = nn.Parameter(torch.full((len(self.widths) - 1,), -3.0))\n"
          "        self.requires_grad_(False)\n"),),
        ("tests/test_cheap_modes.py::test_side_and_lora_learn_far_above_most_popular_and_beat_two_stage",)),
    "side-top-layer-only": Variant(
        "the side network passes only the top layer's state through",
        (("morec/encoders/side.py", "        for i in range(len(parts) - 2, -1, -1):",
          "        for i in []:"),),
        ("tests/test_cheap_modes.py::test_side_network_reads_every_layer",)),
    "paired-ignores-arm-b": Variant(
        "paired() compares arm A with itself",
        (("morec/stats/paired.py", "    xa, xb = seed_matrix(ranks_a, metric), seed_matrix(ranks_b, metric)",
          "    xa, xb = seed_matrix(ranks_a, metric), seed_matrix(ranks_a, metric)"),),
        ("tests/test_own_data.py::test_walk_through_with_the_python_api",)),
    "new-items-bench-reads-valid": Variant(
        "the new-items bench ranks the new-item users on the validation split",
        (("benchmarks/bench_morec_cost.py", 'return rank_users(model, ds, "test", cfg.model.max_len, users=users)',
          'return rank_users(model, ds, "valid", cfg.model.max_len, users=users)'),),
        ("tests/test_bench_timing.py::test_new_items_pass_scores_only_new_item_users_and_pairs_each_arm_with_ts",)),
    "gpu-check-peak-in-kib": Variant(
        "the CPU peak memory reported in KiB under the MiB name",
        (("benchmarks/gpu_check.py", "return int(line.split()[1]) / 1024", "return int(line.split()[1])"),),
        ("tests/test_gpu_check.py::test_gpu_check_smoke_runs_every_part",)),
}


def apply(work: Path, edits) -> None:
    for file, text, new in edits:
        path = work / file
        src = path.read_text(encoding="utf-8")
        if src.count(text) != 1:
            raise SystemExit(f"broken_variants: {file} holds {src.count(text)} copies of {text!r}, not 1: "
                             "update the variant to the code")
        path.write_text(src.replace(text, new), encoding="utf-8")


def run(name: str, variant: Variant, work: Path) -> tuple[bool, str]:
    """(caught, one report line): every test of the variant failed on the broken copy."""
    fresh_copy(work, ("morec", "tests", "benchmarks", "configs"), ("pyproject.toml",))
    apply(work, variant.edits)
    env = {**os.environ, "PYTHONPATH": str(work), "OMP_NUM_THREADS": "1", "COLUMNS": "400"}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rf", *variant.tests],
                          cwd=work, env=env, capture_output=True, text=True)
    # a failure counts only as an assertion's: an import error or a crash would catch nothing
    failed = {t for t, why in re.findall(r"^FAILED (\S+) - (\S+)", done.stdout, flags=re.M)
              if why.lower().startswith("asser")}  # (pytest may cut it to "Asser...")
    missed = [t for t in variant.tests if t not in failed]
    caught = not missed and done.returncode == 1
    verdict = "caught" if caught else f"NOT caught by {', '.join(missed) or f'(pytest exit {done.returncode})'}"
    # each failure's own words (pytest's short summary line), so the log shows how far the broken model fell
    why = [f"    {t}: {msg}" for t, msg in re.findall(r"^FAILED (\S+) - (.*)$", done.stdout, flags=re.M)]
    return caught, "\n".join([f"{name}: {variant.why}: {len(failed)} of {len(variant.tests)} tests failed, {verdict} "
                              f"({time.perf_counter() - started:.0f} s)", *why])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("names", nargs="*", help=f"variants (default: all): {', '.join(VARIANTS)}")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "morec-broken")
    ap.add_argument("--out", type=Path, help="append the report to this file")
    args = ap.parse_args(argv)
    unknown = [n for n in args.names if n not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    lines, caught = [], 0
    names = args.names or list(VARIANTS)
    for name in names:
        ok, line = run(name, VARIANTS[name], args.work / name)
        caught += ok
        lines.append(line)
        print(line, flush=True)
    lines.append(f"SUMMARY broken_variants | {caught} of {len(names)} broken variants caught by their tests")
    print(lines[-1])
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    return 0 if caught == len(names) else 1


if __name__ == "__main__":
    raise SystemExit(main())
