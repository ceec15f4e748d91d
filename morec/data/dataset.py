"""A prepared dataset directory, read without re-parsing anything.

Each user's full sequence is stored once (CSR: offsets + items). The leave-one-out split is a view:
train = all but the last two, valid target = second-to-last, test target = last.
"""
from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

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

    def history(self, user: int, split: str) -> np.ndarray:
        """Items the user has before the ``split`` target (before valid = the training sequence)."""
        return self.sequence(user)[:-2 if split == "valid" else -1]

    @cached_property
    def train_lengths(self) -> np.ndarray:
        return self.lengths - 2

    @cached_property
    def _train_csr(self) -> tuple[np.ndarray, np.ndarray]:
        return self.history_csr("valid")  # the history before the valid target is the training sequence

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
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
        return np.asarray(self.items_flat)[self.offsets[1:] - (2 if split == "valid" else 1)].astype(np.int64)

    def history_csr(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(offsets, items) of every user's history before the split's target."""
        cut = 2 if split == "valid" else 1
        lengths = self.lengths - cut
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        keep = np.ones(len(self.items_flat), dtype=bool)
        keep[self.offsets[1:] - 1] = False
        if cut == 2:
            keep[self.offsets[1:] - 2] = False
        return offsets, np.asarray(self.items_flat)[keep]

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
        return d

    def stats(self) -> dict:
        """The paper's Table 1 row."""
        n_train = int(self.train_lengths.sum())
        return {
            "dataset": self.name,
            "users": self.n_users,
            "items": self.n_items,
            "train": n_train,
            "valid": self.n_users,
            "test": self.n_users,
            "density": n_train / (self.n_users * self.n_items),
        }
