"""PixelRec (Pixel200K / 1M / 8M / PixelRec50K) in its published layout.

An interactions CSV (``item_id,user_id,timestamp``), an item-information CSV (``item_id``, counts,
``title``, ``tag``, ``description``) and a cover folder with ``<item_id>.jpg`` (ids look like
``i123``; covers named ``i{number}.jpg`` for numeric ids are found too). Files may sit in the
folder itself or in its subfolders (``pixelrec_interaction/``, ``pixelrec_iteminfo/``, ``cover/``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from morec.data.formats import DataFormatError, RawDataset
from morec.data.formats.covers import ITEM_NAMES, assemble, find_one, read_item_table, read_pairs

TEXT = ("title", "tag", "description")


def _headers(path: Path) -> list[str]:
    with open(path, encoding="utf-8", errors="replace") as handle:
        return [h.strip().strip('"').lower() for h in handle.readline().split(",")]


def find_tables(folder: Path) -> tuple[Path, Path | None]:
    """(interactions, item information) among the folder's CSVs (depth <= 1), told apart by header."""
    csvs = sorted(folder.glob("*.csv")) + sorted(folder.glob("*/*.csv"))
    inter = [p for p in csvs if "user_id" in _headers(p)]
    info = [p for p in csvs if "user_id" not in _headers(p) and set(_headers(p)) & set(ITEM_NAMES)
            and "title" in _headers(p)]
    if len(inter) != 1:
        raise DataFormatError(f"{folder}: expected one interactions CSV (item_id,user_id,timestamp), found "
                              f"{', '.join(p.name for p in inter) or 'none'}; pass interactions_file='...'.")
    return inter[0], (info[0] if len(info) == 1 else None)


def read_pixelrec(path: str | Path, *, interactions_file: str | None = None, items_file: str | None = None,
                  cover_dir: str | None = None, text_columns: Sequence[str] | None = ("title",),
                  encoding: str = "utf-8") -> RawDataset:
    """``text_columns``: among title, tag, description (and any other item-table column)."""
    folder = Path(path)
    if not folder.is_dir():
        raise DataFormatError(f"{folder}: no such folder.")
    found_inter, found_items = (None, None) if interactions_file and items_file else find_tables(folder)
    inter_path = folder / interactions_file if interactions_file else found_inter
    items_path = folder / items_file if items_file else found_items
    covers = folder / cover_dir if cover_dir else find_one(folder, ["cover*", "*cover*", "*/cover*", "images"],
                                                           "cover folder", "cover_dir", dirs=True)
    notes: list[str] = []
    inter = read_pairs(inter_path, encoding=encoding)
    items = read_item_table(items_path, text_columns=text_columns, encoding=encoding) if items_path else None
    return assemble(inter, items, folder=folder, cover_dir=covers, name=folder.name, notes=notes,
                    items_source=items_path or "the (absent) item table", prefixes=("", "i"))
