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

import torch

from . import api, config_help
from .catalog import CatalogError, parse_mapping
from .checkpoint import CheckpointError
from .config import ConfigError, PrepareConfig, from_dict, load_config, parse_overrides
from .data.dataset import PreparedDataset
from .data.formats import DataFormatError
from .data.formats.registry import READERS, formats_help
from .data.presets import preset_names
from .data.synthetic import SynthConfig, write_synthetic
from .recommend import ServingError
from .runlock import run_lock
from .report import copy_run_summaries, fill_blocks, format_table, plot_item_popularity, plot_sequence_lengths, \
    results_rows, write_report
from .serve import TOKEN_ENV, Limits, check_options, serve
from .stats import format_improv, parse_margin
from .sweep import SweepError, load_sweep, run_sweep, summary_markdown
from .train import Trainer, TrainingCollapsed, claim_run_dir
from .compare import comparison_text
from .tune import EXAMPLE as TUNE_EXAMPLE, load_tune, run_tune, tune_markdown
from .yamlfile import YamlError


def _reader_options(pairs: list[str]) -> dict:
    """--option KEY=VALUE pairs as strings; the reader's registry turns them into its types (lists, None)."""
    out = {}
    for pair in pairs or []:
        key, eq, value = pair.partition("=")
        if not eq:
            raise ConfigError(f"--option {pair!r}: expected key=value (`morec data formats` lists every option)")
        out[key.strip()] = value
    return out


def cmd_data_fetch(args, extra) -> int:
    print(api.fetch_dataset(args.name, Path(args.root)))
    return 0


def cmd_data_prepare(args, extra) -> int:
    prep = parse_overrides(extra).get("prepare", {})
    unknown = set(parse_overrides(extra)) - {"prepare"}
    if unknown:
        raise ConfigError(f"unknown option(s) {sorted(unknown)}; data prepare takes --prepare.KEY=VALUE")
    from_dict(PrepareConfig, prep, "prepare.").validate()  # before reading the source: a bad setting is named first
    ds = api.prepare_dataset(args.source, args.out, args.format, prep, name=args.name, overwrite=args.overwrite,
                             preset=args.preset, **_reader_options(args.option))
    print(json.dumps(ds.stats()))
    return 0


def cmd_data_formats(args, extra) -> int:
    print(formats_help(), end="")
    return 0


def cmd_data_stats(args, extra) -> int:
    ds = PreparedDataset(args.dataset)
    row = ds.stats()
    print(format_table([row], list(row), floats="{:.4%}"))
    summary = ds.sequence_summary()
    print(f"sequence length (interactions per user): min {summary['min_length']}, median "
          f"{summary['median_length']:g}, mean {summary['mean_length']:g}, max {summary['max_length']}")
    untimed = f"; {summary['untimed']:,} untimed interactions (a history without times) are not in it" \
        if summary.get("untimed") else ""
    if "first_date" in summary:
        print(f"time span: {summary['first_date']} to {summary['last_date']} ({summary['span_days']:g} days){untimed}")
    elif "first_time" not in summary:
        print(f"time span: none ({summary.get('untimed', 0):,} interactions, none with a time)")
    else:
        print(f"time span: {summary['first_time']:g} to {summary['last_time']:g} (not dates: file order or positions)")
    plot = Path(args.plot or Path(args.dataset) / "item_popularity.png")
    plot_item_popularity(ds.train_item_counts, plot, f"{ds.name}: item popularity (training split)")
    print(f"item popularity plot: {plot}")
    lengths_plot = plot.with_name("sequence_lengths.png")
    plot_sequence_lengths(ds.lengths, lengths_plot, f"{ds.name}: interactions per user")
    print(f"sequence length histogram: {lengths_plot}")
    if args.json:
        print(json.dumps({**row, **summary}))
    return 0


def cmd_data_synth(args, extra) -> int:
    cfg = from_dict(SynthConfig, parse_overrides(extra).get("synth", {}), "synth.")
    print(write_synthetic(cfg, Path(args.out)))
    return 0


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
        results = trainer.fit()
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
        summary = run_sweep(load_sweep(args.sweep, parse_overrides(extra)))
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
    summary = run_tune(load_tune(args.tune, parse_overrides(extra)), seeds=not args.search_only)
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


def _print_recommendations(out: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(out))
        return
    for rank, item in enumerate(out["items"], 1):
        title = f"  {item['title']}" if item.get("title") else ""
        score = "nan" if item["score"] is None else f"{item['score']:.4f}"
        print(f"{rank:3d}  {item['id']}  {score}{title}")


def cmd_recommend(args, extra) -> int:
    if (args.user is None) == (args.history is None):
        raise ConfigError("give exactly one of --user ID or --history ITEM,ITEM,...")
    history = [h for h in args.history.split(",") if h.strip()] if args.history is not None else None
    _print_recommendations(api.recommend(args.run, user=args.user, history=history, k=args.k, device=args.device), args.json)
    return 0


def cmd_catalog_add(args, extra) -> int:
    print(json.dumps(api.add_items(args.run, args.items, args.format, args.device, columns=parse_mapping(args.map))))
    return 0


def cmd_export(args, extra) -> int:
    out = api.export(args.run, args.out, args.device)
    print(f"exported {args.run} -> {out} (manifest.json, items.safetensors, user_encoder.safetensors)")
    return 0


def cmd_serve(args, extra) -> int:
    limits = Limits(max_k=args.max_k, max_history=args.max_history, max_body=args.max_body,
                    max_image_pixels=args.max_image_pixels)
    check_options(args.port, args.threads, limits)  # before anything is loaded or bound
    torch.set_num_threads(args.threads)  # per request: the server answers many at once
    token = args.token if args.token is not None else os.environ.get(TOKEN_ENV)
    try:
        serve(args.run, args.host, args.port, args.device, args.index, limits, image_root=args.image_root, token=token)
    except KeyboardInterrupt:  # uvicorn has shut down cleanly and re-raises Ctrl-C
        print("morec serve: stopped", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="morec", description="ID-based vs modality-based recommenders (SIGIR'23), one backbone, one loop.")
    p.add_argument("--debug", action="store_true",
                   help="show the full traceback of an error (also MOREC_DEBUG=1) instead of one 'morec: error:' line")
    sub = p.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="fetch, prepare, describe or synthesize datasets").add_subparsers(dest="data_command", required=True)
    f = data.add_parser("fetch", help="download a public dataset (movielens-100k)")
    f.add_argument("name")
    f.add_argument("--root", default="data/raw")
    f.set_defaults(func=cmd_data_fetch)
    pr = data.add_parser("prepare", help="raw files -> prepared dataset (the paper's preprocessing); --prepare.KEY=VALUE",
                         formatter_class=argparse.RawDescriptionHelpFormatter,
                         epilog=config_help.epilog("prepare") + "\n\nformats and their reader options "
                                "(--option KEY=VALUE):\n\n" + formats_help())
    pr.add_argument("source", help="folder or file of the raw dataset")
    pr.add_argument("--out", required=True)
    pr.add_argument("--format", help=f"{' | '.join(READERS)} (default: detected from the files)")
    pr.add_argument("--preset", help=f"{preset_names()}: the paper's preprocessing of that dataset (latest-N, "
                                     "minimum interactions, text, image size; each value cites the paper); default: "
                                     "mind / hm when the format is theirs, else none; --prepare.KEY=VALUE wins")
    pr.add_argument("--option", action="append", metavar="KEY=VALUE",
                    help="reader option, repeatable, e.g. --option user_column=customer_id --option text_columns=title,blurb")
    pr.add_argument("--name", help="the dataset's name in every table, figure and file name (default: the source "
                                   "folder's name, or the --out folder's when that is generic like raw or data)")
    pr.add_argument("--overwrite", action="store_true",
                    help="replace an existing --out folder (written beside it, then swapped in; caches are dropped)")
    pr.set_defaults(func=cmd_data_prepare)
    fm = data.add_parser("formats", help="every raw format with its reader options and an example of each")
    fm.set_defaults(func=cmd_data_formats)
    st = data.add_parser("stats", help="Table 1 row and item-popularity plot of a prepared dataset")
    st.add_argument("dataset")
    st.add_argument("--plot", help="item popularity PNG (default DATASET/item_popularity.png); the sequence-length "
                                   "histogram sequence_lengths.png is written beside it")
    st.add_argument("--json", action="store_true", help="print the statistics as one JSON line last")
    st.set_defaults(func=cmd_data_stats)
    sy = data.add_parser("synth", help="write a synthetic dataset (texts and images that explain taste); --synth.KEY=VALUE")
    sy.add_argument("out")
    sy.set_defaults(func=cmd_data_synth)

    t = sub.add_parser("train", help="train a model: --config FILE.yaml and --section.key=value overrides",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=config_help.epilog("run", "model", "train", "eval"))
    t.add_argument("--config")
    t.add_argument("--json", action="store_true", help="print the final metrics as one JSON line last")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    t.add_argument("--overwrite", action="store_true",
                   help="--out may hold an earlier run: delete it and start clean (otherwise that is refused)")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="re-score a saved run directory")
    e.add_argument("run")
    e.add_argument("--device", default="cpu")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_evaluate)

    q = sub.add_parser("quickstart", help="MovieLens-100K end to end: ID-based vs text MoRec SASRec, results table")
    q.add_argument("--root", default="data")
    q.add_argument("--runs", default="runs")
    q.add_argument("--json", action="store_true")
    q.add_argument("--id-only", action="store_true", help="train only the ID-based model")
    q.add_argument("--morec", choices=list(api.QUICKSTART_MOREC), default="ts",
                   help="MoRec's MiniLM training: ts = frozen features (default, minutes on 2 CPU cores); "
                        "top1 / top2 = its top 1 / 2 layers trained with the recommender (tens of minutes)")
    q.set_defaults(func=cmd_quickstart)

    add_study_parser(sub)

    sw = sub.add_parser("sweep", help="a grid of runs from SWEEP.yaml (resumable), best of each group chosen on validation; --section.key=value over its base")
    sw.add_argument("sweep", help="YAML with base (or config), grid, group_by, out")
    sw.set_defaults(func=cmd_sweep)

    tu = sub.add_parser("tune", help="hyper-parameter search with Optuna from TUNE.yaml (resumable, several processes "
                                     "may share it), chosen on validation; --section.key=value over its base")
    tu.add_argument("tune", nargs="?", help="YAML with base, space, trials, pruner, seeds, out (morec tune --example)")
    tu.add_argument("--example", action="store_true", help="print a commented tune file to start from")
    tu.add_argument("--search-only", action="store_true",
                    help="search and choose, but leave the seeds of the chosen configuration to a later run")
    tu.set_defaults(func=cmd_tune)

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

    rp = sub.add_parser("report", help="the paper's tables (Markdown + CSV) and plots (PNG) from run or sweep directories")
    rp.add_argument("runs", nargs="+", help="run directories, sweep directories, or folders holding them")
    rp.add_argument("--out", default="report", help="directory for the tables and plots")
    rp.add_argument("--copy-runs", metavar="DIR", help="first copy each run's summary (config, results, metrics, "
                    "per-user ranks; no weights) into DIR and report from there (what a repository commits)")
    rp.add_argument("--fill", action="append", metavar="DOC", help="then rewrite DOC's '<!-- results: FILE -->' blocks "
                    "with FILE's text (repeatable), e.g. README.md")
    rp.set_defaults(func=cmd_report)

    r = sub.add_parser("recommend", help="top-K items for a user or a history, from a run or export directory")
    r.add_argument("run", help="run directory (morec train --out) or export directory (morec export --out)")
    r.add_argument("--user", help="a user id of the training data")
    r.add_argument("--history", help="item ids, comma-separated, oldest first (sequence backbones)")
    r.add_argument("--k", type=int, default=10)
    r.add_argument("--device", default="cpu")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=cmd_recommend)

    cat = sub.add_parser("catalog", help="the recommendable catalogue of a run").add_subparsers(dest="catalog_command", required=True)
    ca = cat.add_parser("add", help="encode new items from their content (text, images) with a MoRec model and make "
                                    "them recommendable, no retraining")
    ca.add_argument("run")
    ca.add_argument("--items", required=True, help="CSV, TSV or JSON lines: an id column (id, item or the dataset's own, "
                                                   "e.g. book_sku) and what the model reads (text fields, image paths) "
                                                   "by the dataset's names; image paths relative to this file's folder")
    ca.add_argument("--format", help="csv | tsv | jsonl | json (default: the file's extension)")
    ca.add_argument("--map", action="append", metavar="FILE_COLUMN=DATASET_COLUMN",
                    help="read a column of the file as the dataset's column, e.g. --map sku=book_sku --map name=book_title")
    ca.add_argument("--device", default="cpu")
    ca.set_defaults(func=cmd_catalog_add)

    x = sub.add_parser("export", help="item vectors + user encoder (safetensors) + manifest, for serving without the training data")
    x.add_argument("run")
    x.add_argument("--out", required=True)
    x.add_argument("--device", default="cpu")
    x.set_defaults(func=cmd_export)

    sv = sub.add_parser("serve", help="HTTP JSON API: POST /recommend, POST /items, GET /health")
    sv.add_argument("run", help="run or export directory")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, default=8000)
    sv.add_argument("--device", default="cpu")
    sv.add_argument("--index", default="exact", choices=["exact", "faiss", "auto"],
                    help="exact top-K by matrix product, or a faiss HNSW index (needs faiss; auto: >= 100k items)")
    sv.add_argument("--threads", type=int, default=1, help="torch threads per request")
    sv.add_argument("--max-k", type=int, default=1000)
    sv.add_argument("--max-history", type=int, default=2000)
    sv.add_argument("--max-body", type=int, default=1 << 20, help="largest request body, bytes")
    sv.add_argument("--max-image-pixels", type=int, default=25_000_000,
                    help="largest new-item image (width x height), checked before decoding")
    sv.add_argument("--image-root", help="folder that new items' image paths (POST /items) must lie under; "
                                         "without it only uploaded images (image_base64) are accepted")
    sv.add_argument("--token", help="require 'Authorization: Bearer TOKEN' for POST /items "
                                    "(or set MOREC_SERVE_TOKEN, which keeps it out of the process list)")
    sv.set_defaults(func=cmd_serve)
    config_help.add_command(sub)
    for name, module in DELEGATED.items():  # listed in --help; parsed by their own module (see main)
        sub.add_parser(name, help=f"extra pre-training on the item {'texts (MLM)' if 'text' in name else 'images (MAE)'}: "
                                  f"see `morec {name} --help`")
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
