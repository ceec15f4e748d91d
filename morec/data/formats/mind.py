"""MIND news (https://msnews.github.io) in its published layout.

A folder with ``behaviors.tsv`` and ``news.tsv``, or with split subfolders (``MINDsmall_train/``,
``MINDsmall_dev/``, ...), all of which are read (the log names each and what it contributed). Following
the paper, clicks are the interactions: each user's click history and the impressed news with label 1
(at the impression time). Deduplication and the "latest 23 clicks per user" truncation belong to the
shared prepare step.

The history has no times: it is older than every impression, so it is kept, in order, as an untimed
prefix (``timed`` False). Its ``timestamp`` only orders it (one second apart, before the user's earliest
impression); prepare stores no time for it, ``data stats`` leaves it out of the time span, and a time
split keeps it before the valid cut, never as a target.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from morec.data.formats import DataFormatError, RawDataset
from morec.data.formats.table import (
    check_unique_items, finish, read_delimited, require_file, require_nonempty,
)
from morec.data.formats.timestamps import parse_timestamps

NEWS_COLUMNS = ("item", "category", "subcategory", "title", "abstract", "url",
                "title_entities", "abstract_entities")
TEXT_CHOICES = ("category", "subcategory", "title", "abstract")
BEHAVIOR_LAYOUT = "impression_id<TAB>user_id<TAB>time<TAB>history<TAB>impressions"
NEWS_LAYOUT = "news_id<TAB>category<TAB>subcategory<TAB>title<TAB>abstract<TAB>url<TAB>entities<TAB>entities"
TIME_FORMAT = "%m/%d/%Y %I:%M:%S %p"  # "11/15/2019 10:22:32 AM"
_SPLIT_ORDER = ("train", "dev", "test")


def split_folders(folder: Path) -> list[Path]:
    """The folders holding behaviors.tsv: the folder itself, or its split subfolders."""
    if (folder / "behaviors.tsv").is_file():
        return [folder]
    found = [p for p in sorted(folder.iterdir()) if (p / "behaviors.tsv").is_file()] if folder.is_dir() else []

    def rank(split: Path) -> int:
        name = split.name.lower()
        return next((i for i, key in enumerate(_SPLIT_ORDER) if key in name), len(_SPLIT_ORDER))

    return sorted(found, key=rank)


def _read_behaviors(path: Path, encoding: str) -> pd.DataFrame:
    raw = read_delimited(path, sep="\t", header=False, min_fields=5, max_fields=5,
                         layout=BEHAVIOR_LAYOUT, encoding=encoding)
    require_nonempty(raw, {1: "user_id", 2: "time"}, path)
    seconds = parse_timestamps(raw[2], path, "time", time_format=TIME_FORMAT, example="11/15/2019 10:22:32 AM")
    return pd.DataFrame({"user": raw[1], "time": seconds,
                         "history": raw[3], "impressions": raw[4]})


def _history_clicks(behaviors: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """History items (untimed), ordered one second apart, ending one second before the impression."""
    # MIND repeats a user's (fixed) history on every impression; read it once, at the earliest.
    with_history = behaviors[behaviors["history"].str.strip() != ""]
    once = with_history.sort_values("time", kind="stable").drop_duplicates(["user", "history"])
    tokens = once["history"].str.split()
    events = tokens.explode()
    position = events.groupby(level=0).cumcount()
    length = tokens.str.len().reindex(events.index)
    times = once["time"].reindex(events.index) - (length - position)
    clicks = pd.DataFrame({"user": once["user"].reindex(events.index), "item": events, "timestamp": times,
                           "timed": False, "folder": once["folder"].reindex(events.index)})
    return clicks, len(with_history) - len(once)


def _impression_clicks(behaviors: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    shown = behaviors["impressions"].str.split().explode().dropna()
    parts = shown.str.extract(r"^(?P<item>.+)-(?P<label>[01])$")
    unlabelled = int(parts["item"].isna().sum())
    clicked = parts[parts["label"] == "1"]
    clicks = pd.DataFrame({"user": behaviors["user"].reindex(clicked.index), "item": clicked["item"],
                           "timestamp": behaviors["time"].reindex(clicked.index), "timed": True,
                           "folder": behaviors["folder"].reindex(clicked.index)})
    return clicks, unlabelled


def _contributions(folders: list[Path], behaviors: pd.DataFrame, clicks: pd.DataFrame,
                   news_counts: list[int]) -> list[str]:
    """One line per folder read: its impressions, users, history and impression clicks, dates and news."""
    lines = []
    for k, split in enumerate(folders):
        shown, mine = behaviors[behaviors["folder"] == k], clicks[clicks["folder"] == k]
        timed = mine[mine["timed"]]
        span = ""
        if len(timed):
            first, last = (pd.to_datetime(timed["timestamp"].agg(f), unit="s") for f in ("min", "max"))
            span = f" from {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M}"
        lines.append(f"read {split}: {len(shown):,} impressions of {shown['user'].nunique():,} users -> "
                     f"{int((~mine['timed']).sum()):,} history clicks (untimed), {len(timed):,} impression "
                     f"clicks{span}; {news_counts[k]:,} news")
    return lines


def read_mind(
    path: str | Path,
    *,
    text_columns: Sequence[str] = ("title",),
    encoding: str = "utf-8",
) -> RawDataset:
    """Read MIND; ``text_columns`` picks item text among category, subcategory, title, abstract."""
    folder = Path(path)
    unknown = [c for c in text_columns if c not in TEXT_CHOICES]
    if unknown:
        raise DataFormatError(f"MIND text_columns {unknown} unknown; choose among {', '.join(TEXT_CHOICES)}.")
    splits = split_folders(folder)
    if not splits:
        raise DataFormatError(
            f"{folder}: no behaviors.tsv here or in a subfolder. Unzip MINDsmall_train.zip (and _dev) "
            "so that <folder>/MINDsmall_train/behaviors.tsv exists, and point to <folder>."
        )
    notes: list[str] = []
    behaviors_parts, news_parts = [], []
    for k, split in enumerate(splits):
        behaviors_parts.append(_read_behaviors(split / "behaviors.tsv", encoding).assign(folder=k))
        news_path = require_file(split / "news.tsv", "MIND needs news.tsv next to behaviors.tsv.")
        news = read_delimited(news_path, sep="\t", header=False, min_fields=4, max_fields=len(NEWS_COLUMNS),
                              layout=NEWS_LAYOUT, encoding=encoding)
        require_nonempty(news, {0: "news_id"}, news_path)
        check_unique_items(news[0], news_path)
        news.columns = list(NEWS_COLUMNS[: news.shape[1]])
        news_parts.append(news.reindex(columns=["item", *text_columns], fill_value=""))
    behaviors = pd.concat(behaviors_parts, ignore_index=True)

    history, repeated = _history_clicks(behaviors)
    clicks, unlabelled = _impression_clicks(behaviors)
    if repeated:
        notes.append(f"{folder}: {repeated} impressions repeat a click history already read for the "
                     "same user; each history was read once, before that user's earliest impression.")
    if unlabelled:
        notes.append(f"{folder}: {unlabelled} impressed news carry no click label (a test split?); "
                     "they add no interactions.")
    interactions = pd.concat([history, clicks], ignore_index=True)
    notes[:0] = _contributions(splits, behaviors, interactions, [len(n) for n in news_parts])

    # The same news is listed in every split it appears in; the first listing is kept.
    items = pd.concat(news_parts, ignore_index=True).drop_duplicates("item", keep="first")
    return finish(interactions, items, name=folder.name, root=folder, notes=notes,
                  items_source=" / ".join(str(s / "news.tsv") for s in splits))
