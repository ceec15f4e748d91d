"""H&M Personalized Fashion Recommendations (Kaggle), in its published layout.

``transactions_train.csv`` (t_dat, customer_id, article_id, price, sales_channel_id), ``articles.csv``
(article_id, prod_name, ..., detail_desc) and ``images/0XX/0XXXXXXXXX.jpg`` (the folder is the first
three digits of the ten-digit article id). A purchase is an interaction; its day is its time, and
purchases of one day keep the file order (prepare sorts stably).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from morec.data.formats import DataFormatError, RawDataset
from morec.data.formats.covers import read_item_table, read_pairs
from morec.data.formats.table import finish, require_file

# articles.csv column -> canonical text column
DEFAULT_TEXT = {"prod_name": "title", "detail_desc": "description"}


def article_id(values: pd.Series) -> pd.Series:
    """Ten-digit ids with the leading zero the images use ('108775015' -> '0108775015'), whether or not
    a spreadsheet round-trip dropped it."""
    return values.astype(str).str.strip().str.zfill(10)


def read_hm(path: str | Path, *, text_columns: Sequence[str] | None = None, images_dir: str = "images",
            encoding: str = "utf-8") -> RawDataset:
    """``text_columns``: articles.csv columns to keep as item text (default prod_name -> title,
    detail_desc -> description; any others keep their own names)."""
    folder = Path(path)
    if not folder.is_dir():
        raise DataFormatError(f"{folder}: no such folder.")
    hint = "H&M needs transactions_train.csv, articles.csv and images/ from the Kaggle competition data."
    tx_path = require_file(folder / "transactions_train.csv", hint)
    art_path = require_file(folder / "articles.csv", hint)
    inter = read_pairs(tx_path, user_column="customer_id", item_column="article_id", time_column="t_dat",
                       encoding=encoding)
    inter["item"] = article_id(inter["item"])
    wanted = list(text_columns) if text_columns is not None else list(DEFAULT_TEXT)
    items = read_item_table(art_path, item_column="article_id", text_columns=wanted, encoding=encoding)
    items = items.rename(columns={k: v for k, v in DEFAULT_TEXT.items() if k in wanted})
    items["item"] = article_id(items["item"])
    notes: list[str] = []
    if not (folder / images_dir).is_dir():
        notes.append(f"{folder / images_dir}: no image folder; every item image will be reported missing.")
    items["image"] = images_dir + "/" + items["item"].str[:3] + "/" + items["item"] + ".jpg"
    return finish(inter, items, name=folder.name, root=folder, notes=notes, items_source=art_path)
