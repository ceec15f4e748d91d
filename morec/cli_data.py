"""`morec data ...`: fetch, prepare, describe and synthesize datasets; each subcommand's handler and parser."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from . import api, config_help
from .config import ConfigError, PrepareConfig, from_dict, parse_overrides
from .data.dataset import PreparedDataset
from .data.formats.registry import READERS, formats_help
from .data.presets import preset_names
from .data.synthetic import SynthConfig, write_synthetic
from .report import format_table, plot_item_popularity, plot_sequence_lengths


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


def add_data_command(sub) -> None:
    """`morec data fetch | prepare | formats | stats | synth`."""
    data = sub.add_parser("data", help="fetch, prepare, describe or synthesize datasets").add_subparsers(dest="data_command", required=True)
    for add in (_add_fetch, _add_prepare, _add_formats, _add_stats, _add_synth):
        add(data)


def _add_fetch(data) -> None:
    f = data.add_parser("fetch", help="download a public dataset (movielens-100k)")
    f.add_argument("name")
    f.add_argument("--root", default="data/raw")
    f.set_defaults(func=cmd_data_fetch)


def _add_prepare(data) -> None:
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


def _add_formats(data) -> None:
    fm = data.add_parser("formats", help="every raw format with its reader options and an example of each")
    fm.set_defaults(func=cmd_data_formats)


def _add_stats(data) -> None:
    st = data.add_parser("stats", help="Table 1 row and item-popularity plot of a prepared dataset")
    st.add_argument("dataset")
    st.add_argument("--plot", help="item popularity PNG (default DATASET/item_popularity.png); the sequence-length "
                                   "histogram sequence_lengths.png is written beside it")
    st.add_argument("--json", action="store_true", help="print the statistics as one JSON line last")
    st.set_defaults(func=cmd_data_stats)


def _add_synth(data) -> None:
    sy = data.add_parser("synth", help="write a synthetic dataset (texts and images that explain taste); --synth.KEY=VALUE")
    sy.add_argument("out")
    sy.set_defaults(func=cmd_data_synth)
