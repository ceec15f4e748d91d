"""NineRec's downstream datasets (e.g. ``Bili_Food``) in their published layout.

``<Name>_pair.csv`` (user, item and time columns, named in a header), ``<Name>_item.csv`` (item id
and text, e.g. a title) and a cover folder (``<Name>_cover/`` or ``cover/``) with ``<item>.jpg``.
Without a time column the pair file's order is the time.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from morec.data.formats import DataFormatError, RawDataset
from morec.data.formats.covers import assemble, find_one, has_header, read_item_table, read_pairs


def read_ninerec(path: str | Path, *, pair_file: str | None = None, item_file: str | None = None,
                 cover_dir: str | None = None, user_column: str | None = None, item_column: str | None = None,
                 time_column: str | None = None, text_columns: Sequence[str] | None = None,
                 encoding: str = "utf-8") -> RawDataset:
    folder = Path(path)
    if not folder.is_dir():
        raise DataFormatError(f"{folder}: no such folder.")
    pairs = folder / pair_file if pair_file else find_one(folder, ["*_pair.csv", "*_pairs.csv"], "pair file (*_pair.csv)", "pair_file")
    items_path = folder / item_file if item_file else find_one(folder, ["*_item.csv", "*_items.csv"], "item file (*_item.csv)", "item_file")
    covers = folder / cover_dir if cover_dir else find_one(folder, ["*_cover", "*_covers", "cover", "covers", "images"],
                                                           "cover folder", "cover_dir", dirs=True)
    inter = read_pairs(pairs, user_column=user_column, item_column=item_column, time_column=time_column,
                       encoding=encoding)
    items = read_item_table(items_path, item_column=item_column if has_header(items_path) else None,
                            text_columns=text_columns, header=has_header(items_path), encoding=encoding)
    name = pairs.name.rsplit("_pair", 1)[0]
    return assemble(inter, items, folder=folder, cover_dir=covers, name=name, notes=[], items_source=items_path)
