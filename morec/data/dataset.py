"""A prepared dataset directory, read without re-parsing anything.

Each user's sequence is stored once (CSR: offsets + items) and the split is a view of it, three positions per
user: how many leading items are trained on, and where the valid and the test target are (the history before a
target is the sequence before it). Leave-one-out: train = all but the last two, valid = second-to-last, test =
last. Global time split (prepare.split=time, positions in ``seq_split.npy``): train = the items before the valid
cut, valid target = the first item in [valid cut, test cut), test target = the first item at or after the test
cut; a user with no item in a period (or nothing before it) has position -1 there: target 0, not scored.
"""
from __future__ import annotations

import hashlib
import json
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from ..tempfiles import remove_stale
from .formats import DataFormatError

SPLITS = ("valid", "test")


class PreparedDataset:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        manifest_file = self.path / "manifest.json"
        if not manifest_file.exists():
            raise DataFormatError(f"{self.path} is not a prepared dataset (no manifest.json); run `morec data prepare` first")
        self.manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
        self.name: str = self.manifest["name"]
        self.n_users: int = self.manifest["n_users"]
        self.n_items: int = self.manifest["n_items"]  # item indices are 1..n_items; 0 is padding
        self.offsets = np.load(self.path / "seq_offsets.npy")
        self.items_flat = np.load(self.path / "seq_items.npy", mmap_mode="r")
        self.lengths = np.diff(self.offsets)

    # --- the split -------------------------------------------------------------------------
    def sequence(self, user: int) -> np.ndarray:
        return np.asarray(self.items_flat[self.offsets[user]:self.offsets[user + 1]])

    @cached_property
    def split_positions(self) -> np.ndarray:
        """(n_users, 3) int64: training length, valid target position, test target position (-1: not scored)."""
        f = self.path / "seq_split.npy"
        if f.exists():
            return np.load(f).astype(np.int64)
        n = self.lengths.astype(np.int64)
        return np.stack([n - 2, n - 2, n - 1], axis=1)

    @property
    def split(self) -> str:
        """loo (leave-one-out) or time (global time split), as prepared."""
        return (self.manifest.get("prepare") or {}).get("split", "loo")

    def _positions(self, split: str) -> np.ndarray:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
        return self.split_positions[:, 1 if split == "valid" else 2]

    def history(self, user: int, split: str) -> np.ndarray:
        """Items the user has before the ``split`` target (before valid = the training sequence)."""
        return self.sequence(user)[:max(int(self._positions(split)[user]), 0)]

    def scored_users(self, split: str) -> np.ndarray:
        """The users with a ``split`` target (every user under leave-one-out)."""
        return np.flatnonzero(self._positions(split) >= 0)

    @cached_property
    def train_lengths(self) -> np.ndarray:
        return self.split_positions[:, 0]

    def _prefix_csr(self, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(offsets, items) of the first ``lengths[u]`` items of every user's sequence."""
        lengths = np.minimum(np.maximum(lengths, 0), self.lengths)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        position = np.arange(len(self.items_flat)) - np.repeat(self.offsets[:-1], self.lengths)
        keep = position < np.repeat(lengths, self.lengths)
        return offsets, np.asarray(self.items_flat)[keep]

    @cached_property
    def _train_csr(self) -> tuple[np.ndarray, np.ndarray]:
        return self._prefix_csr(self.train_lengths)

    @property
    def train_offsets(self) -> np.ndarray:
        return self._train_csr[0]

    @property
    def train_items(self) -> np.ndarray:
        """Concatenated training sequences (CSR with ``train_offsets``)."""
        return self._train_csr[1]

    @cached_property
    def train_users(self) -> np.ndarray:
        return np.repeat(np.arange(self.n_users), self.train_lengths)

    def targets(self, split: str) -> np.ndarray:
        """Each user's ``split`` target item; 0 (padding) for a user not scored on it."""
        pos = self._positions(split)
        out = np.zeros(self.n_users, dtype=np.int64)
        scored = pos >= 0
        out[scored] = np.asarray(self.items_flat)[self.offsets[:-1][scored] + pos[scored]]
        return out

    def history_csr(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(offsets, items) of every user's history before the split's target (empty for a user not scored)."""
        return self._prefix_csr(self._positions(split))

    @cached_property
    def train_item_counts(self) -> np.ndarray:
        """Interactions per item in the training split (index 0 = padding, always 0)."""
        return np.bincount(self.train_items, minlength=self.n_items + 1)

    # --- content ---------------------------------------------------------------------------
    @cached_property
    def items(self) -> pd.DataFrame:
        """Item content; row ``i - 1`` is item index ``i``. Columns: item (original id), text columns, image."""
        return pd.read_parquet(self.path / "items.parquet")

    @cached_property
    def users(self) -> pd.DataFrame:
        return pd.read_parquet(self.path / "users.parquet")

    @property
    def text_columns(self) -> list[str]:
        return list(self.manifest.get("text_columns", []))

    @property
    def title_column(self) -> str | None:
        """The text column shown as an item's title (prepare.title_column; default the first text column)."""
        if "title_column" in self.manifest:
            return self.manifest["title_column"]
        columns = self.text_columns  # datasets prepared before the manifest recorded it
        return "title" if "title" in columns else (columns[0] if columns else None)

    @property
    def item_id_column(self) -> str | None:
        """The source's own name of the item id column (e.g. book_sku), when it had one."""
        return self.manifest.get("item_id_column")

    def item_index(self) -> pd.Series:
        """Original item id -> item index (1..n_items)."""
        return pd.Series(np.arange(1, self.n_items + 1), index=self.items["item"].to_numpy())

    def user_index(self) -> pd.Series:
        return pd.Series(np.arange(self.n_users), index=self.users["user"].to_numpy())

    @property
    def cache_dir(self) -> Path:
        """Where derived artefacts (token arrays, frozen features) are stored next to the data."""
        d = self.path / "cache"
        d.mkdir(exist_ok=True)
        if not getattr(self, "_swept", False):  # once: temporary files of killed writers
            remove_stale(d)
            self._swept = True
        return d

    def titles(self) -> list[str | None]:
        """Each item's display title (row i - 1 = item index i), None where there is none."""
        column = self.title_column
        if column is None or column not in self.items.columns:
            return [None] * self.n_items
        return [str(t) if isinstance(t, str) and t.strip() else None for t in self.items[column].tolist()]

    def sequence_summary(self) -> dict:
        """Interactions per user (whole sequences: train + valid + test) and the time span of the timed ones (a
        source's untimed history, stored as NaN, is counted in ``untimed`` and left out of the span)."""
        lengths = self.lengths
        out = {"users": self.n_users, "min_length": int(lengths.min()), "median_length": float(np.median(lengths)),
               "mean_length": round(float(lengths.mean()), 2), "max_length": int(lengths.max())}
        times_file = self.path / "seq_times.npy"
        if times_file.exists():
            times = np.load(times_file, mmap_mode="r")
            timed = times[~np.isnan(times)] if times.dtype.kind == "f" else times
            if len(timed) < len(times):
                out["untimed"] = int(len(times) - len(timed))
            if not len(timed):
                return out
            first, last = float(np.min(timed)), float(np.max(timed))
            out.update({"first_time": first, "last_time": last})
            # readers store dates as seconds since 1970; positions or small counters are not dates
            if first >= 1e8 and last < 4e9:
                start, end = pd.to_datetime(first, unit="s"), pd.to_datetime(last, unit="s")
                out.update({"first_date": str(start), "last_date": str(end),
                            "span_days": round((end - start) / pd.Timedelta(days=1), 2)})
        return out

    def identity(self) -> dict:
        """What makes two runs' numbers comparable: the dataset's name, size, prepare settings and a fingerprint
        of every user's sequence and split targets, recorded in each run's results.json."""
        digest = hashlib.sha1(np.ascontiguousarray(self.offsets, dtype=np.int64).tobytes())
        digest.update(np.ascontiguousarray(self.items_flat, dtype=np.int64).tobytes())
        for split in SPLITS:  # the split itself (leave-one-out or by time)
            digest.update(np.ascontiguousarray(self.targets(split), dtype=np.int64).tobytes())
        return {"name": self.name, "n_users": self.n_users, "n_items": self.n_items,
                "prepare": self.manifest.get("prepare", {}), "split": self.manifest.get("split", ""),
                "fingerprint": digest.hexdigest(),
                **({"preset": {k: self.manifest["preset"][k] for k in ("name", "label")}}
                   if self.manifest.get("preset") else {})}

    def stats(self) -> dict:
        """The paper's Table 1 row."""
        n_train = int(self.train_lengths.sum())
        return {
            "dataset": self.name,
            "users": self.n_users,
            "items": self.n_items,
            "train": n_train,
            "valid": int(len(self.scored_users("valid"))),
            "test": int(len(self.scored_users("test"))),
            "density": n_train / (self.n_users * self.n_items),
        }
