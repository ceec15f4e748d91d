"""The `morec` command. Each subcommand is a thin layer over morec.api."""
from __future__ import annotations

import argparse
import errno
import json
import os
import re
import sys
from contextlib import nullcontext
from pathlib import Path

from . import api, config_help
from .catalog import CatalogError
from .checkpoint import CheckpointError
from .cli_data import add_data_command, cmd_data_prepare, cmd_data_synth
from .cli_serving import add_device_option, add_serving_commands
from .config import ConfigError, load_config, parse_overrides
from .data.formats import DataFormatError
from .recommend import ServingError
from .runlock import run_lock
from .report import copy_run_summaries, fill_blocks, format_table, results_rows, write_report
from .stats import format_improv, parse_margin
from .run_pool import add_jobs_argument, check_jobs
from .sweep import SweepError, load_sweep, run_sweep, summary_markdown
from .train import Trainer, TrainingCollapsed, claim_run_dir
from .compare import comparison_text
from .tune import EXAMPLE as TUNE_EXAMPLE, load_tune, run_tune, tune_markdown
from .yamlfile import YamlError


def _print_results(name: str, results: dict, ks: list[int], as_json: bool) -> None:
    rows = results_rows(name, results, ks)
    print(format_table(rows, list(rows[0])))
    if as_json:
        print(json.dumps({"valid": results["valid"], "test": results["test"], "best_epoch": results.get("best_epoch")}))


def cmd_train(args, extra) -> int:
    if args.resume and args.config:
        raise ConfigError("--resume continues a run with the config saved in its checkpoint; drop --config "
                          "(--section.key=value overrides still apply)")
    if args.resume and args.overwrite:
        raise ConfigError("--resume continues a run and --overwrite starts it over; give one of them")
    cfg = None if args.resume else load_config(args.config, extra)
    owner = int(os.environ.get("RANK", "0")) == 0  # under torchrun, rank 0 alone owns the directory
    # the lock is taken before the folder is looked at: a second writer is refused before it reads or clears it
    with run_lock(args.resume or cfg.out, "resume" if args.resume else "train into") if owner else nullcontext():
        if args.resume:
            trainer = Trainer.from_checkpoint(args.resume, overrides=extra)
        else:
            if owner:
                claim_run_dir(cfg.out, args.overwrite)
            trainer = Trainer(cfg)
        cfg = trainer.cfg
        if args.json:
            cfg.train.progress = False
        results = trainer.fit(test=not args.no_test)
    if not trainer.dist.is_main:  # under torchrun only rank 0 reports
        return 0
    once = results.get("feature_pass_seconds") or 0
    print(f"best epoch {results['best_epoch']}, {results['seconds_per_epoch']:.2f} s/epoch"
          + (f" (+ {once:.1f} s computing item features once, before epoch 0)" if once else "")
          + f", {results['seconds_to_best']:.1f} s to best, run directory {cfg.out}")
    _print_results(f"{cfg.model.encoder.kind}-{cfg.model.backbone}", results, cfg.eval.ks, args.json)
    return 0


def cmd_evaluate(args, extra) -> int:
    run = api.load_run(args.run, args.device)
    cfg = run.config
    metrics = {split: api.evaluate_run(args.run, split, args.device) for split in ("valid", "test")}
    # the weights scored are the best epoch's (model.safetensors), as recorded in results.json
    _print_results(f"{cfg.model.encoder.kind}-{cfg.model.backbone}", {**metrics, "best_epoch": run.best_epoch},
                   cfg.eval.ks, args.json)
    return 0


def cmd_quickstart(args, extra) -> int:
    """The README's main job (api.quickstart): MovieLens-100K, ID-based SASRec vs text MoRec SASRec, side by side."""
    out = api.quickstart(args.root, args.runs, args.morec, args.id_only, extra)
    rows = [{"model": f"{name} SASRec", **{f"{s} {m.upper()}": r[s][m] for s in ("valid", "test") for m in ("hr@10", "ndcg@10")}}
            for name, r in out["results"].items()]
    verdict = out["comparison"]
    if verdict:  # Improv. with its 95% paired bootstrap interval over the test users, and the verdict it supports
        rows.append({"model": "Improv. (test, 95% CI)",
                     **{f"test {m.upper()}": format_improv(verdict["paired"][m]) for m in ("hr@10", "ndcg@10")}})
    print(format_table(rows, list(rows[0])))
    if verdict:
        print(verdict["verdict"])
    if args.json:
        print(json.dumps({name: {"valid": r["valid"], "test": r["test"]} for name, r in out["results"].items()}))
    return 0


def cmd_sweep(args, extra) -> int:
    try:
        summary = run_sweep(load_sweep(args.sweep, parse_overrides(extra)), jobs=check_jobs(args.jobs))
    except SweepError as err:
        raise ConfigError(str(err)) from None
    print(summary_markdown(summary))
    print(f"sweep summary: {Path(summary['out']) / 'sweep.json'}, {Path(summary['out']) / 'sweep.md'}")
    return 0


def cmd_tune(args, extra) -> int:
    if args.example or not args.tune:
        if not args.example:
            raise ConfigError("give a tune file (morec tune TUNE.yaml), or --example to print one to start from")
        print(TUNE_EXAMPLE, end="")
        return 0
    summary = run_tune(load_tune(args.tune, parse_overrides(extra)), seeds=not args.search_only,
                       jobs=check_jobs(args.jobs))
    if summary is not None:
        print(tune_markdown(summary))
        print(f"tune summary: {Path(summary['out']) / 'sweep.json'}, {Path(summary['out']) / 'sweep.md'}")
    return 0


def cmd_study(args, extra) -> int:
    from .study import StudyOptions, run_study
    from .study.plan import parse_duration

    try:
        budget = parse_duration(args.budget)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if args.jobs < 1 or args.threads < 1 or not 1 <= args.seeds_min <= args.seeds_max:
        raise ConfigError("study: need --jobs >= 1, --threads >= 1 and 1 <= --seeds-min <= --seeds-max")
    opts = StudyOptions(args.dataset, args.out, budget, args.backbone, [a for a in (args.arms or "").split(",") if a],
                        args.seeds_min, args.seeds_max, args.margin, jobs=args.jobs, threads=args.threads,
                        text_model=args.text_model, vision_model=args.vision_model, extra=extra)
    import signal

    # a terminated study ends like an interrupted one: its training processes are stopped (their checkpoints
    # resume them), never left running beside the next `morec study` of the same folder
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    run_study(opts, dry_run=args.dry_run, command="morec study " + " ".join(sys.argv[2:]))
    return 0


def add_study_parser(sub) -> None:
    st = sub.add_parser("study", help="IDs or content on your data, decided: plans arms from the dataset's content, "
                        "trains them within a time budget, adds seeds until each verdict is decided, writes a report")
    st.add_argument("dataset", help="a prepared dataset directory (morec data prepare)")
    st.add_argument("--out", required=True, help="the study's directory (runs, logs, report/; resumable)")
    st.add_argument("--budget", default="2h", help="wall-clock time for timing and training, e.g. 40m, 2h (default 2h)")
    st.add_argument("--backbone", default="sasrec")
    st.add_argument("--arms", help="comma list of arm keys to keep beside IDRec (default: every arm the content allows; "
                    "--dry-run lists them)")
    st.add_argument("--seeds-min", type=int, default=3)
    st.add_argument("--seeds-max", type=int, default=8)
    st.add_argument("--margin", type=parse_margin, default="5%", help="equivalence margin on the relative difference "
                    "(default 5%%)")
    st.add_argument("--jobs", type=int, default=2, help="runs trained at once (default 2: one per core)")
    st.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1)")
    st.add_argument("--text-model", default="minilm", help="text encoder: local folder or hub name (default minilm)")
    st.add_argument("--vision-model", default="efficientnet-lite0", help="image encoder (default efficientnet-lite0)")
    st.add_argument("--dry-run", action="store_true", help="print the plan and the time it expects, train nothing")
    st.set_defaults(func=cmd_study)


def cmd_compare(args, extra) -> int:
    if len(args.arms) % 2:
        raise ConfigError(f"compare takes pairs of arms (A B [C D ...]); got {len(args.arms)} paths")
    pairs = list(zip(args.arms[::2], args.arms[1::2]))
    names = (args.names[0], args.names[1]) if args.names else ("A", "B")
    if args.until_decided:
        from .sequential import until_decided

        if len(pairs) > 1:
            raise ConfigError("--until-decided takes one pair of arms")
        results = [until_decided(*pairs[0], args.metric, names, max_seeds=args.max_seeds, margin=args.margin,
                                 allow_unequal_budgets=args.allow_unequal_budgets)]
    else:
        results = api.comparisons(pairs, args.metric, names if len(pairs) == 1 else None, margin=args.margin,
                                  allow_unequal_budgets=args.allow_unequal_budgets)
    for result in results:
        print(json.dumps({k: v for k, v in result.items() if k != "paired"}, indent=2) if args.json
              else comparison_text(result))
    return 0


def cmd_report(args, extra) -> int:
    runs = args.runs
    if args.copy_runs:  # the report is built from the copies, so its run column names committed paths
        runs = [copy_run_summaries(runs, args.copy_runs)]
    written = write_report(runs, args.out)
    for path in written:
        print(path)
    for doc in args.fill or []:
        print(f"{doc}: {fill_blocks(doc)} results blocks filled")
    return 0


def add_train_parser(sub) -> None:
    t = sub.add_parser("train", help="train a model: --config FILE.yaml and --section.key=value overrides",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=config_help.epilog("run", "model", "train", "eval"))
    t.add_argument("--config")
    t.add_argument("--json", action="store_true", help="print the final metrics as one JSON line last")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    t.add_argument("--overwrite", action="store_true",
                   help="--out may hold an earlier run: delete it and start clean (otherwise that is refused)")
    t.add_argument("--no-test", action="store_true", help="leave the test split unread (a search trial)")
    t.set_defaults(func=cmd_train)


def add_evaluate_parser(sub) -> None:
    e = sub.add_parser("evaluate", help="re-score a saved run directory")
    e.add_argument("run")
    add_device_option(e)
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_evaluate)


def add_quickstart_parser(sub) -> None:
    q = sub.add_parser("quickstart", help="MovieLens-100K end to end: ID-based vs text MoRec SASRec, results table")
    q.add_argument("--root", default="data")
    q.add_argument("--runs", default="runs")
    q.add_argument("--json", action="store_true")
    q.add_argument("--id-only", action="store_true", help="train only the ID-based model")
    q.add_argument("--morec", choices=list(api.QUICKSTART_MOREC), default="ts",
                   help="MoRec's MiniLM training: ts = frozen features (default, minutes on 2 CPU cores); "
                        "top1 / top2 = its top 1 / 2 layers trained with the recommender (tens of minutes)")
    q.set_defaults(func=cmd_quickstart)


def add_sweep_parser(sub) -> None:
    sw = sub.add_parser("sweep", help="a grid of runs from SWEEP.yaml (resumable), best of each group chosen on validation; --section.key=value over its base")
    sw.add_argument("sweep", help="YAML with base (or config), grid, group_by, out")
    add_jobs_argument(sw)
    sw.set_defaults(func=cmd_sweep)


def add_tune_parser(sub) -> None:
    tu = sub.add_parser("tune", help="hyper-parameter search with Optuna from TUNE.yaml (resumable, several processes "
                                     "may share it), chosen on validation; --section.key=value over its base")
    tu.add_argument("tune", nargs="?", help="YAML with base, space, trials, pruner, seeds, out (morec tune --example)")
    tu.add_argument("--example", action="store_true", help="print a commented tune file to start from")
    tu.add_argument("--search-only", action="store_true",
                    help="search and choose, but leave the seeds of the chosen configuration to a later run")
    add_jobs_argument(tu, default=1)
    tu.set_defaults(func=cmd_tune)


def add_compare_parser(sub) -> None:
    cp = sub.add_parser("compare", help="paired comparison of two runs or seed groups on the same dataset: Improv. "
                                        "with a 95%% interval over seeds and users, p raw and Holm-adjusted, a verdict")
    cp.add_argument("arms", nargs="+", metavar="A B", help="arm A: a run directory, a folder of one configuration's seed "
                    "runs, or a sweep configuration path without its -sN (or _seed-N) suffix; arm B the same way (Improv. is B "
                    "over A); more pairs C D ... form one family, Holm-adjusted together")
    cp.add_argument("--metric", action="append", help="hr@K or ndcg@K (repeatable; default hr@10 and the selection metric)")
    cp.add_argument("--names", nargs=2, metavar=("A", "B"), help="labels of the two arms")
    cp.add_argument("--allow-unequal-budgets", action="store_true",
                    help="compare arms trained with different max epochs, patience, selection metric, learning rates or "
                         "validation schedule (said in the verdict)")
    cp.add_argument("--margin", type=parse_margin, default=0.05,
                    help="equivalence margin on Improv. (default 5%%): 'equivalent within ±5%%' when the 95%% interval "
                         "lies inside it; 0 turns the check off")
    cp.add_argument("--until-decided", action="store_true",
                    help="train one more seed of each arm while a metric is undecided (not better, worse or "
                         "equivalent), up to --max-seeds; resumable; Bonferroni over the looks (docs: morec/sequential.py)")
    cp.add_argument("--max-seeds", type=int, default=5, help="with --until-decided: seeds per arm at most (default 5)")
    cp.add_argument("--json", action="store_true")
    cp.set_defaults(func=cmd_compare)


def add_report_parser(sub) -> None:
    rp = sub.add_parser("report", help="the paper's tables (Markdown + CSV) and plots (PNG) from run or sweep directories")
    rp.add_argument("runs", nargs="+", help="run directories, sweep directories, or folders holding them")
    rp.add_argument("--out", default="report", help="directory for the tables and plots")
    rp.add_argument("--copy-runs", metavar="DIR", help="first copy each run's summary (config, results, metrics, "
                    "per-user ranks; no weights) into DIR and report from there (what a repository commits)")
    rp.add_argument("--fill", action="append", metavar="DOC", help="then rewrite DOC's '<!-- results: FILE -->' blocks "
                    "with FILE's text (repeatable), e.g. README.md")
    rp.set_defaults(func=cmd_report)


def add_delegated_parsers(sub) -> None:
    for name, module in DELEGATED.items():  # listed in --help; parsed by their own module (see main)
        sub.add_parser(name, help=f"extra pre-training on the item {'texts (MLM)' if 'text' in name else 'images (MAE)'}: "
                                  f"see `morec {name} --help`")


# every subcommand, in the order --help lists them
COMMANDS = (add_data_command, add_train_parser, add_evaluate_parser, add_quickstart_parser, add_study_parser,
            add_sweep_parser, add_tune_parser, add_compare_parser, add_report_parser, add_serving_commands,
            config_help.add_command, add_delegated_parsers)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="morec", description="ID-based vs modality-based recommenders (SIGIR'23), one backbone, one loop.")
    p.add_argument("--debug", action="store_true",
                   help="show the full traceback of an error (also MOREC_DEBUG=1) instead of one 'morec: error:' line")
    sub = p.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return p


# Subcommands whose own module parses the rest of the command line.
DELEGATED = {"pretrain-text": "morec.pretrain_text", "pretrain-vision": "morec.pretrain_vision"}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in DELEGATED:
        import importlib

        try:
            return importlib.import_module(DELEGATED[argv[0]]).main(argv[1:]) or 0
        except Exception as err:  # noqa: BLE001 - as below
            message = user_error(err)
            if message is None or os.environ.get("MOREC_DEBUG", "") not in ("", "0"):
                raise
            print(f"morec: error: {message}", file=sys.stderr)
            return 2
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.func not in (cmd_train, cmd_data_prepare, cmd_data_synth, cmd_quickstart, cmd_sweep, cmd_tune,
                                   cmd_study):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    debug = args.debug or os.environ.get("MOREC_DEBUG", "") not in ("", "0")
    try:
        return args.func(args, extra)
    except Exception as err:  # noqa: BLE001 - sorted below: a person's mistake gets one line, a bug its traceback
        message = user_error(err)
        if message is None or debug:
            raise
        print(f"morec: error: {message}", file=sys.stderr)
        return 2


def disk_full(err: BaseException) -> bool:
    """ENOSPC / EDQUOT, or a short write without an errno (numpy's "24000 requested and 17392 written")."""
    if not isinstance(err, OSError):
        return False
    return err.errno in (errno.ENOSPC, errno.EDQUOT) or "No space left" in str(err) \
        or re.fullmatch(r"\d+ requested and \d+ written", str(err)) is not None


def user_error(err: BaseException) -> str | None:
    """The one-line message for an error a person can cause (bad files, options, data, requests, a
    machine without the asked-for device), or None for a bug, whose traceback should be seen."""
    if isinstance(err, (ConfigError, DataFormatError, CheckpointError, ServingError, CatalogError, TrainingCollapsed,
                        YamlError)):
        return str(err)
    if disk_full(err):
        where = f" writing {err.filename}" if err.filename else ""
        return f"no space left on the device{where}; free some space (or write elsewhere) and run it again"
    if isinstance(err, OSError) and err.filename is not None:  # a file or folder that is not what was expected
        hint = {IsADirectoryError: "a file was expected", NotADirectoryError: "a folder was expected",
                FileExistsError: "it is in the way; choose another path or remove it",
                PermissionError: "check its permissions"}.get(type(err), "check the path")
        return f"{err.filename}: {err.strerror or err} ({hint})"
    if isinstance(err, FileNotFoundError):
        return str(err)
    return None


if __name__ == "__main__":
    sys.exit(main())
