"""Generic interaction / item tables (CSV, TSV, Parquet) with a column mapping.

This is also the native layout of ``morec data synth``: ``interactions.csv`` (user,item,timestamp)
and ``items.csv`` (item,title,...,image). The module also holds the small helpers the other readers share
(with morec.data.formats.delimited for text files and .timestamps for times), so that every format reports
bad input the same way.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from morec.data.formats import DataFormatError, RawDataset
from morec.data.formats.delimited import read_delimited
from morec.data.formats.guards import read_parquet
from morec.data.formats.timestamps import parse_timestamps

_SEPARATORS = {".csv": ",", ".tsv": "\t", ".txt": "\t"}
_TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet")


# --------------------------------------------------------------------------- shared helpers


def require_file(path: Path, hint: str) -> Path:
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found. {hint}")
    return path


def require_nonempty(frame: pd.DataFrame, columns: Sequence | dict, path: Path, *, where: str = "line") -> None:
    """Fail on the first empty required field; ``columns`` may map positions to readable names."""
    labels = columns if isinstance(columns, dict) else {column: column for column in columns}
    for column, label in labels.items():
        empty = frame[column].isna() | (frame[column].astype(str) == "")
        if empty.any():
            raise DataFormatError(
                f"{path}, {where} {frame.index[empty.to_numpy()][0]}: the {label} field is empty "
                f"({int(empty.sum())} {where}s like this). Every row needs a {label}; fix or remove them."
            )


def check_unique_items(ids: pd.Series, path: Path, *, where: str = "line") -> None:
    repeated = ids.duplicated(keep=False)
    if repeated.any():
        first = ids[repeated].iloc[0]
        lines = ids.index[(ids == first).to_numpy()][:5].tolist()
        raise DataFormatError(
            f"{path}: item {first!r} appears more than once ({where}s {', '.join(map(str, lines))}; "
            f"{int(ids[repeated].nunique())} ids are repeated). Each item needs exactly one row: "
            "remove or merge the duplicates."
        )


def apply_image_pattern(items: pd.Series, pattern: str) -> pd.Series:
    """'covers/{item}.jpg' -> one path per item; any str.format field of ``item`` works."""
    pieces = pattern.split("{item}")
    if all("{" not in piece and "}" not in piece for piece in pieces):
        # The common case, done without a Python loop.
        ids = items.astype(str)
        result = pd.Series(pieces[0], index=items.index, dtype=str)
        for piece in pieces[1:]:
            result = result + ids + piece
        return result
    return pd.Series([pattern.format(item=item) for item in items.astype(str)], index=items.index, dtype=str)


def finish(
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    *,
    name: str,
    root: Path | None,
    notes: list[str],
    items_source: Path | str,
    id_column: str | None = None,
) -> RawDataset:
    """Canonical dtypes and column order, plus a note for interactions without item content."""
    interactions = pd.DataFrame({
        "user": interactions["user"].astype(str).to_numpy(),
        "item": interactions["item"].astype(str).to_numpy(),
        "timestamp": interactions["timestamp"].to_numpy(),
        **({"timed": interactions["timed"].astype(bool).to_numpy()} if "timed" in interactions else {}),
    })
    items = items.reset_index(drop=True)
    items["item"] = items["item"].astype(str)
    for column in items.columns:
        if column != "item":
            items[column] = items[column].fillna("").astype(str)
    missing = ~interactions["item"].isin(items["item"])
    if missing.any():
        notes.append(
            f"{int(missing.sum())} interactions refer to {interactions['item'][missing].nunique()} "
            f"items missing from {items_source}; they are kept, with empty content."
        )
    return RawDataset(interactions=interactions, items=items, name=name, root=root, notes=notes, id_column=id_column)


# --------------------------------------------------------------------------- the table reader


def _named_table(folder: Path, given: str | Path | None, stem: str) -> Path | None:
    """The file an option names, or the folder's ``{stem}.csv / .tsv / .txt / .parquet``."""
    if given is not None:
        path = Path(given) if Path(given).is_absolute() else folder / given
        return require_file(path, f"Check the {stem}_file option.")
    found = [folder / f"{stem}{suffix}" for suffix in _TABLE_SUFFIXES if (folder / f"{stem}{suffix}").is_file()]
    if len(found) > 1:
        raise DataFormatError(
            f"{folder}: several {stem} tables ({', '.join(p.name for p in found)}); "
            f"pass {stem}_file= to pick one."
        )
    return found[0] if found else None


def _columns_of(path: Path, sep: str | None, encoding: str) -> list[str]:
    """A table's column names from its header alone ([] when it cannot be read)."""
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        sep = sep or _SEPARATORS.get(path.suffix)
        if sep is None:
            return []
        return [str(c) for c in pd.read_csv(path, sep=sep, nrows=0, encoding=encoding, encoding_errors="replace").columns]
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return []


def _guess_table(folder: Path, stem: str, holds: Sequence[str], lacks: Sequence[str], exclude: Path | None,
                 sep: str | None, encoding: str, notes: list[str]) -> Path | None:
    """The folder's one table holding every column of ``holds`` and none of ``lacks``; None when there is none.

    Guessing is safe only when exactly one file fits, so several candidates are an error naming them.
    """
    tables = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in _TABLE_SUFFIXES and p != exclude)
    columns = {p: _columns_of(p, sep, encoding) for p in tables}
    fits = [p for p, cols in columns.items() if all(c in cols for c in holds) and not any(c in cols for c in lacks)]
    if len(fits) > 1:
        raise DataFormatError(
            f"{folder}: several tables could be the {stem} table ({', '.join(p.name for p in fits)} all have "
            f"column(s) {', '.join(map(repr, holds))}); pass {stem}_file= to pick one."
        )
    if fits:
        notes.append(f"{stem} table: guessed {fits[0].name} (the folder's only table with column(s) "
                     f"{', '.join(map(repr, holds))}); pass {stem}_file= to choose another.")
        return fits[0]
    return None


def _locate_tables(folder: Path, interactions_file, items_file, user_column: str, item_column: str,
                   item_id_column: str | None, sep: str | None, encoding: str, notes: list[str]) -> tuple[Path, Path | None]:
    inter_path = _named_table(folder, interactions_file, "interactions")
    if inter_path is None:
        inter_path = _guess_table(folder, "interactions", [user_column, item_column], [], None, sep, encoding, notes)
    if inter_path is None:
        present = {p.name: _columns_of(p, sep, encoding) for p in sorted(folder.iterdir())
                   if p.is_file() and p.suffix in _TABLE_SUFFIXES}
        shown = "; ".join(f"{name}: {', '.join(cols) or '?'}" for name, cols in present.items()) or "no tables"
        raise DataFormatError(
            f"{folder}: no interactions table (interactions.csv / .tsv / .parquet, or a single table with columns "
            f"{user_column!r} and {item_column!r}); found {shown}. Pass user_column= and item_column= with your "
            "column names, or interactions_file= with the file name."
        )
    items_path = _named_table(folder, items_file, "items")
    if items_path is None and items_file is None:
        item_key = item_id_column or item_column
        items_path = _guess_table(folder, "items", [item_key], [user_column], inter_path, sep, encoding, notes)
        if items_path is None and item_id_column is None and item_column != "item":
            items_path = _guess_table(folder, "items", ["item"], [user_column], inter_path, sep, encoding, notes)
    return inter_path, items_path


def _load(path: Path, columns: Sequence[str] | None, sep: str | None, encoding: str) -> tuple[pd.DataFrame, str]:
    """The table (index: line number, or row number for Parquet) and the word for its rows."""
    if path.suffix == ".parquet":
        frame = read_parquet(path, columns)
        frame.index = np.arange(len(frame)) + 1
        return frame, "row"
    if sep is None:
        if path.suffix not in _SEPARATORS:
            raise DataFormatError(f"{path}: cannot tell the separator from the extension; pass sep=','.")
        sep = _SEPARATORS[path.suffix]
    if columns is not None:
        # Only the header line is read here; decoding problems are reported by the full read below.
        try:
            header = pd.read_csv(path, sep=sep, nrows=0, encoding=encoding, encoding_errors="replace").columns
        except pd.errors.EmptyDataError:
            raise DataFormatError(f"{path}: the file is empty. Expected a header line naming the columns.") from None
        _check_columns(path, list(header), columns)
    # Every column is read (not usecols=) so that a row with a stray extra field is reported by its field count.
    frame = read_delimited(path, sep=sep, header=True, layout="a header line naming the columns",
                           encoding=encoding, quoting=csv.QUOTE_MINIMAL)
    return (frame[list(columns)] if columns is not None else frame), "line"


def _check_columns(path: Path, present: Sequence[str], wanted: Sequence[str] | None) -> None:
    missing = [c for c in (wanted or []) if c not in present]
    if missing:
        raise DataFormatError(
            f"{path}: no column {', '.join(map(repr, missing))}; its columns are "
            f"{', '.join(map(repr, present))}. Pass the matching *_column option (e.g. user_column=...)."
        )


def _looks_textual(values: pd.Series) -> bool:
    if not (pd.api.types.is_string_dtype(values) or values.dtype == object):
        return False
    filled = values[values.astype(str) != ""]
    return len(filled) > 0 and pd.to_numeric(filled, errors="coerce").isna().any()


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")


def _guess_image_column(table: pd.DataFrame, skip: Sequence[str], folder: Path) -> tuple[str, str] | None:
    """(column, why) of the item table's first column of image paths: nearly all its filled values end in an
    image extension, or name files that exist under ``folder`` (a sample is checked); None when none does."""
    for column in table.columns:
        if column in skip or not (pd.api.types.is_string_dtype(table[column]) or table[column].dtype == object):
            continue
        values = table[column].astype(str).str.strip()
        values = values[values != ""]
        if values.empty:
            continue
        suffixes = values.str.lower().str.extract(r"(\.[a-z0-9]+)$", expand=False)
        if suffixes.isin(IMAGE_SUFFIXES).mean() >= 0.9:
            shown = ", ".join(sorted(set(suffixes.dropna()) & set(IMAGE_SUFFIXES)))
            return column, f"its values end in an image file extension ({shown})"
        sample = values.iloc[:200]
        if sample.map(lambda v: _is_file(folder / v)).mean() >= 0.9:
            return column, f"its values are files under {folder}"
    return None


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name too long for the file system, or holding a NUL
        return False


def read_table(
    path: str | Path,
    *,
    interactions_file: str | Path | None = None,
    items_file: str | Path | None = None,
    user_column: str = "user",
    item_column: str = "item",
    time_column: str | None = "timestamp",
    time_format: str | None = None,
    item_id_column: str | None = None,
    text_columns: Sequence[str] | None = None,
    image_column: str | None = None,
    image_pattern: str | None = None,
    sep: str | None = None,
    encoding: str = "utf-8",
) -> RawDataset:
    """Read an interactions table and an optional item table.

    ``path`` is a folder or the interactions file itself. In a folder, the interactions table is
    ``interactions.*`` or else the one table holding ``user_column`` and ``item_column``; the item
    table is ``items.*`` or else the one other table holding the item id column and not the user
    column. ``item_id_column`` (the item table's id) defaults to ``item_column`` when the item table
    has that column, else ``item``. ``time_column=None`` uses the file order as time; ``time_format``
    parses dates written another way than ISO (``%d/%m/%Y``). ``text_columns`` defaults to every
    non-id column of the item table holding text (not numbers); ``image_column`` defaults to
    ``image`` when the item table has that column. ``image_pattern`` builds image paths from item
    ids, e.g. ``"images/{item}.jpg"``. What was guessed is said in the dataset's notes (the log).
    """
    path = Path(path)
    if not path.exists():
        raise DataFormatError(f"{path}: no such file or folder.")
    folder = path if path.is_dir() else path.parent
    if path.is_file() and interactions_file is None:
        interactions_file = path.name
    notes: list[str] = []
    inter_path, items_path = _locate_tables(folder, interactions_file, items_file, user_column, item_column,
                                            item_id_column, sep, encoding, notes)
    interactions = _read_interactions(inter_path, user_column, item_column, time_column, time_format, sep, encoding)
    if items_path is None:
        # ID-only data is legitimate (IDRec needs nothing else); say so rather than fail.
        items = pd.DataFrame({"item": pd.unique(interactions["item"].astype(str))})
        notes.append(f"{folder}: no item table; the {len(items)} items have no text or image content.")
        items_source: Path | str = "the (absent) item table"
    else:
        items, item_id_column, image_column = _read_items(
            items_path, item_column, item_id_column, text_columns, image_column, image_pattern, sep, encoding, notes)
        items_source = items_path
    if image_pattern:
        items["image"] = apply_image_pattern(items["item"], image_pattern)

    raw = finish(interactions, items, name=folder.name, root=(items_path or inter_path).parent,
                 notes=notes, items_source=items_source, id_column=item_id_column or item_column)
    raw.image_column = image_column  # new items may name their images as the source did
    return raw


def _read_interactions(path: Path, user_column: str, item_column: str, time_column: str | None,
                       time_format: str | None, sep: str | None, encoding: str) -> pd.DataFrame:
    """user, item, timestamp (the file order when there is no time column), indexed by line."""
    wanted = [user_column, item_column] + ([time_column] if time_column else [])
    inter, where = _load(path, wanted, sep, encoding)
    if inter.empty:
        raise DataFormatError(f"{path}: no interactions (the table has a header but no rows); give a table "
                              "with one row per interaction")
    require_nonempty(inter, [user_column, item_column], path, where=where)
    if time_column:
        times = parse_timestamps(inter[time_column], path, time_column, where=where, allow_dates=True,
                                 time_format=time_format)
    else:
        times = pd.Series(np.arange(len(inter), dtype="int64"), index=inter.index)
    return pd.DataFrame({"user": inter[user_column], "item": inter[item_column], "timestamp": times})


def _read_items(path: Path, item_column: str, item_id_column: str | None, text_columns: Sequence[str] | None,
                image_column: str | None, image_pattern: str | None, sep: str | None, encoding: str,
                notes: list[str]) -> tuple[pd.DataFrame, str, str | None]:
    """(item, the text columns, image) and the id and image columns they were read from, guessed where not
    given (each guess said in ``notes``)."""
    raw_items, where = _load(path, None, sep, encoding)
    if item_id_column is None:
        item_id_column = item_column if item_column in raw_items.columns else "item"
        if item_id_column != "item":
            notes.append(f"{path.name}: item ids read from column {item_id_column!r} (as item_column); "
                         "pass item_id_column= if another column holds them.")
    _check_columns(path, list(raw_items.columns), [item_id_column])
    raw_items[item_id_column] = raw_items[item_id_column].astype(str)
    if image_column is None and "image" in raw_items.columns:
        image_column = "image"  # the native layout written by `morec data synth`
    elif image_column is None and image_pattern is None:
        image_column = _guessed_image_column(raw_items, [item_id_column, *(text_columns or [])], path, notes)
    require_nonempty(raw_items, [item_id_column], path, where=where)
    check_unique_items(raw_items[item_id_column], path, where=where)
    if text_columns is None:
        text_columns = [c for c in raw_items.columns
                        if c not in (item_id_column, image_column) and _looks_textual(raw_items[c])]
        notes.append(f"{path.name}: text columns {', '.join(map(repr, text_columns)) or '(none)'} "
                     "(the columns holding text); pass text_columns= to choose.")
    _check_columns(path, list(raw_items.columns), list(text_columns) + ([image_column] if image_column else []))
    items = pd.DataFrame({"item": raw_items[item_id_column]})
    for column in text_columns:
        items[column] = raw_items[column]
    if image_column:
        items["image"] = raw_items[image_column]
    return items, item_id_column, image_column


def _guessed_image_column(raw_items: pd.DataFrame, skip: Sequence[str], path: Path, notes: list[str]) -> str | None:
    found = _guess_image_column(raw_items, skip, path.parent)
    if not found:
        return None
    notes.append(f"{path.name}: image column {found[0]!r} ({found[1]}); pass image_column= to "
                 "choose another, or list it in text_columns= to read it as text.")
    return found[0]
