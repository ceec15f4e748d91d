"""Delimited text read defensively: every field a string, the index the file's line number, and a ragged row, a
bad encoding or an empty file refused in one line that names the file and the line."""
from __future__ import annotations

import csv
import re
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from morec.data.formats import DataFormatError
from morec.data.formats.guards import header_fields, no_field_limit, refuse_repeated_columns

_TOKENIZER_ERROR = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def _first_undecodable_line(path: Path, encoding: str) -> tuple[int, str]:
    # Only runs after a decode failure, so a plain loop over the lines is fine here.
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                raw.decode(encoding)
            except UnicodeDecodeError as err:
                return number, f"bytes {raw[err.start:err.end]!r} at column {err.start + 1}"
    return 0, "unknown position"


def _read_csv(path: Path, sep: str, header: bool, layout: str, encoding: str, quoting: int,
              usecols: Sequence[str] | None) -> tuple[pd.DataFrame, list]:
    """pandas' fast read, every field as str, with its parser warnings; its errors as one-line DataFormatErrors."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pd.errors.ParserWarning)
            frame = pd.read_csv(
                path, sep=sep, header=0 if header else None, dtype=str, na_filter=False,
                quoting=quoting, skip_blank_lines=False, encoding=encoding, usecols=usecols,
                index_col=False,
            )
    except FileNotFoundError:
        raise DataFormatError(f"{path}: file not found. Expected {layout}.") from None
    except pd.errors.EmptyDataError:
        raise DataFormatError(f"{path}: the file is empty. Expected {layout}.") from None
    except pd.errors.ParserError as err:
        found = _TOKENIZER_ERROR.search(str(err))
        if found is None:
            raise DataFormatError(f"{path}: cannot parse the file ({err}). Expected {layout}.") from None
        expected, line, saw = found.groups()
        raise _ragged(path, int(line), int(saw), int(expected), sep, layout, header) from None
    except UnicodeDecodeError:
        line, detail = _first_undecodable_line(path, encoding)
        raise DataFormatError(
            f"{path}, line {line}: not valid {encoding} text ({detail}). Re-save the file as "
            f"{encoding}, or pass encoding='...' with the file's real encoding (e.g. 'latin-1')."
        ) from None
    return frame, caught


def read_delimited(
    path: Path,
    *,
    sep: str,
    header: bool,
    layout: str,
    encoding: str = "utf-8",
    min_fields: int = 1,
    max_fields: int | None = None,
    quoting: int = csv.QUOTE_NONE,
    usecols: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Read a delimited text file with every field as str ('' when empty).

    The index is the 1-based line number in the file, so callers can name the line of any bad
    value. Blank lines carry no data and are skipped. ``layout`` describes the expected line in
    words for error messages. A row with more or fewer fields than the header (or, without a
    header, than the first line when the layout fixes the count) is an error naming its line:
    pandas would otherwise pad a short row with '' or turn a long first row into an index.
    """
    frame, caught = _read_csv(path, sep, header, layout, encoding, quoting, usecols)
    if header:
        refuse_repeated_columns(path, header_fields(path, sep, quoting, encoding))
    n_fields = frame.shape[1]
    if n_fields < min_fields or (max_fields is not None and n_fields > max_fields):
        wanted = str(min_fields) if max_fields == min_fields else f"{min_fields} to {max_fields or 'any'}"
        raise DataFormatError(
            f"{path}, line 1: {n_fields} fields (separator {sep!r}) where {wanted} are expected. "
            f"Expected {layout}."
        )
    frame.index = np.arange(len(frame)) + (2 if header else 1)
    blank = (frame == "").all(axis=1)
    long_first_row = any("Length of header" in str(w.message) for w in caught)
    # A short row shows only as '' in its trailing fields; look closer only when the last column has one.
    if usecols is None and (header or min_fields == max_fields) and (long_first_row or (
            n_fields > 1 and ((frame.iloc[:, -1] == "") & ~blank).any())):
        bad = _first_ragged_record(path, sep, quoting, encoding, n_fields, skip=1 if header else 0)
        if bad is not None:
            raise _ragged(path, bad[0], bad[1], n_fields, sep, layout, header)
    return frame[~blank] if blank.any() else frame


def _ragged(path: Path, line: int, saw: int, expected: int, sep: str, layout: str, header: bool) -> DataFormatError:
    return DataFormatError(
        f"{path}, line {line}: {saw} field{'s' if saw != 1 else ''} where the file's {'header' if header else 'first line'} has {expected} "
        f"(separator {sep!r}). Expected {layout}. Fix or remove that line (quote fields that contain {sep!r})."
    )


def _first_ragged_record(path: Path, sep: str, quoting: int, encoding: str, n_fields: int,
                         skip: int) -> tuple[int, int] | None:
    """(line, fields) of the first non-blank record whose field count is not ``n_fields``; only runs when
    the fast read hinted at one, so a plain loop is fine."""
    with open(path, newline="", encoding=encoding) as handle, no_field_limit():
        reader = csv.reader(handle, delimiter=sep, quoting=quoting)
        for number, row in enumerate(reader):
            if number < skip or not row or row == [""]:
                continue
            if len(row) != n_fields:
                return reader.line_num, len(row)
    return None
