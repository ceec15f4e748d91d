"""The paper's preprocessing, once: raw interactions -> a prepared dataset directory.

Steps, in order (each reports what it removed): subsample users, de-duplicate (user, item),
warm-N item filter, order by time (stable), hold out new items (kept only as users' last items),
keep each user's latest N, drop short users,
re-index items 1..M (0 = padding) and users 0..n-1. The split (prepare.split) is leave-one-out, implicit in the
stored sequences (last item = test, second-to-last = valid, the rest = train), or a global time split: the
interactions are cut at two times, each user keeps what comes before the test cut plus their first item after it,
and ``seq_split.npy`` holds each user's training length and valid / test target positions (see
morec.data.dataset). Under the time split, the new-item setting holds out items among the users' test targets.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ..config import PrepareConfig, cut_time
from ..tempfiles import _alive
from .dataset import PreparedDataset
from .formats import DataFormatError, RawDataset
from .ids import check_id_variants
from .image_check import check_images, settle
from .images import build_image_store
from .timebase import from_seconds, show_time, time_unit

FORMAT_VERSION = 1


class _FilterLog:
    """Records what each step removed, so nothing is dropped silently."""

    def __init__(self, name: str, log: Callable[[str], None]):
        self.name, self.log, self.steps = name, log, []

    def __call__(self, step: str, before: pd.DataFrame, after: pd.DataFrame, why: str) -> pd.DataFrame:
        removed = {
            "interactions": len(before) - len(after),
            "users": before["user"].nunique() - after["user"].nunique(),
            "items": before["item"].nunique() - after["item"].nunique(),
        }
        self.steps.append({"step": step, "why": why, **{f"removed_{k}": int(v) for k, v in removed.items()}})
        self.log(f"[{self.name}] {step}: removed {removed['interactions']:,} interactions, "
                 f"{removed['users']:,} users, {removed['items']:,} items ({why})")
        return after


def filter_interactions(df: pd.DataFrame, cfg: PrepareConfig, step: _FilterLog) -> pd.DataFrame:
    """Apply the paper's filters; ``df`` has user, item, timestamp, _order. Returns rows sorted by user, time."""
    if cfg.n_users and cfg.n_users < df["user"].nunique():
        users = df["user"].drop_duplicates().to_numpy()
        keep = np.random.default_rng(cfg.seed).choice(users, size=cfg.n_users, replace=False)
        df = step("subsample", df, df[df["user"].isin(keep)], f"kept a random {cfg.n_users:,} users, seed {cfg.seed}")

    # _order breaks timestamp ties, so equal times keep the file order (np.lexsort is stable and the rows
    # are in file order here; one vectorised sort of the int columns instead of pandas' multi-key sort)
    if not df["_order"].is_monotonic_increasing:
        df = df.sort_values("_order", kind="stable")
    untimed_first = (df["_timed"].to_numpy(),) if "_timed" in df else ()  # a source's untimed history is a prefix
    df = df.take(np.lexsort((df["timestamp"].to_numpy(), *untimed_first, df["user"].to_numpy())))
    if cfg.dedup != "none":
        pair = df["user"].to_numpy() * np.int64(df["item"].max() + 1) + df["item"].to_numpy()  # one int per (user, item)
        df = step("dedup", df, df[~pd.Series(pair).duplicated(keep=cfg.dedup).to_numpy()],
                  f"repeated (user, item) pairs, kept the {cfg.dedup}; prepare.dedup=none keeps every repeat")

    if cfg.min_item_interactions > 0:
        counts = df["item"].value_counts()
        warm = counts.index[counts >= cfg.min_item_interactions]
        df = step("warm items", df, df[df["item"].isin(warm)], f"items with fewer than {cfg.min_item_interactions} interactions")

    if cfg.new_items and cfg.split == "loo":
        df = hold_out_new_items(df, cfg, step)

    if cfg.max_seq_len:
        from_end = df.groupby("user", sort=False).cumcount(ascending=False)
        df = step("truncate", df, df[from_end < cfg.max_seq_len], f"kept each user's latest {cfg.max_seq_len}")

    sizes = np.bincount(df["user"].to_numpy())[df["user"].to_numpy()]
    df = step("short users", df, df[sizes >= cfg.min_user_interactions],
              f"users with fewer than {cfg.min_user_interactions} interactions")
    return df


def time_cuts(times: np.ndarray, cfg: PrepareConfig) -> tuple[float, float]:
    """(valid cut, test cut) in the data's time unit: the given times (numbers, or dates read in the data's
    time base), or the times leaving test_share of the interactions at or after the test cut and valid_share
    more at or after the valid cut."""
    t = np.sort(np.asarray(times, dtype=np.float64))
    n = len(t)
    test = _given_cut(cfg.time_test, "time_test", t) if cfg.time_test is not None else \
        t[n - max(1, int(np.ceil(n * cfg.test_share)))]
    valid = _given_cut(cfg.time_valid, "time_valid", t) if cfg.time_valid is not None else \
        t[n - max(1, int(np.ceil(n * (cfg.valid_share + cfg.test_share))))]
    return float(valid), float(test)


def _given_cut(value, name: str, times: np.ndarray) -> float:
    """prepare.time_valid / time_test in the data's unit; a date needs timestamps that are dates."""
    kind, cut = cut_time(value, f"prepare.{name}")
    if kind == "number":
        return cut
    unit = time_unit(times)
    if unit is None:
        raise DataFormatError(f"prepare.{name}={value} is a date, but the data's timestamps are not dates (they run "
                              f"from {times[0]:g} to {times[-1]:g}: file order, positions or another unit); give "
                              f"the cut in those numbers, e.g. --prepare.{name}={times[len(times) * 9 // 10]:g}")
    return from_seconds(cut, unit)


def time_split(df: pd.DataFrame, cfg: PrepareConfig, step: _FilterLog) -> tuple[pd.DataFrame, dict]:
    """The global time split of ``df`` (sorted by user, time): adds ``_period`` (0 train, 1 valid, 2 test), keeps
    each user's interactions before the test cut and their first one at or after it; returns the cuts. Untimed
    interactions (a history the source gives no time for) are older than everything: before the valid cut, never a
    target, and not counted when the cuts are placed by share."""
    times = pd.to_numeric(df["timestamp"]).to_numpy(dtype=np.float64)
    timed = df["_timed"].to_numpy() if "_timed" in df else np.ones(len(df), dtype=bool)
    if not timed.any():
        raise DataFormatError(f"[{step.name}] prepare.split=time: no interaction has a time (all are untimed "
                              "history); use prepare.split=loo")
    valid_cut, test_cut = time_cuts(times[timed], cfg)
    unit = time_unit(times[timed])
    show = lambda t: show_time(t, unit)  # noqa: E731 -- dates where the timestamps are dates
    if not valid_cut < test_cut:
        raise DataFormatError(f"[{step.name}] the time split's valid cut ({show(valid_cut)}) is not before its test "
                              f"cut ({show(test_cut)}): timestamps tie there; set prepare.time_valid / "
                              "prepare.time_test or other prepare.valid_share / prepare.test_share")
    first, last = times[timed].min(), times[timed].max()
    if valid_cut <= first or test_cut > last:
        raise DataFormatError(f"[{step.name}] the time cuts {show(valid_cut)} (valid) and {show(test_cut)} (test) "
                              f"must lie within the interactions' span, {show(first)} to {show(last)}; give "
                              "prepare.time_valid / prepare.time_test inside it")
    period = np.where(~timed | (times < valid_cut), 0, np.where(times < test_cut, 1, 2))
    df = df.assign(_period=period, _after=period == 2)
    nth_after = df.groupby("user", sort=False)["_after"].cumsum().to_numpy()
    step.log(f"[{step.name}] time split: the interactions span {show(first)} to {show(last)}")
    df = step("time split", df, df[nth_after <= 1].drop(columns="_after"),
              f"cut at {show(valid_cut)} (valid) and {show(test_cut)} (test): a user's items after their first "
              "test-period item are never used")
    df = _drop_idle_users(df, step)
    if cfg.new_items:
        df = _drop_idle_users(_hold_out_new_test_items(df, cfg, step), step)
    cuts = {"valid": valid_cut, "test": test_cut, "unit": unit,
            **{f"{name}_interactions": int((df["_period"] == p).sum()) for p, name in enumerate(("train", "valid", "test"))}}
    step.log(f"[{step.name}] time split: {cuts['train_interactions']:,} training interactions, "
             f"{cuts['valid_interactions']:,} in the valid period, {cuts['test_interactions']:,} test targets")
    return df, cuts


def _drop_idle_users(df: pd.DataFrame, step: _FilterLog) -> pd.DataFrame:
    """Users with nothing to train on and no target with a history before it (e.g. all after the test cut)."""
    by_user = df.assign(_trained=df["_period"] == 0).groupby("user", sort=False)
    useful = by_user["_trained"].transform("max").to_numpy() | (by_user["item"].transform("size").to_numpy() >= 2)
    return step("time split users", df, df[useful], "users with no interaction before the valid cut and no target "
                "with a history before it")


def _draw_new_items(df: pd.DataFrame, eligible: pd.Series, cfg: PrepareConfig, step: _FilterLog,
                    eligible_means: str) -> np.ndarray:
    """The seeded draw of ``cfg.new_items`` (a fraction of all items, or a count) among the eligible items."""
    candidates = np.sort(eligible.unique())
    want = int(cfg.new_items) if cfg.new_items >= 1 else int(round(cfg.new_items * df["item"].nunique()))
    n = min(want, len(candidates))
    if n < want:
        step.log(f"[{step.name}] new items: asked for {want:,}, but only {len(candidates):,} items {eligible_means}; "
                 "holding out all of them")
    return np.random.default_rng([cfg.seed, 1]).choice(candidates, size=n, replace=False)


def _hold_out_new_test_items(df: pd.DataFrame, cfg: PrepareConfig, step: _FilterLog) -> pd.DataFrame:
    """The new-item setting under the time split: ``cfg.new_items`` of the items that are some user's test target
    are held out; their other interactions are removed, so they are never trained on (nor a valid target)."""
    targets = df["_period"] == 2
    held = _draw_new_items(df, df.loc[targets, "item"], cfg, step, "are a test target")
    n = len(held)
    out = step("new items", df, df[~(df["item"].isin(held) & ~targets)],
               f"held out {n:,} items: their interactions are kept only as users' test targets")
    step.steps[-1]["held_out_items"] = int(n)
    return out


def split_positions(periods: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(n_users, 3): training length, valid target position, test target position (-1: none) from each
    interaction's period, the users' sequences in CSR order. A target needs at least one item before it."""
    lengths = np.diff(offsets)
    user = np.repeat(np.arange(len(lengths)), lengths)
    n_train = np.bincount(user, weights=periods == 0, minlength=len(lengths)).astype(np.int64)
    n_valid = np.bincount(user, weights=periods == 1, minlength=len(lengths)).astype(np.int64)
    has_test = np.bincount(user, weights=periods == 2, minlength=len(lengths)) > 0
    valid = np.where((n_valid > 0) & (n_train > 0), n_train, -1)
    test = np.where(has_test & (lengths > 1), lengths - 1, -1)
    return np.stack([n_train, valid, test], axis=1)


def hold_out_new_items(df: pd.DataFrame, cfg: PrepareConfig, step: _FilterLog) -> pd.DataFrame:
    """The new-item setting: a seeded random ``cfg.new_items`` (fraction of the items, or a count) of the
    items that end some user's sequence are held out; every interaction with them is removed except a
    user's last one, which stays as that user's test target. ``df`` is sorted by user, time."""
    last = ~df["user"].duplicated(keep="last")
    held = _draw_new_items(df, df.loc[last, "item"], cfg, step, "end a user's sequence")
    n = len(held)
    drop = df["item"].isin(held) & ~last
    out = step("new items", df, df[~drop], f"held out {n:,} items: their interactions are kept only as a user's "
               "last (test) item")
    step.steps[-1]["held_out_items"] = int(n)  # the prepared dataset's new-item users: evaluate.subset_users(ds, "test", "new")
    return out


# Folder names that say nothing about the data: a dataset read from data/raw/ is named after its output folder.
GENERIC_NAMES = frozenset({"", ".", "raw", "data", "dataset", "datasets", "input", "inputs", "files", "csv", "tables",
                           "download", "downloads", "tmp"})


def dataset_name(reader_name: str, out_dir: str | Path, given: str | None = None) -> str:
    """The name every table, figure and file uses: ``given``, else the reader's (the source folder's), else
    the output folder's when the source's is generic (raw, data, ...)."""
    if given:
        return str(given)
    if str(reader_name).strip().lower() not in GENERIC_NAMES:
        return str(reader_name)
    return Path(out_dir).resolve().name


def check_out_dir(out: str | Path, overwrite: bool = False) -> None:
    """A prepared folder is written whole or not at all: an existing, non-empty one is refused unless
    ``overwrite`` (its caches were computed from the old content), and a file is never a folder."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataFormatError(f"--out {out} is a file, not a folder; give a folder path for the prepared dataset")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise DataFormatError(f"--out {out} already exists and is not empty. Pass --overwrite to replace it "
                              "(the new dataset is written beside it and swapped in; its caches go with the old one), "
                              "or choose another --out")


def _staging_dir(final: Path) -> Path:
    """An empty sibling folder to write into; those of killed earlier prepares are removed first."""
    import os
    import shutil

    final.parent.mkdir(parents=True, exist_ok=True)
    for old in final.parent.glob(f".{final.name}.preparing-*"):
        pid = old.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    work = final.parent / f".{final.name}.preparing-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    return work


def _swap_in(work: Path, final: Path) -> None:
    """``work`` becomes ``final``: renames, so a reader sees the old folder or the new one, each whole."""
    import os
    import shutil

    if final.exists():
        aside = final.parent / f".{final.name}.replaced-{os.getpid()}"
        shutil.rmtree(aside, ignore_errors=True)
        final.rename(aside)
        work.rename(final)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        work.rename(final)


def prepare(raw: RawDataset, out_dir: str | Path, cfg: PrepareConfig | None = None, log=print,
            name: str | None = None, overwrite: bool = False, preset: dict | None = None) -> Path:
    cfg = cfg or PrepareConfig()
    cfg.validate()
    final = Path(out_dir)
    check_out_dir(final, overwrite)
    named = dataset_name(raw.name, final, name)
    if named != raw.name:
        log(f"[{named}] dataset name {named!r}" + (" (--name)" if name else f" (the source folder's name {raw.name!r} "
                                                   "is generic; set it with --name)"))
        raw = dataclasses.replace(raw, name=named)
    for note in raw.notes:
        log(f"[{raw.name}] reader: {note}")

    if raw.interactions.empty:
        raise DataFormatError(f"[{raw.name}] the source holds no interactions (a header but no rows?); give it one row "
                              "per interaction")
    raw = check_id_variants(raw, cfg.id_variants, log)
    # Users and items become integer codes ordered like their str ids (so every filter sorts, groups and
    # draws exactly as it would on the strings), and only the distinct ids are ever turned into str.
    inter = raw.interactions
    user_codes, user_ids = _str_codes(inter["user"])
    item_codes, item_ids = _str_codes(inter["item"])
    df = pd.DataFrame({"user": user_codes, "item": item_codes, "timestamp": inter["timestamp"].to_numpy(),
                       "_order": np.arange(len(inter), dtype=np.int64),
                       **({"_timed": inter["timed"].to_numpy(dtype=bool)} if "timed" in inter else {})})
    log(f"[{raw.name}] read {len(df):,} interactions, {len(user_ids):,} users, {len(item_ids):,} items")
    step = _FilterLog(raw.name, log)
    df = filter_interactions(df, cfg, step)
    cuts = None
    if cfg.split == "time" and not df.empty:
        df, cuts = time_split(df, cfg, step)
    if df.empty:
        raise DataFormatError(
            f"[{raw.name}] every user was filtered out (min_user_interactions={cfg.min_user_interactions}, "
            f"min_item_interactions={cfg.min_item_interactions}, max_seq_len={cfg.max_seq_len}, new_items={cfg.new_items}); "
            "lower these thresholds"
        )

    used = df["item"].unique()
    items = _catalogue(raw, pd.Index(item_ids[used]), log, cfg.min_content_match)
    # item code -> item index 1..M in the catalogue's order (codes and catalogue ids are both distinct strs)
    item_index = np.zeros(len(item_ids), dtype=np.int64)
    item_index[pd.Index(item_ids).get_indexer(items["item"].to_numpy())] = np.arange(1, len(items) + 1)
    # users are numbered in the order of their first interaction in the file
    first = df.groupby("user", sort=False)["_order"].min()
    user_codes_kept = first.index.to_numpy()[np.argsort(first.to_numpy(), kind="stable")]
    users = user_ids[user_codes_kept]
    user_index = np.zeros(len(user_ids), dtype=np.int64)
    user_index[user_codes_kept] = np.arange(len(users))

    df = df.assign(u=user_index[df["user"].to_numpy()], i=item_index[df["item"].to_numpy()])
    df = df.take(np.argsort(df["u"].to_numpy(), kind="stable"))  # rows are in (user, time, file) order already
    offsets = np.concatenate([[0], np.cumsum(np.bincount(df["u"].to_numpy(), minlength=len(users)))])

    text_columns = [c for c in raw.text_columns if c in items.columns]
    title_column = cfg.title_column or (text_columns[0] if text_columns else None)
    if title_column and title_column not in text_columns:
        raise DataFormatError(f"[{raw.name}] prepare.title_column={title_column!r} is not a text column of the item "
                              f"table; its text columns are {', '.join(text_columns) or 'none'}")
    out = _staging_dir(final)
    try:
        _write(out, final, raw, cfg, log, df, offsets, cuts, items, users, step, text_columns, title_column, preset)
    except BaseException:
        import shutil

        shutil.rmtree(out, ignore_errors=True)
        raise
    _swap_in(out, final)
    return final


def _write(out: Path, final: Path, raw, cfg, log, df, offsets, cuts, items, users, step, text_columns,
           title_column, preset=None) -> None:
    # preset: the dataset preset applied (morec.data.presets.apply's record), kept in the manifest
    image_problems = settle(check_images(items, raw.root), len(items), cfg.image_missing, raw.name, out, final,
                            log) if "image" in items.columns else []
    np.save(out / "seq_offsets.npy", offsets.astype(np.int64))
    np.save(out / "seq_items.npy", df["i"].to_numpy().astype(np.int32))
    np.save(out / "seq_times.npy", _stored_times(df))
    if cuts is not None:  # (leave-one-out needs none; the folder is new, so none is left from before)
        np.save(out / "seq_split.npy", split_positions(df["_period"].to_numpy(), offsets))
    items.to_parquet(out / "items.parquet", index=False)
    pd.DataFrame({"user": users}).to_parquet(out / "users.parquet", index=False)

    manifest = {
        "format_version": FORMAT_VERSION,
        "name": raw.name,
        "n_users": len(users),
        "n_items": len(items),
        "n_interactions": len(df),
        "untimed_interactions": int((~df["_timed"]).sum()) if "_timed" in df else 0,
        "split": "leave-one-out: last = test, second-to-last = valid, rest = train" if cuts is None else
        f"global time split: train before {_shown_cut(cuts, 'valid')}, valid target = first item in "
        f"[{_shown_cut(cuts, 'valid')}, {_shown_cut(cuts, 'test')}), test target = first item at or after "
        f"{_shown_cut(cuts, 'test')}",
        **({"time_cuts": cuts} if cuts is not None else {}),
        "text_columns": text_columns,
        "title_column": title_column,
        "item_id_column": raw.id_column,
        "image_column": raw.image_column,
        "has_images": "image" in items.columns,
        "image_root": str(Path(raw.root).resolve()) if raw.root else None,
        "image_missing": cfg.image_missing,
        "image_problems": len(image_problems),
        "prepare": vars(cfg),
        **({"preset": preset} if preset else {}),
        "filters": step.steps,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    if cfg.image_size and "image" in items.columns:  # decoding finds what the header check cannot (a cut-off file)
        store = build_image_store(PreparedDataset(out), cfg.image_size, "quiet", log=log)
        decoded = settle([p for p in store.problems if p.item not in {q.item for q in image_problems}], len(items),
                         cfg.image_missing, raw.name, out, final, log, image_problems)
        if len(decoded) != len(image_problems):
            manifest["image_problems"] = len(decoded)
            (out / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    log(f"[{raw.name}] prepared {len(users):,} users, {len(items):,} items, {len(df):,} interactions -> {final}")


def _shown_cut(cuts: dict, which: str) -> str:
    return show_time(cuts[which], cuts.get("unit"))


def _stored_times(df: pd.DataFrame) -> np.ndarray:
    """Each interaction's time; NaN for an untimed one (its ordering time is not a time)."""
    times = pd.to_numeric(df["timestamp"]).to_numpy()
    if "_timed" not in df or df["_timed"].all():
        return times
    return np.where(df["_timed"].to_numpy(), times.astype(np.float64), np.nan)


def _str_codes(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(int64 code per row, the distinct ids as str, sorted): ``ids[codes]`` equals ``column.astype(str)``.

    Only the distinct values are converted to str (a million users are a million strs, not twenty
    million), and sorting by code is sorting by the str id."""
    codes, uniques = pd.factorize(column, use_na_sentinel=False)
    as_str = pd.Index(uniques).astype(str).to_numpy(dtype=object)
    str_codes, ids = pd.factorize(as_str, sort=True)  # distinct raw values may share a str (1 and "1")
    return str_codes[codes].astype(np.int64), np.asarray(ids, dtype=object)


def _check_content_match(raw: RawDataset, table: pd.DataFrame, used: pd.Index, missing: pd.Index,
                         least: float) -> None:
    """An item table that names other ids than the interactions (floats, lost zeros) is an error, not empty content."""
    if table.shape[1] < 2 or not len(used) or len(missing) == 0:  # an id list carries no content to lose
        return
    share = 1 - len(missing) / len(used)
    if share >= least:
        return
    theirs = table["item"][used.get_indexer(table["item"].to_numpy(dtype=object)) < 0]
    seen = f"its ids look like {theirs.iloc[0]!r}" if len(theirs) else "it has no rows"
    raise DataFormatError(
        f"[{raw.name}] the item table's ids match {len(used) - len(missing):,} of {len(used):,} interacted items "
        f"({share:.0%}): {seen}, the interactions' like {missing[0]!r}. Make the two id columns agree (export the "
        "item ids as text: no '.0', no lost leading zeros), or pass --prepare.min_content_match=0 to keep those "
        "items with empty content")


def _catalogue(raw: RawDataset, used: pd.Index, log, least_match: float = 0.0) -> pd.DataFrame:
    """Content rows of the interacted items, in the item table's order; missing ones get empty content (unless
    fewer than ``least_match`` of the items have a row: then the ids disagree, an error)."""
    table = raw.items.astype({"item": str})
    dup = table["item"].duplicated()
    if dup.any():
        raise DataFormatError(f"[{raw.name}] item table lists item {table['item'][dup].iloc[0]!r} more than once; "
                              "make item ids unique")
    # (pandas' isin on Arrow strings loops in Python; a hash lookup of the distinct used ids does not)
    rows = table[used.get_indexer(table["item"].to_numpy(dtype=object)) >= 0]
    missing = used.difference(pd.Index(rows["item"]))
    _check_content_match(raw, table, used, missing, least_match)
    if len(missing):
        log(f"[{raw.name}] {len(missing):,} interacted items have no content row (e.g. {missing[0]!r}); they get empty content")
        rows = pd.concat([rows, pd.DataFrame({"item": missing.to_numpy()})], ignore_index=True)
    unused = len(table) - len(rows) + len(missing)
    if unused:
        log(f"[{raw.name}] {unused:,} items of the item table have no remaining interaction; left out of the catalogue")
    rows = rows.reset_index(drop=True)
    for col in rows.columns:
        if col != "item":
            rows[col] = rows[col].astype("string").fillna("")
    _report_empty_text(raw, rows, log)
    return rows


def _report_empty_text(raw: RawDataset, rows: pd.DataFrame, log) -> None:
    """Per text column, the items it is empty for and what a text encoder (reading every text column, the default)
    still reads for them."""
    text = [c for c in raw.text_columns if c in rows.columns]
    filled = pd.DataFrame({c: rows[c].str.strip() != "" for c in text})
    for col in text:
        empty = ~filled[col]
        if not empty.any():
            continue
        others = [c for c in text if c != col]
        bare = empty & ~filled[others].any(axis=1) if others else empty
        said = f"{int(empty.sum()):,} of {len(rows):,} catalogue items have an empty {col} (e.g. item " \
               f"{rows.loc[empty.idxmax(), 'item']!r})"
        if not bare.any():
            still = f"a text encoder still reads their {' / '.join(others)}"
        elif not others or bare.equals(empty):
            still = "they have no other text: a text encoder sees only special tokens for them"
        else:
            still = (f"a text encoder still reads the {' / '.join(others)} of {int((empty & ~bare).sum()):,}; "
                     f"{int(bare.sum()):,} have no text at all (e.g. item {rows.loc[bare.idxmax(), 'item']!r}): "
                     "it sees only special tokens for those")
        log(f"[{raw.name}] {said}; {still}")
