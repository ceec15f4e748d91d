"""Shared pieces of the image-dataset readers (PixelRec, NineRec, MicroLens, H&M): a pairs table
(user, item, time) found by column name, an item table, and a folder of cover images named by item id.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from morec.data.formats import DataFormatError, RawDataset
from morec.data.formats.table import (
    check_unique_items, finish, read_delimited, require_nonempty,
)
from morec.data.formats.timestamps import parse_timestamps

USER_NAMES = ("user_id", "user", "userid", "uid", "customer_id")
ITEM_NAMES = ("item_id", "item", "itemid", "iid", "video_id", "videoid", "article_id")
TIME_NAMES = ("timestamp", "time", "ts", "t_dat", "date", "datetime")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def pick_column(columns: Sequence[str], names: Sequence[str], path: Path, what: str,
                given: str | None = None, required: bool = True) -> str | None:
    """The column called ``given``, else the first whose lower-cased name is in ``names``."""
    if given is not None:
        if given not in columns:
            raise DataFormatError(f"{path}: no column {given!r}; its columns are {', '.join(map(repr, columns))}.")
        return given
    lower = {str(c).lower(): c for c in columns}
    for name in names:
        if name in lower:
            return lower[name]
    if required:
        raise DataFormatError(f"{path}: no {what} column (looked for {', '.join(names)}; found "
                              f"{', '.join(map(repr, columns))}). Pass {what}_column='...'.")
    return None


def read_pairs(path: Path, *, sep: str = ",", user_column: str | None = None, item_column: str | None = None,
               time_column: str | None = None, encoding: str = "utf-8") -> pd.DataFrame:
    """(user, item, timestamp) rows of a pairs table with a header; no time column = file order."""
    frame = read_delimited(path, sep=sep, header=True, layout="a header line naming user, item (and time) columns",
                           encoding=encoding, quoting=csv.QUOTE_MINIMAL)
    user = pick_column(frame.columns, USER_NAMES, path, "user", user_column)
    item = pick_column(frame.columns, ITEM_NAMES, path, "item", item_column)
    when = pick_column(frame.columns, TIME_NAMES, path, "time", time_column, required=False)
    require_nonempty(frame, [user, item], path)
    if when is not None:
        times = parse_timestamps(frame[when], path, when, allow_dates=True)
    else:
        times = pd.Series(np.arange(len(frame), dtype="int64"), index=frame.index)
    return pd.DataFrame({"user": frame[user], "item": frame[item], "timestamp": times})


def read_item_table(path: Path, *, sep: str = ",", item_column: str | None = None,
                    text_columns: Sequence[str] | None = None, header: bool = True,
                    encoding: str = "utf-8") -> pd.DataFrame:
    """(item, text columns...) of an item table. Without a header the columns are item, title.
    ``text_columns=None`` keeps every column that holds text (not numbers)."""
    frame = read_delimited(path, sep=sep, header=header, encoding=encoding, quoting=csv.QUOTE_MINIMAL,
                           layout="a header line naming an item id column and text columns" if header
                           else "item,title (no header)")
    if not header:
        frame.columns = ["item", "title"] + [f"text{i}" for i in range(2, frame.shape[1])]
    item = pick_column(frame.columns, ITEM_NAMES, path, "item", item_column)
    require_nonempty(frame, [item], path)
    check_unique_items(frame[item], path)
    if text_columns is None:
        text_columns = [c for c in frame.columns if c != item and _textual(frame[c])]
    missing = [c for c in text_columns if c not in frame.columns]
    if missing:
        raise DataFormatError(f"{path}: no column {', '.join(map(repr, missing))}; its columns are "
                              f"{', '.join(map(repr, frame.columns))}.")
    out = pd.DataFrame({"item": frame[item]})
    for c in text_columns:
        out[c] = frame[c]
    return out


def _textual(values: pd.Series) -> bool:
    filled = values[values != ""]
    return len(filled) > 0 and pd.to_numeric(filled, errors="coerce").isna().any()


def has_header(path: Path, names: Sequence[str] = ITEM_NAMES, encoding: str = "utf-8") -> bool:
    with open(path, encoding=encoding, errors="replace") as handle:
        first = handle.readline().strip().lower().replace('"', "")
    return any(field.strip() in names for field in first.split(","))


def find_one(folder: Path, patterns: Sequence[str], what: str, option: str, dirs: bool = False) -> Path:
    """The one file (or folder) of ``folder`` matching the first pattern that matches anything."""
    for pattern in patterns:
        found = sorted(p for p in folder.glob(pattern) if (p.is_dir() if dirs else p.is_file()))
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise DataFormatError(f"{folder}: several {what} ({', '.join(p.name for p in found)}); pass {option}='...'.")
    raise DataFormatError(f"{folder}: no {what} found (looked for {', '.join(patterns)}); pass {option}='...'.")


def cover_images(items: pd.Series, folder: Path, cover_dir: Path, prefixes: Sequence[str] = ("",)) -> pd.Series:
    """Each item's cover path relative to ``folder``: ``<cover_dir>/<prefix><item><suffix>``, the
    prefix and suffix chosen as the first combination that exists for the first items (so a whole
    dataset is resolved without a stat per item). Items without a file are reported by the image store."""
    rel = cover_dir.relative_to(folder) if cover_dir.is_relative_to(folder) else cover_dir
    sample = items.astype(str).head(50).tolist()
    best, hits = (prefixes[0], IMAGE_SUFFIXES[0]), -1
    for prefix in prefixes:
        for suffix in IMAGE_SUFFIXES:
            n = sum((cover_dir / f"{prefix}{i}{suffix}").is_file() for i in sample)
            if n > hits:
                best, hits = (prefix, suffix), n
    prefix, suffix = best
    return (str(rel) + "/" + prefix) + items.astype(str) + suffix


def assemble(interactions: pd.DataFrame, items: pd.DataFrame | None, *, folder: Path, cover_dir: Path | None,
             name: str, notes: list[str], items_source: Path | str, prefixes: Sequence[str] = ("",)) -> RawDataset:
    """The canonical dataset; items listed only in the interactions get a row (and a cover path)."""
    if items is None:
        items = pd.DataFrame({"item": pd.unique(interactions["item"].astype(str))})
        notes.append(f"{folder}: no item table; items have no text.")
    if cover_dir is not None:
        extra = pd.Index(pd.unique(interactions["item"].astype(str))).difference(pd.Index(items["item"].astype(str)))
        if len(extra):  # an interacted item with a cover but no item-table row still has its image
            items = pd.concat([items, pd.DataFrame({"item": extra.to_numpy()})], ignore_index=True)
        items["image"] = cover_images(items["item"], folder, cover_dir, prefixes).to_numpy()
    return finish(interactions, items, name=name, root=folder, notes=notes, items_source=items_source)
