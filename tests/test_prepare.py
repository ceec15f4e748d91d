import json

import numpy as np
import pandas as pd
import pytest

from morec.config import PrepareConfig
from morec.data.dataset import PreparedDataset
from morec.data.formats import DataFormatError, RawDataset
from morec.data.prepare import prepare


def raw_from(rows, items=None):
    inter = pd.DataFrame(rows, columns=["user", "item", "timestamp"]).astype({"user": str, "item": str})
    if items is None:
        items = pd.DataFrame({"item": sorted(inter["item"].unique()), "title": "t"})
    return RawDataset(inter, items, name="hand")


def test_order_dedup_split_and_reindex(tmp_path):
    rows = [
        # user a: out of time order in the file, one repeat of item x, two equal timestamps (file order kept)
        ("a", "z", 30), ("a", "x", 10), ("a", "y", 20), ("a", "x", 40), ("a", "w", 50), ("a", "v", 50), ("a", "u", 60),
        ("b", "x", 1), ("b", "y", 2), ("b", "z", 3),  # only 3: removed with the default min 5
        ("c", "u", 5), ("c", "v", 6), ("c", "w", 7), ("c", "x", 8), ("c", "y", 9),
    ]
    items = pd.DataFrame({"item": ["u", "v", "w", "x", "y", "z", "unused"], "title": list("UVWXYZ") + ["never"]})
    log = []
    ds = PreparedDataset(prepare(raw_from(rows, items), tmp_path / "p", log=log.append))
    assert ds.n_users == 2 and ds.n_items == 6
    idx = ds.item_index()
    name = {v: k for k, v in idx.items()}
    users = ds.users["user"].tolist()
    a, c = users.index("a"), users.index("c")
    assert [name[i] for i in ds.sequence(a)] == ["x", "y", "z", "w", "v", "u"]  # dedup kept the first x
    assert [name[i] for i in ds.sequence(c)] == ["u", "v", "w", "x", "y"]
    # leave-one-out
    assert name[ds.targets("test")[a]] == "u" and name[ds.targets("valid")[a]] == "v"
    assert [name[i] for i in ds.history(a, "valid")] == ["x", "y", "z", "w"]
    assert [name[i] for i in ds.history(a, "test")] == ["x", "y", "z", "w", "v"]
    # the training split never contains a user's valid or test item
    for u in range(ds.n_users):
        train = ds.train_items[ds.train_offsets[u]:ds.train_offsets[u + 1]]
        assert ds.targets("valid")[u] not in train and ds.targets("test")[u] not in train
    assert ds.train_item_counts[0] == 0 and ds.train_item_counts.sum() == 4 + 3
    # item content follows the index; the item with no interaction left the catalogue
    assert ds.items.loc[idx["x"] - 1, "title"] == "X"
    assert "unused" not in set(ds.items["item"])
    report = {s["step"]: s for s in json.loads((tmp_path / "p" / "manifest.json").read_text())["filters"]}
    assert report["dedup"]["removed_interactions"] == 1
    assert report["short users"]["removed_users"] == 1 and report["short users"]["removed_interactions"] == 3
    assert any("no remaining interaction" in line for line in log)


def test_truncate_keeps_latest_and_warm_filter(tmp_path):
    rows = [("a", f"i{k}", k) for k in range(10)] + [("b", f"i{k}", k) for k in range(5)]
    ds = PreparedDataset(prepare(raw_from(rows), tmp_path / "t", PrepareConfig(max_seq_len=6), log=lambda s: None))
    names = ds.items["item"].to_numpy()
    assert [names[i - 1] for i in ds.sequence(0)] == [f"i{k}" for k in range(4, 10)]
    warm = PreparedDataset(prepare(raw_from(rows), tmp_path / "w", PrepareConfig(min_item_interactions=2), log=lambda s: None))
    assert warm.n_items == 5  # i5..i9 were seen once: gone
    assert warm.lengths.tolist() == [5, 5]
    strict = PrepareConfig(min_item_interactions=2, min_user_interactions=6)
    with pytest.raises(DataFormatError):
        prepare(raw_from(rows), tmp_path / "s", strict, log=lambda s: None)


def test_everyone_filtered_is_a_clear_error(tmp_path):
    rows = [("a", "x", 1), ("a", "y", 2)]
    with pytest.raises(DataFormatError, match="every user was filtered out"):
        prepare(raw_from(rows), tmp_path / "e", log=lambda s: None)


def test_subsample_is_seeded(tmp_path):
    rows = [(f"u{u}", f"i{(u + k) % 20}", k) for u in range(30) for k in range(6)]
    a = PreparedDataset(prepare(raw_from(rows), tmp_path / "a", PrepareConfig(n_users=10, seed=3), log=lambda s: None))
    b = PreparedDataset(prepare(raw_from(rows), tmp_path / "b", PrepareConfig(n_users=10, seed=3), log=lambda s: None))
    assert a.n_users == 10 and a.users["user"].tolist() == b.users["user"].tolist()
    assert np.array_equal(np.asarray(a.items_flat), np.asarray(b.items_flat))


def test_not_a_prepared_dataset(tmp_path):
    with pytest.raises(DataFormatError, match="morec data prepare"):
        PreparedDataset(tmp_path)


def test_integer_ids_prepare_exactly_as_their_strs(tmp_path):
    """prepare works on integer codes ordered like the str ids (no per-row strs for a million
    users); the filters that sort or draw by id (subsample, new-item hold-out) must not notice."""
    rng = np.random.default_rng(3)
    n = 4000
    users = rng.integers(0, 300, size=n)  # 2 < 10 as ints, "10" < "2" as strs: the order matters below
    items = rng.integers(0, 120, size=n)
    cfg = PrepareConfig(n_users=200, new_items=0.1, max_seq_len=12, min_item_interactions=2)
    as_int = RawDataset(pd.DataFrame({"user": users, "item": items, "timestamp": rng.integers(0, 50, size=n)}),
                        pd.DataFrame({"item": np.arange(120).astype(str)}), name="ids")
    as_str = RawDataset(as_int.interactions.astype({"user": str, "item": str}), as_int.items, name="ids")
    a = PreparedDataset(prepare(as_int, tmp_path / "int", cfg, log=lambda s: None))
    b = PreparedDataset(prepare(as_str, tmp_path / "str", cfg, log=lambda s: None))
    assert a.n_users == b.n_users > 100 and a.manifest["filters"] == b.manifest["filters"]
    assert np.array_equal(a.offsets, b.offsets) and np.array_equal(a.items_flat, b.items_flat)
    assert a.users["user"].tolist() == b.users["user"].tolist() and a.items["item"].tolist() == b.items["item"].tolist()
    assert all(isinstance(u, str) for u in a.users["user"].head())
