"""The serving subcommands: `morec recommend`, `catalog add`, `export`, `serve`; each handler beside its parser."""
from __future__ import annotations

import json
import os
import sys

import torch

from . import api
from .catalog import parse_mapping
from .config import ConfigError
from .serve import TOKEN_ENV, Limits, check_options, serve


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


def add_device_option(parser) -> None:
    """Where a saved run's model runs: every command that loads one takes it."""
    parser.add_argument("--device", default="cpu")


def add_serving_commands(sub) -> None:
    """`morec recommend`, `catalog add`, `export` and `serve`, in this order in --help."""
    for add in (_add_recommend, _add_catalog, _add_export, _add_serve):
        add(sub)


def _add_recommend(sub) -> None:
    r = sub.add_parser("recommend", help="top-K items for a user or a history, from a run or export directory")
    r.add_argument("run", help="run directory (morec train --out) or export directory (morec export --out)")
    r.add_argument("--user", help="a user id of the training data")
    r.add_argument("--history", help="item ids, comma-separated, oldest first (sequence backbones)")
    r.add_argument("--k", type=int, default=10)
    add_device_option(r)
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=cmd_recommend)


def _add_catalog(sub) -> None:
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
    add_device_option(ca)
    ca.set_defaults(func=cmd_catalog_add)


def _add_export(sub) -> None:
    x = sub.add_parser("export", help="item vectors + user encoder (safetensors) + manifest, for serving without the training data")
    x.add_argument("run")
    x.add_argument("--out", required=True)
    add_device_option(x)
    x.set_defaults(func=cmd_export)


def _add_serve(sub) -> None:
    sv = sub.add_parser("serve", help="HTTP JSON API: POST /recommend, POST /items, GET /health")
    sv.add_argument("run", help="run or export directory")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, default=8000)
    add_device_option(sv)
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
