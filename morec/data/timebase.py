"""The time base of a dataset's timestamps, so that people can give and read times as dates.

Readers store dates as whole seconds since 1970 (UTC when the dates carry a zone). Numeric time columns
keep the data's own unit, which is told from the values' size: seconds since 1970 are about 1.7e9 today,
milliseconds 1.7e12, and so on. Timestamps of no such size (file order, positions, days) are not dates.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

# unit -> (ticks per second); dates between 1973 and 2096 in that unit are read as dates
UNITS = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}
_DATE_RANGE_S = (1e8, 4e9)


def time_unit(times: np.ndarray) -> str | None:
    """The unit whose dates the timestamps are (all within 1973..2096), or None when they are not dates."""
    if len(times) == 0:
        return None
    first, last = float(np.min(times)), float(np.max(times))
    for unit, per_second in UNITS.items():
        if _DATE_RANGE_S[0] <= first / per_second and last / per_second < _DATE_RANGE_S[1]:
            return unit
    return None


def show_time(value: float, unit: str | None) -> str:
    """A timestamp as people read it: a date (with the time of day when it has one, UTC) in a date base,
    else the number."""
    if unit is None:
        return f"{value:g}"
    when = pd.Timestamp(int(round(value * (10**9 // UNITS[unit]))), unit="ns")
    return str(when.date()) if when == when.normalize() else when.strftime("%Y-%m-%d %H:%M:%S UTC")


def from_seconds(seconds: float, unit: str) -> float:
    """Seconds since 1970 (a date given by a person) in the data's unit."""
    return float(seconds) * UNITS[unit]
