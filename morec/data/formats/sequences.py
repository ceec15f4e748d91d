"""User-sequence layout of the paper's code, NineRec and MicroLens.

* sequences file: ``user<TAB>item item item ...`` (items in time order, no header);
* items file: ``id<TAB>title[<TAB>abstract]`` (no header).

There is no clock in this layout, so an item's position in its user's sequence is its timestamp.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from morec.data.formats import DataFormatError, RawDataset
from morec.data.formats.table import (
    apply_image_pattern, check_unique_items, finish, read_delimited, require_file, require_nonempty,
)

SEQUENCE_LAYOUT = "user<TAB>item item item ... (items in time order)"
ITEM_LAYOUT = "id<TAB>title[<TAB>abstract] (no header)"
_SEQUENCE_HINTS = ("seq", "user", "behav", "inter")
_ITEM_HINTS = ("item", "news", "title", "content")


def _first_lines(path: Path, n: int = 20) -> list[list[str]]:
    with open(path, encoding="utf-8", errors="replace") as handle:
        return [line.rstrip("\n").split("\t") for _, line in zip(range(n), handle) if line.strip()]


def _is_sequence_of(candidate: Path, items: Path) -> bool:
    """True when the second field of candidate's first lines lists ids from items' first column."""
    lines = _first_lines(candidate)
    if not lines or any(len(line) != 2 for line in lines):
        return False
    known = {line[0] for line in _first_lines(items, 100_000)}
    tokens = {token for line in lines for token in line[1].split()}
    return bool(tokens) and tokens <= known


def find_files(folder: Path) -> tuple[Path, Path]:
    """Pick the sequences file and the items file in a folder, by name and then by content."""
    candidates = sorted(p for p in folder.iterdir() if p.suffix in (".tsv", ".txt") and p.is_file())
    by_name_seq = [p for p in candidates if any(h in p.stem.lower() for h in _SEQUENCE_HINTS)]
    by_name_items = [p for p in candidates if any(h in p.stem.lower() for h in _ITEM_HINTS)]
    if len(by_name_seq) == 1 and len(by_name_items) == 1 and by_name_seq != by_name_items:
        return by_name_seq[0], by_name_items[0]
    if len(candidates) == 2:
        first, second = candidates
        if _is_sequence_of(first, second):
            return first, second
        if _is_sequence_of(second, first):
            return second, first
    listed = ", ".join(p.name for p in candidates) or "no .tsv/.txt files"
    raise DataFormatError(
        f"{folder}: cannot tell the sequences file from the items file ({listed}). "
        "Pass sequences_file='...' and items_file='...'."
    )


def read_sequences(
    path: str | Path,
    *,
    sequences_file: str | Path | None = None,
    items_file: str | Path | None = None,
    image_pattern: str | None = None,
    encoding: str = "utf-8",
) -> RawDataset:
    """Read a folder holding a sequences file and an items file (see the module docstring).

    ``image_pattern`` (e.g. ``"covers/{item}.jpg"``, relative to the folder) adds image paths.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise DataFormatError(f"{folder}: no such folder.")
    if sequences_file is None or items_file is None:
        found_sequences, found_items = find_files(folder)
        sequences_file = sequences_file or found_sequences.name
        items_file = items_file or found_items.name
    seq_path = require_file(folder / sequences_file, "Check the sequences_file option.")
    items_path = require_file(folder / items_file, "Check the items_file option.")
    notes: list[str] = []

    lines = read_delimited(seq_path, sep="\t", header=False, min_fields=2, max_fields=2,
                           layout=SEQUENCE_LAYOUT, encoding=encoding)
    require_nonempty(lines, {0: "user"}, seq_path)
    users = lines[0]
    events = lines[1].str.split().explode()
    empty = events.isna()
    if empty.any():
        notes.append(f"{seq_path}: {int(empty.sum())} lines list no items; those lines add no interactions.")
        events = events[~empty]
    event_users = users.reindex(events.index)
    # A user may span several lines; positions continue across them in file order.
    positions = event_users.groupby(event_users.to_numpy(), sort=False).cumcount().astype("int64")
    interactions = pd.DataFrame({"user": event_users.to_numpy(), "item": events.to_numpy(),
                                 "timestamp": positions.to_numpy()})

    raw = read_delimited(items_path, sep="\t", header=False, min_fields=2, max_fields=3,
                         layout=ITEM_LAYOUT, encoding=encoding)
    require_nonempty(raw, {0: "item id"}, items_path)
    check_unique_items(raw[0], items_path)
    items = pd.DataFrame({"item": raw[0], "title": raw[1]})
    if raw.shape[1] == 3:
        items["abstract"] = raw[2]
    if image_pattern:
        items["image"] = apply_image_pattern(items["item"], image_pattern)
    return finish(interactions, items, name=folder.name, root=folder, notes=notes, items_source=items_path)

