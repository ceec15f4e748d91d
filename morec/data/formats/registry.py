"""Format names -> readers, and detection of the format from the files present."""
from __future__ import annotations

import codecs
import inspect
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from morec.data.formats import DataFormatError, RawDataset
from morec.data.formats.mind import read_mind, split_folders
from morec.data.formats.movielens import read_movielens
from morec.data.formats.recbole import read_recbole
from morec.data.formats.sequences import read_sequences
from morec.data.formats.table import read_table
from morec.data.formats.hm import read_hm
from morec.data.formats.lmdb_images import read_lmdb_images
from morec.data.formats.microlens import read_microlens
from morec.data.formats.ninerec import read_ninerec
from morec.data.formats.pixelrec import read_pixelrec

Reader = Callable[..., RawDataset]

READERS: dict[str, Reader] = {
    "movielens": read_movielens,
    "recbole": read_recbole,
    "sequences": read_sequences,
    "table": read_table,
    "mind": read_mind,
    "hm": read_hm,
    "lmdb": read_lmdb_images,
    "pixelrec": read_pixelrec,
    "ninerec": read_ninerec,
    "microlens": read_microlens,
}


@dataclass(frozen=True)
class Option:
    help: str
    example: str  # as typed after `--option NAME=` (a test reads a fixture with it)


@dataclass(frozen=True)
class FormatInfo:
    files: str
    options: dict[str, Option]


_ENCODING = Option("text encoding of the files", "latin-1")
_TEXT_LIST = "item text columns, comma-separated (or a YAML list [a, b])"

# Every reader option, documented once: `morec data formats`, `morec data prepare --help` and docs/guide/data.md print
# this, and tests/test_format_options.py checks that it matches the readers' signatures and exercises each example.
FORMATS: dict[str, FormatInfo] = {
    "table": FormatInfo(
        "your own CSV / TSV / Parquet tables: interactions (user, item, time) and optionally items (id, text, "
        "image). A folder's interactions.* / items.* are used, or else its one table holding the user and item "
        "columns and its one other table holding the item id column; what was guessed is logged.", {
            "user_column": Option("interactions column of user ids", "customer_id"),
            "item_column": Option("interactions column of item ids", "book_sku"),
            "time_column": Option("interactions column of times: numbers, ISO dates or time_format dates; "
                                  "none = file order", "purchased_at"),
            "time_format": Option("the dates' format (pandas / strftime codes) when they are not ISO",
                                  "%d/%m/%Y %H:%M"),
            "interactions_file": Option("interactions file, relative to the folder (default: guessed)",
                                        "purchases.csv"),
            "items_file": Option("item table, relative to the folder (default: guessed)", "books.csv"),
            "item_id_column": Option("item table column of item ids (default: item_column when the item "
                                     "table has it, else item)", "sku"),
            "text_columns": Option(_TEXT_LIST + " (default: every column holding text)", "book_title,blurb"),
            "image_column": Option("item table column of image paths (default: image, when present)", "cover"),
            "image_pattern": Option("image path built from the item id, relative to the folder",
                                    "covers/{item}.jpg"),
            "sep": Option("field separator (default: from the extension; \\t = tab)", ";"),
            "encoding": _ENCODING,
        }),
    "movielens": FormatInfo("MovieLens-100K (u.data, u.item) or -1M (ratings.dat, movies.dat)", {
        "encoding": Option("text encoding of the files (default latin-1)", "latin-1")}),
    "recbole": FormatInfo("RecBole atomic files: NAME.inter and optionally NAME.item", {
        "name": Option("which NAME.inter of the folder to read (default: the only one)", "mini"),
        "user_field": Option(".inter field of user ids, without :type", "user_id"),
        "item_field": Option(".inter / .item field of item ids, without :type", "item_id"),
        "time_field": Option(".inter field of times, without :type (absent: file order)", "timestamp"),
        "encoding": _ENCODING}),
    "sequences": FormatInfo("the paper's layout: user<TAB>item item ... and id<TAB>title[<TAB>abstract]", {
        "sequences_file": Option("the sequences file (default: told apart by name, then content)", "users.tsv"),
        "items_file": Option("the items file", "items.tsv"),
        "image_pattern": Option("image path built from the item id, relative to the folder", "covers/{item}.jpg"),
        "encoding": _ENCODING}),
    "mind": FormatInfo("MIND: MIND*_train / MIND*_dev folders with behaviors.tsv and news.tsv", {
        "text_columns": Option(_TEXT_LIST + ", among category, subcategory, title, abstract (default title)",
                               "title,abstract"),
        "encoding": _ENCODING}),
    "hm": FormatInfo("H&M (Kaggle): transactions_train.csv, articles.csv, images/0XX/0XXXXXXXXX.jpg", {
        "text_columns": Option(_TEXT_LIST + " of articles.csv (default prod_name -> title, detail_desc -> "
                               "description)", "prod_name,product_type_name"),
        "images_dir": Option("the image folder, relative to the dataset folder", "images"),
        "encoding": _ENCODING}),
    "lmdb": FormatInfo("the paper code's image store: sequences + items files and an LMDB of item images", {
        "lmdb": Option("the LMDB (a folder holding data.mdb, or a .lmdb file)", "hm_images.lmdb"),
        "sequences_file": Option("the sequences file", "hm_users.tsv"),
        "items_file": Option("the items file", "hm_items.tsv"),
        "encoding": _ENCODING}),
    "pixelrec": FormatInfo("PixelRec: an interactions CSV, an item-info CSV and a cover/ folder", {
        "interactions_file": Option("the interactions CSV, relative to the folder",
                                    "pixelrec_interaction/Pixel200K.csv"),
        "items_file": Option("the item-info CSV", "pixelrec_iteminfo/Pixel200K_items.csv"),
        "cover_dir": Option("the cover image folder", "cover"),
        "text_columns": Option(_TEXT_LIST + ", among title, tag, description (default title)", "title,tag"),
        "encoding": _ENCODING}),
    "ninerec": FormatInfo("NineRec: NAME_pair.csv, NAME_item.csv and NAME_cover/", {
        "pair_file": Option("the interactions (pairs) CSV", "Bili_Food_pair.csv"),
        "item_file": Option("the item CSV", "Bili_Food_item.csv"),
        "cover_dir": Option("the cover image folder", "Bili_Food_cover"),
        "user_column": Option("pairs column of user ids (default: a column named like user_id)", "user_id"),
        "item_column": Option("pairs / item table column of item ids (default: a column named like item_id)",
                              "item_id"),
        "time_column": Option("pairs column of times (default: a column named like timestamp, else file order)",
                              "timestamp"),
        "text_columns": Option(_TEXT_LIST + " (default: every column holding text)", "title"),
        "encoding": _ENCODING}),
    "microlens": FormatInfo("MicroLens: NAME_pairs.tsv (or .csv), NAME_titles.csv and NAME_covers/", {
        "pairs_file": Option("the pairs file", "MicroLens-50k_pairs.tsv"),
        "titles_file": Option("the titles file", "MicroLens-50k_titles.csv"),
        "cover_dir": Option("the cover image folder", "MicroLens-50k_covers"),
        "encoding": _ENCODING}),
}


def formats_help() -> str:
    """Every format with its files and every option with an example: `morec data formats`."""
    lines = []
    for name, info in FORMATS.items():
        lines += [f"{name}: {info.files}"]
        width = max(map(len, info.options))
        for option, doc in info.options.items():
            lines.append(f"  {option:<{width}}  {doc.help}; e.g. --option {shlex.quote(f'{option}={doc.example}')}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def coerce_options(name: str, reader: Reader, options: dict[str, Any]) -> dict[str, Any]:
    """Options as typed on the command line (strings) -> the reader's types: a comma-separated list or a
    YAML list for list options, none / null for an optional value, \\t for a tab. Non-strings pass unchanged."""
    import yaml

    params = inspect.signature(reader).parameters
    out = {}
    for key, value in options.items():
        annotation = str(params[key].annotation)
        if isinstance(value, str):
            text = value.strip()
            if "Sequence" in annotation or "list" in annotation:
                if text.startswith("["):
                    try:
                        value = yaml.safe_load(text)
                    except yaml.YAMLError as err:
                        raise DataFormatError(f"option {key}={value!r} is not a valid list ({err}); "
                                              f"write {key}=a,b or {key}=[a, b]") from None
                else:
                    value = [part.strip() for part in text.split(",") if part.strip()]
                if not isinstance(value, list) or not value:
                    raise DataFormatError(f"option {key}={text!r}: expected one or more column names, e.g. {key}=a,b")
                value = [str(v) for v in value]
            elif "None" in annotation and text.lower() in ("none", "null", "~"):
                value = None
            elif key == "sep" and text in ("\\t", "tab"):
                value = "\t"
        if key == "encoding":
            try:
                codecs.lookup(value)
            except (LookupError, TypeError):
                raise DataFormatError(f"option encoding={value!r}: unknown text encoding; use e.g. utf-8, latin-1 "
                                      "or cp1252") from None
        out[key] = value
    return out


# Files that only one layout has: given one of them, that layout's folder is read.
KNOWN_FILES = {"behaviors.tsv": "mind", "news.tsv": "mind", "transactions_train.csv": "hm", "articles.csv": "hm",
               "customers.csv": "hm", "u.data": "movielens", "u.item": "movielens", "ratings.dat": "movielens",
               "movies.dat": "movielens"}
# Readers that take a file as well as a folder.
FILE_FORMATS = ("table", "recbole")


def resolve_source(path: str | Path, format: str | None = None) -> tuple[Path, str | None]:
    """(what to read, a note for the log): a file of a known layout stands for its folder; a file given to a
    format that reads folders is an error naming both."""
    path = Path(path)
    if not path.is_file():
        return path, None
    known = KNOWN_FILES.get(path.name.lower())
    if known and format in (None, known):
        return path.parent, f"{path} is the {known} layout's {path.name}: read its folder {path.parent}"
    if format is not None and format in READERS and format not in FILE_FORMATS:
        other = f" (the {known} layout's {path.name}: --format {known} reads its folder)" if known else ""
        raise DataFormatError(f"--format {format}: {path} is a file{other}; the {format} format reads a folder of "
                              f"{FORMATS[format].files}: give that folder")
    return path, None


def detect_format(path: str | Path) -> str:
    """Name the format of a dataset folder (or file) from the files it holds."""
    path = Path(path)
    if path.is_file():
        if path.suffix == ".inter":
            return "recbole"
        if path.suffix in (".csv", ".tsv", ".parquet"):
            return "table"
        raise DataFormatError(f"{path}: cannot tell the format of this file; pass format= "
                              f"(one of {', '.join(READERS)}).")
    if not path.is_dir():
        raise DataFormatError(f"{path}: no such file or folder.")

    def has(*names: str) -> bool:
        return all((path / name).is_file() for name in names)

    if has("u.data") or has("ratings.dat", "movies.dat"):
        return "movielens"
    if any(path.glob("*.inter")):
        return "recbole"
    if split_folders(path):
        return "mind"
    # image datasets, before table / sequences: their folders also hold CSV / TSV files
    if has("transactions_train.csv", "articles.csv"):
        return "hm"
    if any(path.glob("*/data.mdb")) or any(p.is_file() for p in path.glob("*.lmdb")):
        return "lmdb"
    if any(path.glob("*_pairs.*")) and any(path.glob("*_titles.csv")):
        return "microlens"
    if any(path.glob("*_pair.csv")) and any(path.glob("*_item.csv")):
        return "ninerec"
    if any(p.is_dir() for p in path.glob("*cover*")) and not has("interactions.csv"):
        return "pixelrec"
    if any(has(f"interactions{suffix}") for suffix in (".csv", ".tsv", ".txt", ".parquet")):
        return "table"
    if len([p for p in path.iterdir() if p.suffix in (".tsv", ".txt")]) >= 2:
        return "sequences"
    if any(p.suffix in (".csv", ".parquet") for p in path.iterdir() if p.is_file()):
        return "table"  # your own tables under your own names: the table reader finds which is which
    present = ", ".join(sorted(p.name for p in path.iterdir())[:12]) or "nothing"
    raise DataFormatError(
        f"{path}: cannot tell the format (found: {present}). Known formats: movielens (u.data, u.item), "
        "recbole (<name>.inter, <name>.item), mind (behaviors.tsv, news.tsv), table (interactions.csv, "
        "items.csv), sequences (a user<TAB>items file and an id<TAB>title file), hm (transactions_train.csv, "
        "articles.csv, images/), lmdb (sequences + an image LMDB), pixelrec (interactions CSV + cover/), ninerec "
        "(*_pair.csv, *_item.csv), microlens (*_pairs.tsv, *_titles.csv, *_covers/). Pass format= explicitly."
    )


def read_raw(path: str | Path, format: str | None = None, **options) -> RawDataset:
    """Read any supported dataset into the canonical :class:`RawDataset`; format None -> detect. A file of a known
    layout (behaviors.tsv, transactions_train.csv, ...) reads its folder, and the log says so."""
    path, note = resolve_source(path, format)
    name = format or detect_format(path)
    if name not in READERS:
        raise DataFormatError(f"unknown format {name!r}; known formats: {', '.join(READERS)}.")
    reader = READERS[name]
    accepted = [p for p in inspect.signature(reader).parameters if p != "path"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise DataFormatError(f"the {name} reader has no option {', '.join(unknown)}; "
                              f"its options are: {', '.join(accepted)} (`morec data formats` explains each).")
    raw = reader(path, **coerce_options(name, reader, options))
    if note:
        raw.notes.insert(0, note)
    return raw
