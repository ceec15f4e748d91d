"""RecBole atomic files: ``<name>.inter`` and ``<name>.item``, tab-separated, ``field:type`` headers."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from morec.data.formats import DataFormatError, RawDataset
from morec.data.formats.table import (
    check_unique_items, finish, read_delimited, require_file, require_nonempty,
)
from morec.data.formats.timestamps import parse_timestamps

FIELD_TYPES = ("token", "token_seq", "float", "float_seq")
TEXT_TYPES = ("token", "token_seq")
# RecBole's MovieLens field names -> the names the rest of morec uses for the same content.
RENAMES = {"movie_title": "title", "release_year": "year", "class": "genres"}
_HEADER = "a header line of name:type fields (types: token, token_seq, float, float_seq)"


def _field_types(frame: pd.DataFrame, path: Path) -> dict[str, str]:
    types: dict[str, str] = {}
    for column in frame.columns:
        name, _, kind = str(column).rpartition(":")
        if not name or kind not in FIELD_TYPES:
            raise DataFormatError(f"{path}, line 1: column header {column!r} is not name:type. Expected {_HEADER}.")
        types[name] = kind
    frame.columns = list(types)
    return types


def _find_name(folder: Path) -> str:
    found = sorted(folder.glob("*.inter"))
    if len(found) != 1:
        listed = ", ".join(p.name for p in found) or "none"
        raise DataFormatError(
            f"{folder}: expected exactly one <name>.inter file, found {listed}. Pass name='...' to pick one."
        )
    return found[0].stem


def read_recbole(
    path: str | Path,
    *,
    name: str | None = None,
    user_field: str = "user_id",
    item_field: str = "item_id",
    time_field: str = "timestamp",
    encoding: str = "utf-8",
) -> RawDataset:
    """A RecBole dataset folder (or its ``.inter`` file). No timestamp field -> file order.

    Item text is every token / token_seq field of ``.item`` except the id, named without its
    ``:type`` suffix (``movie_title`` -> ``title``, ``release_year`` -> ``year``, ``class`` -> ``genres``).
    """
    path = Path(path)
    folder = path.parent if path.is_file() else path
    if not folder.is_dir():
        raise DataFormatError(f"{folder}: no such folder.")
    if name is None:
        name = path.stem if path.is_file() else _find_name(folder)
    inter_path = require_file(folder / f"{name}.inter", f"A RecBole dataset needs {name}.inter.")
    item_path = require_file(
        folder / f"{name}.item",
        f"morec needs item content from {name}.item; for ID-only data use the 'table' reader.",
    )
    notes: list[str] = []

    inter = read_delimited(inter_path, sep="\t", header=True, layout=_HEADER, encoding=encoding)
    types = _field_types(inter, inter_path)
    for field, option in ((user_field, "user_field"), (item_field, "item_field")):
        if field not in types:
            raise DataFormatError(
                f"{inter_path}, line 1: no {field!r} field (fields: {', '.join(types)}). Pass {option}='...'."
            )
    require_nonempty(inter, [user_field, item_field], inter_path)
    if time_field in types:
        times = parse_timestamps(inter[time_field], inter_path, time_field)
    else:
        times = pd.Series(np.arange(len(inter), dtype="int64"), index=inter.index)
        notes.append(f"{inter_path}: no {time_field!r} field; the file order is used as time.")
    interactions = pd.DataFrame({"user": inter[user_field], "item": inter[item_field], "timestamp": times})

    raw_items = read_delimited(item_path, sep="\t", header=True, layout=_HEADER, encoding=encoding)
    item_types = _field_types(raw_items, item_path)
    if item_field not in item_types:
        raise DataFormatError(
            f"{item_path}, line 1: no {item_field!r} field (fields: {', '.join(item_types)}). Pass item_field='...'."
        )
    require_nonempty(raw_items, [item_field], item_path)
    check_unique_items(raw_items[item_field], item_path)
    items = pd.DataFrame({"item": raw_items[item_field]})
    for field, kind in item_types.items():
        if field != item_field and kind in TEXT_TYPES:
            items[RENAMES.get(field, field)] = raw_items[field]
    return finish(interactions, items, name=name, root=folder, notes=notes, items_source=item_path)
