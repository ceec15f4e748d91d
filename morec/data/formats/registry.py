"""Format names -> readers, and detection of the format from the files present."""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Callable

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
    present = ", ".join(sorted(p.name for p in path.iterdir())[:12]) or "nothing"
    raise DataFormatError(
        f"{path}: cannot tell the format (found: {present}). Known formats: movielens (u.data, u.item), "
        "recbole (<name>.inter, <name>.item), mind (behaviors.tsv, news.tsv), table (interactions.csv, "
        "items.csv), sequences (a user<TAB>items file and an id<TAB>title file), hm (transactions_train.csv, "
        "articles.csv, images/), lmdb (sequences + an image LMDB), pixelrec (interactions CSV + cover/), ninerec "
        "(*_pair.csv, *_item.csv), microlens (*_pairs.tsv, *_titles.csv, *_covers/). Pass format= explicitly."
    )


def read_raw(path: str | Path, format: str | None = None, **options) -> RawDataset:
    """Read any supported dataset into the canonical :class:`RawDataset`; format None -> detect."""
    name = format or detect_format(path)
    if name not in READERS:
        raise DataFormatError(f"unknown format {name!r}; known formats: {', '.join(READERS)}.")
    reader = READERS[name]
    accepted = [p for p in inspect.signature(reader).parameters if p != "path"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise DataFormatError(f"the {name} reader has no option {', '.join(unknown)}; "
                              f"its options are: {', '.join(accepted)}.")
    return reader(path, **options)
