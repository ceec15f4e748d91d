"""The split handed to RePlay's peer run is morec's leave-one-out split, user by user: training sequences in
order (ties in time kept in file order), the valid and test targets, checked against the raw rows directly."""
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from morec.config import PrepareConfig
from morec.data.dataset import PreparedDataset
from morec.data.formats import RawDataset
from morec.data.prepare import prepare

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import replay_peer  # noqa: E402

QUIET = lambda s: None  # noqa: E731


def tied_raw(n_users=40, n_items=25, seed=3) -> RawDataset:
    """Users whose rows are shuffled in the file and whose timestamps often tie (only the file order breaks
    them), with repeated items: a split that sorted by anything but (time, file order) would differ."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        n = int(rng.integers(4, 12))
        times = np.sort(rng.integers(0, 4, size=n))  # few distinct times: many ties
        rows += [(f"u{u:02d}", f"i{int(i):02d}", int(t)) for t, i in zip(times, rng.integers(0, n_items, size=n))]
    inter = pd.DataFrame(rows, columns=["user", "item", "timestamp"]).sample(frac=1.0, random_state=seed)
    return RawDataset(inter.reset_index(drop=True), pd.DataFrame({"item": sorted(inter["item"].unique())}), "tied")


@pytest.fixture(scope="module")
def tied(tmp_path_factory):
    raw = tied_raw()
    out = prepare(raw, tmp_path_factory.mktemp("tied") / "p", PrepareConfig(min_user_interactions=4, dedup="none"),
                  log=QUIET)
    return raw, PreparedDataset(out)


def expected_split(raw: RawDataset, ds: PreparedDataset) -> dict[int, tuple[list[int], int, int]]:
    """user index -> (training items, valid target, test target) from the raw rows: each user's rows by time,
    ties in file order; the last is the test target, the one before it the valid target."""
    items, users = ds.item_index(), ds.user_index()
    ordered = raw.interactions.reset_index().sort_values(["timestamp", "index"], kind="stable")
    out = {}
    for user, rows in ordered.groupby("user", sort=False):
        seq = [int(items[i]) for i in rows["item"]]
        out[int(users[user])] = (seq[:-2], seq[-2], seq[-1])
    return out


def read_export(path: Path) -> dict[int, tuple[list[int], int, int]]:
    with np.load(path) as z:
        offsets, train = z["train_offsets"], z["train_items"]
        return {u: (train[offsets[u]:offsets[u + 1]].tolist(), int(z["valid"][u]), int(z["test"][u]))
                for u in range(len(offsets) - 1)}


def test_export_split_is_morecs_leave_one_out_split_user_by_user(tied, tmp_path):
    raw, ds = tied
    path = replay_peer.export_split(ds, tmp_path / "export")
    got, want = read_export(path), expected_split(raw, ds)
    assert sorted(got) == list(range(ds.n_users)) == sorted(want)
    ties = sum(len(r) - r["timestamp"].nunique() for _, r in raw.interactions.groupby("user"))
    assert ties > ds.n_users  # the data really tests the tie order
    for u in range(ds.n_users):
        assert got[u] == want[u], f"user {u}"
        # and as morec's own evaluation sees it: the history before each target, and the targets
        assert got[u][0] == ds.history(u, "valid").tolist()
        assert got[u][0] + [got[u][1]] == ds.history(u, "test").tolist()
        assert (got[u][1], got[u][2]) == (ds.targets("valid")[u], ds.targets("test")[u])
    with np.load(path) as z:
        assert int(z["n_items"]) == ds.n_items


def test_export_split_refuses_a_time_split(tmp_path):
    raw = tied_raw()
    out = prepare(raw, tmp_path / "t", PrepareConfig(min_user_interactions=4, dedup="none", split="time",
                                                     time_valid=2, time_test=3), log=QUIET)
    with pytest.raises(ValueError, match="leave-one-out"):
        replay_peer.export_split(PreparedDataset(out), tmp_path / "export")
