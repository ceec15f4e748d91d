"""Checks that keep a raw table from being read as something it does not say: two columns of one name,
a CSV field over the csv module's size limit, a Parquet file cut short, and dates whose UTC offsets differ.
Each ends in a one-line DataFormatError naming the file (and the line) and what to do."""
from __future__ import annotations

import contextlib
import csv
import sys
from pathlib import Path
from typing import Iterator, Sequence

import pandas as pd

from morec.data.formats import DataFormatError


def refuse_repeated_columns(path: Path, names: Sequence) -> None:
    """Two columns of one name: a reader would use the first and silently ignore the other."""
    seen: dict[str, int] = {}
    for number, name in enumerate(map(str, names), start=1):
        if name in seen:
            raise DataFormatError(f"{path}: column {name!r} appears twice in the header (columns {seen[name]} and "
                                  f"{number}); rename or remove one of them")
        seen[name] = number


@contextlib.contextmanager
def no_field_limit() -> Iterator[None]:
    """csv's 128 KB field limit lifted while fields are counted (pandas, which read the file, has none)."""
    before = csv.field_size_limit()
    csv.field_size_limit(sys.maxsize)
    try:
        yield
    finally:
        csv.field_size_limit(before)


def header_fields(path: Path, sep: str, quoting: int, encoding: str) -> list[str]:
    """A delimited file's header names as written (pandas renames a repeated one to ``name.1``)."""
    with open(path, newline="", encoding=encoding, errors="replace") as handle, no_field_limit():
        return next(csv.reader(handle, delimiter=sep, quoting=quoting), [])


def read_parquet(path: Path, columns: Sequence[str] | None) -> pd.DataFrame:
    """A Parquet table (``columns`` of it, or all), its column names unique; a truncated or foreign file is an
    error naming it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        present = pq.read_schema(path).names
    except (pa.ArrowException, OSError) as err:
        detail = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise DataFormatError(f"{path}: not a readable Parquet file ({detail}); it may be truncated or not Parquet. "
                              "Write it again (or export the table as CSV)") from None
    refuse_repeated_columns(path, present)
    missing = [c for c in (columns or []) if c not in present]
    if missing:
        raise DataFormatError(f"{path}: no column {', '.join(map(repr, missing))}; its columns are "
                              f"{', '.join(map(repr, present))}. Pass the matching *_column option (e.g. user_column=...).")
    try:
        return pd.read_parquet(path, columns=list(columns) if columns is not None else None)
    except (pa.ArrowException, OSError) as err:
        raise DataFormatError(f"{path}: its data cannot be read ({str(err).splitlines()[0][:200]}); the file may be "
                              "truncated. Write it again") from None


# a time of day followed by its UTC offset (a date alone, 2020-01-01, ends in digits that are not one)
_OFFSET = r"\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$"


def to_dates(values: pd.Series, fmt: str, path: Path, column: str, where: str) -> pd.Series:
    """Dates parsed with ``fmt`` (NaT where one does not parse). Times with different UTC offsets are converted
    exactly to UTC; a time without an offset among times with one has no UTC time, which is an error."""
    try:
        return pd.to_datetime(values, errors="coerce", format=fmt)
    except ValueError as err:
        if "timezone" not in str(err).lower() and "tz-" not in str(err):
            raise
    dates = pd.to_datetime(values, errors="coerce", format=fmt, utc=True)
    zoned = values.astype(str).str.strip().str.contains(_OFFSET, regex=True).to_numpy(dtype=bool)
    naive = dates.notna().to_numpy() & ~zoned
    if naive.any() and zoned.any():
        line, other = values.index[naive][0], values.index[zoned][0]
        raise DataFormatError(
            f"{path}, {where} {line}: {column} {values.loc[line]!r} has no UTC offset while {where} {other} "
            f"({values.loc[other]!r}) has one ({int(naive.sum())} {where}s without). Give every time an offset "
            "(e.g. Z or +01:00) or none, so that they can be put in one order")
    return dates
