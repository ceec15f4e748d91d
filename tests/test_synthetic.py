"""The synthetic generator: deterministic, well-formed, and its content really explains taste."""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from morec.data.formats import DataFormatError
from morec.data.synthetic import (SynthConfig, generate, read_synthetic, render_item_image,
                                  synthesize, write_synthetic)

SMALL = SynthConfig(n_users=600, n_items=300, n_topics=6, n_new_items=12, seed=3)


@pytest.fixture(scope="module")
def small():
    return synthesize(SMALL)


def _topic_of(truth, item_ids: pd.Series) -> np.ndarray:
    return truth.item_topic[item_ids.str[1:].astype(int).to_numpy()]


def test_deterministic_and_seed_dependent():
    a, b = generate(SMALL), generate(SMALL)
    pd.testing.assert_frame_equal(a.interactions, b.interactions)
    pd.testing.assert_frame_equal(a.items, b.items)
    c = generate(SynthConfig(**{**SMALL.__dict__, "seed": 4}))
    assert not a.interactions["item"].equals(c.interactions["item"])


def test_shapes_ids_and_order(small):
    raw, truth = small
    inter, items = raw.interactions, raw.items
    assert list(inter.columns) == ["user", "item", "timestamp"]
    assert inter["timestamp"].dtype == np.int64
    assert items["item"].tolist() == [f"i{j}" for j in range(SMALL.n_items)]
    assert items["item"].is_unique and "image" not in items and "topic" not in items
    assert raw.text_columns == ["title"]
    assert set(inter["user"]) == {f"u{u}" for u in range(SMALL.n_users)}
    assert set(inter["item"]) <= set(items["item"])
    lens = inter.groupby("user").size()
    assert lens.min() >= SMALL.seq_len_min and lens.max() <= SMALL.seq_len_max
    # strictly increasing time per user, no repeated item per user
    assert (inter.groupby("user")["timestamp"].diff().dropna() > 0).all()
    assert not inter.duplicated(["user", "item"]).any()
    assert items["title"].str.split().str.len().eq(SMALL.words_per_title).all()
    assert items["title"].nunique() >= 0.98 * len(items)
    assert len(truth.item_topic) == SMALL.n_items and set(truth.item_topic) == set(range(SMALL.n_topics))


def test_new_items_only_as_final_interactions(small):
    raw, truth = small
    inter = raw.interactions
    new = set(truth.new_items)
    assert len(new) == SMALL.n_new_items
    is_last = inter.groupby("user").cumcount(ascending=False) == 0
    in_new = inter["item"].isin(new)
    assert not (in_new & ~is_last).any(), "a new item appears before a user's final interaction"
    assert set(inter.loc[in_new, "item"]) == new, "every new item is someone's final item"
    assert in_new.sum() == pytest.approx(SMALL.n_users / 10, abs=2)
    # the new item's topic follows the user's recent topics at least as often as any item would
    last3 = inter[~is_last].groupby("user").tail(3)
    recent = last3.assign(topic=_topic_of(truth, last3["item"])).groupby("user")["topic"].agg(set)
    finals = inter[in_new].set_index("user")
    hit = np.mean([t in recent[u] for u, t in zip(finals.index, _topic_of(truth, finals["item"]))])
    assert hit > 0.7


def test_title_words_carry_the_topic(small):
    raw, truth = small
    vocab = sorted({w for t in raw.items["title"] for w in t.split()})
    col = {w: i for i, w in enumerate(vocab)}
    X = np.zeros((len(raw.items), len(vocab)))
    for r, t in enumerate(raw.items["title"]):
        for w in t.split():
            X[r, col[w]] = 1
    y = truth.item_topic
    train = np.arange(len(y)) % 2 == 0
    cent = np.stack([X[train & (y == k)].mean(0) for k in range(SMALL.n_topics)])
    cent /= np.linalg.norm(cent, axis=1, keepdims=True)
    pred = (X[~train] @ cent.T).argmax(1)
    assert (pred == y[~train]).mean() > 0.9


def test_images_carry_the_topic():
    rng = np.random.default_rng(0)
    topics = np.repeat(np.arange(8), 30)
    feats = np.stack([render_item_image(int(k), int(rng.integers(2**31)), 16).reshape(-1, 3).mean(0)
                      for k in topics])  # mean colour only
    train = np.arange(len(topics)) % 2 == 0
    cent = np.stack([feats[train & (topics == k)].mean(0) for k in range(8)])
    pred = ((feats[~train, None, :] - cent[None]) ** 2).sum(-1).argmin(1)
    assert (pred == topics[~train]).mean() > 0.9
    img = render_item_image(3, 7, 32)
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8
    assert np.array_equal(img, render_item_image(3, 7, 32))


def test_recent_topics_predict_the_next_topic(small):
    raw, truth = small
    topic = _topic_of(truth, raw.interactions["item"])
    user = raw.interactions["user"].to_numpy()
    hits = 0
    total = 0
    for u in np.unique(user):
        seq = topic[user == u]
        for t in range(3, len(seq)):
            total += 1
            hits += Counter(seq[t - 3:t][::-1]).most_common(1)[0][0] == seq[t]  # ties: most recent
    seq_acc = hits / total
    pop_acc = np.bincount(topic).max() / len(topic)
    assert seq_acc > 2 * pop_acc, (seq_acc, pop_acc)


def test_item_ids_carry_signal_beyond_popularity():
    """A bigram (previous item -> next item) count model beats most-popular on held-out users,
    so an ID model has something to learn inside a topic."""
    raw = generate(SynthConfig(n_users=3000, n_items=300, n_topics=6, seed=1))
    inter = raw.interactions
    item = inter["item"].str[1:].astype(int).to_numpy()
    uid = inter["user"].str[1:].astype(int).to_numpy()
    same_user = np.r_[False, uid[1:] == uid[:-1]]
    prev, nxt, test_user = item[:-1][same_user[1:]], item[1:][same_user[1:]], uid[1:][same_user[1:]] % 5 == 0
    m = 300
    big = np.zeros((m, m))
    np.add.at(big, (prev[~test_user], nxt[~test_user]), 1)
    pop = np.bincount(nxt[~test_user], minlength=m)
    top_pop = np.argsort(-pop)[:10]
    pop_hr = np.isin(nxt[test_user], top_pop).mean()
    scores = big[prev[test_user]] + 1e-3 * pop  # popularity breaks ties
    top_big = np.argsort(-scores, axis=1)[:, :10]
    big_hr = (top_big == nxt[test_user][:, None]).any(1).mean()
    assert big_hr > 2 * pop_hr, (big_hr, pop_hr)


def test_write_and_read_back(tmp_path):
    cfg = SynthConfig(n_users=60, n_items=40, n_topics=4, n_new_items=4, image_size=16, seed=5)
    out = write_synthetic(cfg, tmp_path / "synth")
    raw = read_synthetic(out)
    mem = generate(cfg)
    pd.testing.assert_frame_equal(raw.interactions, mem.interactions, check_dtype=False)
    assert raw.items["title"].tolist() == mem.items["title"].tolist()
    assert raw.root == out and "topic" not in raw.items
    from PIL import Image
    with Image.open(out / raw.items["image"].iloc[0]) as im:
        assert im.size == (16, 16) and im.mode == "RGB"
    assert "topic" in pd.read_csv(out / "items.csv").columns
    meta = json.loads((out / "SYNTH.json").read_text())
    assert meta["config"]["seed"] == 5 and len(meta["new_items"]) == 4
    assert len(meta["item_topic"]) == 40
    # no images: no image column, no folder
    out2 = write_synthetic(SynthConfig(**{**cfg.__dict__, "image_size": 0}), tmp_path / "noimg")
    assert "image" not in read_synthetic(out2).items and not (out2 / "images").exists()


def test_bad_configs_are_explained():
    with pytest.raises(DataFormatError, match="seq_len_max"):
        generate(SynthConfig(n_items=20, n_topics=2, seq_len_max=30))
    with pytest.raises(DataFormatError, match="n_new_items"):
        generate(SynthConfig(n_users=5, n_items=100, n_new_items=10))


def test_tiny_config_still_valid():
    raw, truth = synthesize(SynthConfig(n_users=30, n_items=24, n_topics=4, seq_len_min=10,
                                        seq_len_max=20, n_new_items=3, seed=2))
    inter = raw.interactions
    assert not inter.duplicated(["user", "item"]).any()
    is_last = inter.groupby("user").cumcount(ascending=False) == 0
    assert not (inter["item"].isin(truth.new_items) & ~is_last).any()
    assert set(truth.new_items) <= set(inter["item"])
