"""Interaction times read from any format: numbers, ISO dates or dates in a given format -> seconds since 1970.

One parser for every reader, so that a bad time is refused the same way (its file, its line, how many lines are
like it, what to do) whether it comes from a CSV table, MovieLens, RecBole or MIND.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from morec.data.formats import DataFormatError
from morec.data.formats.guards import to_dates

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_EXACT_FLOAT = 2**53  # beyond this a float64 no longer holds every whole second
_DIGITS = r"[+-]?\d+"


def parse_timestamps(
    values: pd.Series, path: Path, column: str, *, where: str = "line", allow_dates: bool = False,
    time_format: str | None = None, example: str | None = None,
) -> pd.Series:
    """Numbers (or, if allowed, ISO dates) -> int64 seconds when all are whole, else float64.

    Whole numbers are parsed exactly (a 20-digit string is not rounded through float64) and refused,
    with their line, when int64 cannot hold them; float seconds such as ``1610830704.0`` become int64.
    Fractional seconds stay float64 so that events within one second keep their order, and are
    refused beyond 2**53, where float64 cannot tell neighbouring seconds apart.

    ``time_format`` (a strftime pattern such as ``%d/%m/%Y %H:%M``) parses every value as a date in
    that format instead; the result is seconds since 1970 (UTC when the dates carry a zone). ``example``
    (a time written in that format) is what an error shows where the format is fixed by the source, not an option.
    """
    if pd.api.types.is_datetime64_any_dtype(values):
        return _seconds_since_epoch(values)
    if time_format:
        return _dates_in_format(values, time_format, path, column, where, example)
    if pd.api.types.is_bool_dtype(values):
        raise DataFormatError(f"{path}: {column} holds true/false values, not times. Pick the time column.")
    if pd.api.types.is_integer_dtype(values):
        exact = pd.Series([int(v) for v in values.to_numpy()], index=values.index, dtype=object) \
            if values.dtype.kind == "u" else values
        _refuse_out_of_range(exact, values, path, column, where)
        return values.astype("int64")
    text, numbers = _as_numbers(values)
    bad = numbers.isna() | ~np.isfinite(numbers.to_numpy())
    if bad.any() and allow_dates and text is not None:
        dates = to_dates(values, "ISO8601", path, column, where)
        if dates.notna().all():
            return _seconds_since_epoch(dates)
        if dates.isna().sum() < bad.sum():
            bad = dates.isna()
    if bad.any():
        raise _not_a_time(values, bad, path, column, where, allow_dates)
    return _seconds(values, text, numbers.to_numpy(), path, column, where)


def _seconds_since_epoch(dates: pd.Series) -> pd.Series:
    if dates.dt.tz is not None:
        dates = dates.dt.tz_convert("UTC").dt.tz_localize(None)
    return ((dates - pd.Timestamp(0)) // pd.Timedelta(1, "s")).astype("int64")


def _dates_in_format(values: pd.Series, time_format: str, path: Path, column: str, where: str,
                     example: str | None) -> pd.Series:
    dates = to_dates(values, time_format, path, column, where)
    bad = dates.isna()
    if bad.any():
        line = values.index[bad.to_numpy()][0]
        like = f"{int(bad.sum())} {where}s like this"
        if example:
            raise DataFormatError(f"{path}, {where} {line}: {column} {values.loc[line]!r} is not like {example!r} "
                                  f"({like}). Fix or remove those {where}s.")
        raise DataFormatError(
            f"{path}, {where} {line}: {column} {values.loc[line]!r} does not match time_format "
            f"{time_format!r} ({like}). Fix those {where}s or give the "
            "format they use (pandas / strftime codes, e.g. time_format=%d/%m/%Y %H:%M)."
        )
    return _seconds_since_epoch(dates)


def _as_numbers(values: pd.Series) -> tuple[pd.Series | None, pd.Series]:
    """(the values as stripped text, or None when they were floats already; the values as float64, NaN where
    one is not a number)."""
    if pd.api.types.is_float_dtype(values):
        return None, values.astype("float64")
    text = values.astype(str).str.strip()
    return text, pd.to_numeric(text, errors="coerce").astype("float64")


def _not_a_time(values: pd.Series, bad: pd.Series, path: Path, column: str, where: str,
                allow_dates: bool) -> DataFormatError:
    line = values.index[bad.to_numpy()][0]
    kind = "a number or an ISO date" if allow_dates else "a number"
    hint = " or pass time_format=... with the dates' format (e.g. time_format=%d/%m/%Y)" if allow_dates else ""
    return DataFormatError(
        f"{path}, {where} {line}: {column} {values.loc[line]!r} is not {kind} "
        f"({int(bad.sum())} {where}s like this). Fix those {where}s or remove them{hint}."
    )


def _seconds(values: pd.Series, text: pd.Series | None, as_float: np.ndarray, path: Path, column: str,
             where: str) -> pd.Series:
    """Times that all parsed as numbers: int64 when every one is whole (exactly, from their text), else float64."""
    if text is not None:
        inexact = (np.abs(as_float) >= _EXACT_FLOAT) & ~text.str.fullmatch(_DIGITS).to_numpy(dtype=bool)
        if inexact.any():  # e.g. 9007199254740997.0: float64 would round it onto its neighbour
            return _exact_large_times(text, inexact, values, path, column, where)
    if (as_float == np.floor(as_float)).all():
        return _whole_seconds(values, text, as_float, path, column, where)
    too_big = np.abs(as_float) >= _EXACT_FLOAT
    if too_big.any():
        raise _refusal(values, too_big, path, column, where, "has a fraction but is too large to keep exactly",
                       "|value| >= 2**53; ", "Use whole seconds, or fractional seconds of a realistic size.")
    return pd.Series(as_float, index=values.index)


def _whole_seconds(values: pd.Series, text: pd.Series | None, as_float: np.ndarray, path: Path, column: str,
                   where: str) -> pd.Series:
    if text is not None and text.str.fullmatch(_DIGITS).all():  # exact integers, whatever their size
        exact = pd.Series([int(v) for v in text.to_numpy()], index=values.index, dtype=object) \
            if (text.str.len() >= 19).any() else pd.to_numeric(text)
        _refuse_out_of_range(exact, values, path, column, where)
        return pd.Series(np.asarray(exact, dtype="int64"), index=values.index)
    _refuse_out_of_range(pd.Series(as_float, index=values.index), values, path, column, where)
    return pd.Series(as_float.astype("int64"), index=values.index)


def _exact_large_times(text: pd.Series, inexact: np.ndarray, values: pd.Series, path: Path, column: str,
                       where: str) -> pd.Series:
    """Times written with a fraction or an exponent at or beyond 2**53: exact whole seconds (read as decimals),
    or an error when a fraction would be lost."""
    from decimal import Decimal

    exact = [Decimal(t) for t in text.to_numpy()]
    fraction = np.array([d != d.to_integral_value() for d in exact], dtype=bool)
    if fraction.any():
        line = values.index[fraction & inexact][0] if (fraction & inexact).any() else values.index[fraction][0]
        raise DataFormatError(
            f"{path}, {where} {line}: {column} {_shown(values.loc[line])} has a fraction, and this column has times "
            f"at or above 2**53 that float64 cannot hold with a fraction ({int(inexact.sum())} {where}s that large; "
            "they would round onto each other and lose their order). Use whole seconds, or a realistic size")
    ints = pd.Series([int(d) for d in exact], index=values.index, dtype=object)
    _refuse_out_of_range(ints, values, path, column, where)
    return pd.Series(np.asarray(ints, dtype="int64"), index=values.index)


def _shown(value) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _refuse_out_of_range(numbers: pd.Series, shown: pd.Series, path: Path, column: str, where: str) -> None:
    """Whole-number times outside int64 would wrap around (a time far in the future becoming negative)."""
    if numbers.dtype == object:
        out = np.array([not _INT64_MIN <= v <= _INT64_MAX for v in numbers.to_numpy()], dtype=bool)
    else:  # float64: 2**63 itself rounds to a float equal to the bound, so compare with >=
        arr = numbers.to_numpy()
        out = (arr >= 2.0**63) | (arr < -(2.0**63))
    if out.any():
        raise _refusal(shown, out, path, column, where, "is outside the range of a 64-bit time",
                       "-2**63 to 2**63 - 1; ", "Fix those values: seconds since 1970 are about 1.7e9 today, "
                       "milliseconds about 1.7e12.")


def _refusal(values: pd.Series, bad: np.ndarray, path: Path, column: str, where: str, says: str, limit: str,
             todo: str) -> DataFormatError:
    """The error naming the first of the ``bad`` values, what is wrong with it, how many are like it, what to do."""
    line = values.index[bad][0]
    return DataFormatError(f"{path}, {where} {line}: {column} {_shown(values.loc[line])} {says} "
                           f"({limit}{int(bad.sum())} {where}s like this). {todo}")
