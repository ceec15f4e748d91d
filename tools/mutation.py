"""Mutation testing of morec's correctness core with mutmut 3 (not run in CI: each module takes minutes).

For each module group below the script copies the package and the tests into a scratch folder, writes the
``[tool.mutmut]`` table that limits mutmut to the group's files and to its fast tests, runs ``mutmut run``
there and tallies the outcome per group. Mutants judged equivalent (no test can tell them apart: the program
computes the same thing) are listed with the reason in ``tools/mutation_equivalent.txt``; the score is
killed / (all - equivalent). Run it under the shared lock, at low priority:

    flock /work/heavy.lock nice -n 19 python tools/mutation.py [group ...] [--out benchmarks/results/mutation_score.log]

The scratch folder lives outside the repository (``--work``, default $TMPDIR/morec-mutation) so that the
copied ``mutants/`` tree never lands in git.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from scratch_copy import fresh_copy

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENT_FILE = ROOT / "tools" / "mutation_equivalent.txt"


@dataclass(frozen=True)
class Group:
    files: tuple[str, ...]  # modules mutated
    tests: tuple[str, ...]  # the fast tests that pin them down
    functions: tuple[str, ...] = ()  # only these functions' mutants (empty: every function in the files)


GROUPS = {
    "ranking": Group(("morec/evaluate.py", "morec/ranks.py"),
                     ("tests/test_metrics.py", "tests/test_ranking_properties.py", "tests/test_ranking_reference.py")),
    "split": Group(("morec/data/prepare.py",),
                   ("tests/test_split_values.py", "tests/test_split_edges.py",
                    "tests/test_split_properties.py"),  # (test_prepare: a minute a run)
                   ("filter_interactions", "time_cuts", "time_split", "_drop_idle_users", "_draw_new_items",
                    "_hold_out_new_test_items", "split_positions", "hold_out_new_items")),
    "losses": Group(("morec/losses.py",), ("tests/test_loss_values.py", "tests/test_loss_edges.py", *(f"tests/test_losses.py::test_{t}" for t in (
        "inbatch_logq_on_a_hand_computed_case", "sampled_softmax_logq_on_a_hand_computed_case",
        "inbatch_masks_the_users_own_items", "inbatch_on_sequences_masks_every_own_position",
        "popularity_sampler_follows_training_counts", "losses_need_what_they_read",
        "seen_mask_is_each_users_training_items")))),  # (its training runs take minutes per mutant)
    "stats": Group(("morec/stats/paired.py", "morec/stats/pvalues.py", "morec/stats/bootstrap.py",
                    "morec/stats/family.py", "morec/stats/design.py"),
                   ("tests/test_stats_values.py", "tests/test_stats_edges.py",
                    *(f"tests/test_verdict_stats.py::test_{t}" for t in (
                        "holm_matches_statsmodels_and_a_hand_worked_family",
                        "identical_differences_and_few_users_get_the_exact_p",
                        "no_hits_and_rank_zero_users_raise_no_warnings"))),  # (the report / compare tests train runs)
                   ("sign_flip", "exact_sign_flip", "_signed_sums", "from_count", "until_clear", "holm", "adjust",
                    "paired", "_user_level", "_set_p", "seed_matrix", "mde", "seeds_needed", "hierarchical")),
    "catalog": Group(("morec/catalog.py",), ("tests/test_catalog_file.py",),
                     ("catalog_signature", "catalog_lock", "read_added", "load_added", "save_added", "append_added")),
}

# mutmut's exit-code statuses, counted as killed: a test failed, the mutant hung or crashed its process
KILLED = {"killed", "timeout", "segfault", "caught by type check"}


def mutmut_table(group: Group) -> str:
    """The ``[tool.mutmut]`` table of one group (TOML, lists of strings)."""
    q = lambda xs: "[" + ", ".join(f'"{x}"' for x in xs) + "]"  # noqa: E731
    return ("[tool.mutmut]\n"
            f'source_paths = ["morec"]\n'
            f"only_mutate = {q(group.files)}\n"
            f"pytest_add_cli_args_test_selection = {q(group.tests)}\n"
            f'pytest_add_cli_args = ["-q", "-p", "no:cacheprovider", "-x"]\n'
            # torch's thread pools are not fork-safe: workers fork from a server that never ran a test
            'process_isolation = "forkserver"\n'
            "use_git_change_detection = false\n")


def existing(tests: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(t for t in tests if (ROOT / t.split("::")[0]).exists())


def prepare_workdir(work: Path, group: Group) -> None:
    """A fresh copy of the package and tests, with the group's mutmut table as its only pyproject."""
    fresh_copy(work, ("morec", "tests"))
    (work / "pyproject.toml").write_text(
        (ROOT / "pyproject.toml").read_text(encoding="utf-8").split("[tool.mutmut]")[0] + "\n"
        + mutmut_table(Group(group.files, existing(group.tests), group.functions)),
        encoding="utf-8")


def mutant_patterns(group: Group) -> list[str]:
    """mutmut names a mutant ``morec.module.x_function__mutmut_N`` (methods: ``xǁClassǁmethod__mutmut_N``)."""
    mods = [f.removesuffix(".py").replace("/", ".") for f in group.files]
    if not group.functions:
        return [f"{m}.*" for m in mods]
    return [f"{m}.x_{fn}__mutmut_*" for m in mods for fn in group.functions]


def run_group(name: str, group: Group, work: Path, max_children: int) -> dict[str, str]:
    """{mutant name: status} of one group, from a fresh mutmut run in ``work``."""
    prepare_workdir(work, group)
    env = {**os.environ, "PYTHONPATH": str(work), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    mutmut = [sys.executable, "-m", "mutmut"]
    subprocess.run([*mutmut, "run", "--max-children", str(max_children), *mutant_patterns(group)],
                   cwd=work, env=env, check=False)
    out = subprocess.run([*mutmut, "results", "--all", "true"], cwd=work, env=env, check=True,
                         capture_output=True, text=True).stdout
    statuses = dict(re.findall(r"^\s+(\S+): (.+)$", out, flags=re.M))
    wanted = [re.compile(p.replace(".", r"\.").replace("*", ".*") + "$") for p in mutant_patterns(group)]
    return {k: v.strip() for k, v in statuses.items() if any(w.match(k) for w in wanted)}


def read_equivalent(path: Path = EQUIVALENT_FILE) -> dict[str, str]:
    """{mutant name: why it is equivalent} from lines ``name  # reason`` (blank lines and # lines skipped)."""
    if not path.exists():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, why = line.partition("#")
            out[name.strip()] = why.strip()
    return out


def summary(name: str, statuses: dict[str, str], equivalent: dict[str, str]) -> tuple[list[str], float]:
    """(report lines, score) of one group: killed / non-equivalent mutants, and every live non-equivalent one."""
    judged = {k: v for k, v in statuses.items() if k not in equivalent}
    killed = sorted(k for k, v in judged.items() if v in KILLED)
    alive = sorted(k for k in judged if k not in killed)
    score = len(killed) / len(judged) if judged else 1.0
    n_eq = len(statuses) - len(judged)
    lines = [f"{name}: {len(statuses)} mutants, {n_eq} equivalent, {len(killed)} of {len(judged)} non-equivalent "
             f"killed = {score:.1%}"]
    lines += [f"  alive: {k} ({statuses[k]})" for k in alive]
    return lines, score


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("groups", nargs="*", help=f"groups to run: {', '.join(GROUPS)} (default: all)")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "morec-mutation")
    ap.add_argument("--out", type=Path, help="append the summary to this file")
    ap.add_argument("--max-children", type=int, default=1)
    ap.add_argument("--goal", type=float, default=0.85)
    args = ap.parse_args(argv)
    unknown = [g for g in args.groups if g not in GROUPS]
    if unknown:
        ap.error(f"unknown group(s) {', '.join(unknown)}; known: {', '.join(GROUPS)}")
    equivalent = read_equivalent()
    report, ok = [], True
    for name in args.groups or list(GROUPS):
        statuses = run_group(name, GROUPS[name], args.work / name, args.max_children)
        lines, score = summary(name, statuses, equivalent)
        ok &= score >= args.goal
        report += lines
        print("\n".join(lines), flush=True)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            f.write("\n".join(report) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
