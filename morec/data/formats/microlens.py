"""MicroLens (MicroLens-50k / 100k / 1M) in its published layout.

``MicroLens-*_pairs.tsv`` (``user<TAB>item item ...`` in time order) or ``MicroLens-*_pairs.csv``
(user, item, timestamp), ``MicroLens-*_titles.csv`` (item, title; with or without a header) and a
cover folder ``MicroLens-*_covers/`` with ``<item>.jpg``.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from morec.data.formats import DataFormatError, RawDataset
from morec.data.formats.covers import assemble, find_one, has_header, read_item_table, read_pairs
from morec.data.formats.table import read_delimited, require_nonempty


def _read_pairs_tsv(path: Path, encoding: str) -> pd.DataFrame:
    lines = read_delimited(path, sep="\t", header=False, min_fields=2, max_fields=2, encoding=encoding,
                           layout="user<TAB>item item item ... (items in time order)")
    require_nonempty(lines, {0: "user"}, path)
    events = lines[1].str.split().explode().dropna()
    users = lines[0].reindex(events.index)
    pos = users.groupby(users.to_numpy(), sort=False).cumcount().astype("int64")  # position = time
    return pd.DataFrame({"user": users.to_numpy(), "item": events.to_numpy(), "timestamp": pos.to_numpy()})


def read_microlens(path: str | Path, *, pairs_file: str | None = None, titles_file: str | None = None,
                   cover_dir: str | None = None, encoding: str = "utf-8") -> RawDataset:
    folder = Path(path)
    if not folder.is_dir():
        raise DataFormatError(f"{folder}: no such folder.")
    pairs = folder / pairs_file if pairs_file else find_one(folder, ["*_pairs.csv", "*_pairs.tsv"],
                                                             "pairs file (*_pairs.csv / .tsv)", "pairs_file")
    titles = folder / titles_file if titles_file else find_one(folder, ["*_titles.csv", "*_title.csv"],
                                                                "titles file (*_titles.csv)", "titles_file")
    covers = folder / cover_dir if cover_dir else find_one(folder, ["*_covers", "*_cover", "covers", "cover"],
                                                           "cover folder", "cover_dir", dirs=True)
    inter = _read_pairs_tsv(pairs, encoding) if pairs.suffix == ".tsv" else read_pairs(pairs, encoding=encoding)
    header = has_header(titles)
    items = read_item_table(titles, header=header, text_columns=None if header else ["title"], encoding=encoding)
    name = pairs.name.rsplit("_pairs", 1)[0]
    return assemble(inter, items, folder=folder, cover_dir=covers, name=name, notes=[], items_source=titles)
