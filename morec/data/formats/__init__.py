"""Readers: one module per source format, each returning the canonical :class:`RawDataset`.

Canonical model (every reader produces exactly this, nothing else is read downstream):

* ``interactions``: DataFrame with columns ``user`` (str), ``item`` (str), ``timestamp`` (int64 or
  float64). Row order is the file order; ``prepare`` sorts stably by time per user. An optional
  ``timed`` (bool) column marks interactions the source gives no time for (MIND's click history):
  their ``timestamp`` only orders them, they come before the user's timed interactions, and
  prepare stores no time for them.
* ``items``: DataFrame with column ``item`` (str, unique) plus zero or more text columns
  (``title``, ``abstract``, ``genres``, ...) and optionally ``image`` (a path, absolute or relative
  to ``root``). Items that appear in interactions but not here get empty content.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


class DataFormatError(ValueError):
    """Bad input data; the message names the file, the line or item, and what to do."""


@dataclass
class RawDataset:
    interactions: pd.DataFrame
    items: pd.DataFrame
    name: str = "dataset"
    root: Path | None = None  # folder that relative image paths refer to
    notes: list[str] = field(default_factory=list)  # what the reader dropped or repaired, for the log
    id_column: str | None = None  # the source's own name of the item id column (e.g. book_sku), if it has one
    image_column: str | None = None  # the source's own name of the image column (e.g. image_path), if it has one

    @property
    def text_columns(self) -> list[str]:
        return [c for c in self.items.columns if c not in ("item", "image")]
