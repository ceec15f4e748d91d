"""A deterministic synthetic dataset whose item content explains user taste.

Why it exists: tests and demos need data where (a) a model that reads item *content* (titles,
images) can learn what a user wants next, (b) an ID model can still learn something content
cannot show (popularity and item-to-item co-occurrence), and (c) some items never appear in
training, so the new-item setting of the paper can be exercised. Real datasets give none of this
on a laptop in a second.

How taste is explained by content:

* every item has one primary topic (sometimes a weak secondary one); its title is made mostly of
  its topic's pseudo-words and its image uses its topic's palette and stripe pattern;
* a user has a concentrated preference over topics and moves between topics with stickiness
  (``stay_prob``) and a topic transition matrix, so the topics of recent items predict the next;
* inside a topic, items are chosen by Zipf popularity or, while the user stays in the topic, by
  following fixed "follow-up" items of the current item: a signal only item IDs carry.

Everything is drawn from ``numpy.random.default_rng`` streams derived from ``cfg.seed``, so the same
config gives byte-identical output.
"""
from __future__ import annotations

import colorsys
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from morec.data.formats import DataFormatError, RawDataset
from morec.extras import need

# Fixed knobs that shape the data but are not worth a config field.
_PREF_CONCENTRATION = 0.3   # Dirichlet alpha of user topic preferences: small = few favourite topics
_SWITCH_PREF_WEIGHT = 0.5   # on a topic switch: mixture of the user's preference and the transition row
_SECONDARY_PROB = 0.2       # share of items with a secondary topic
_SECONDARY_WEIGHT = 0.25    # how much a secondary-topic item is chosen in that topic (vs its popularity)
_N_FOLLOW = 3               # follow-up items per item (the ID-only co-occurrence signal)
_SHARED_WORD_PROB = 0.3     # a title word is a topic-neutral filler with this probability
_SECONDARY_WORD_PROB = 0.25  # ... else, for items with a secondary topic, a word of that topic
_T0 = 1_600_000_000         # first timestamp (unix seconds), only so the numbers look like time


@dataclass
class SynthConfig:
    n_users: int = 2000
    n_items: int = 1000
    n_topics: int = 8
    seq_len_min: int = 8
    seq_len_max: int = 30
    n_new_items: int = 0     # items held out of training: each appears only as some users' LAST interaction
    words_per_title: int = 6
    vocab_per_topic: int = 30
    shared_vocab: int = 50   # topic-neutral filler words
    image_size: int = 32     # side of the square RGB PNG written per item; 0 = no images
    popularity_alpha: float = 1.0  # Zipf exponent of item popularity within a topic
    stay_prob: float = 0.7   # next item's topic = current topic with this prob, else preference/transition
    seed: int = 0
    follow_prob: float = 0.3  # while staying in a topic: next item is a follow-up of the current one

    def validate(self) -> None:
        n_regular = self.n_items - self.n_new_items
        problems = []
        if self.n_users < 1 or self.n_topics < 1:
            problems.append("n_users and n_topics must be >= 1")
        if not 1 <= self.seq_len_min <= self.seq_len_max:
            problems.append("need 1 <= seq_len_min <= seq_len_max")
        if self.n_new_items < 0 or n_regular < max(self.seq_len_max, 2 * self.n_topics):
            problems.append(
                f"n_items - n_new_items = {n_regular} must be >= seq_len_max ({self.seq_len_max}) and "
                f">= 2 * n_topics ({2 * self.n_topics}), so users never run out of unseen items")
        if self.n_new_items > self.n_users:
            problems.append("n_new_items must be <= n_users: each new item is some user's last item")
        if self.words_per_title < 1 or self.vocab_per_topic < self.words_per_title \
                or self.shared_vocab < self.words_per_title:
            problems.append("vocab_per_topic and shared_vocab must be >= words_per_title >= 1")
        if not (0 <= self.stay_prob <= 1 and 0 <= self.follow_prob <= 1):
            problems.append("stay_prob and follow_prob must be in [0, 1]")
        if self.image_size < 0:
            problems.append("image_size must be >= 0 (0 = no images)")
        if problems:
            raise DataFormatError("synthetic config: " + "; ".join(problems))


@dataclass
class SynthTruth:
    """What generated the data, for tests and demos (also written to SYNTH.json)."""
    item_topic: np.ndarray       # (n_items,) primary topic of item i{j}
    item_secondary: np.ndarray   # (n_items,) secondary topic or -1
    new_items: list[str]         # ids that appear only as final interactions
    vocab: list[list[str]]       # vocab[k] = words of topic k; vocab[n_topics] = shared fillers
    item_seeds: np.ndarray       # (n_items,) seed of each item's image


# ----------------------------------------------------------------------------------------------
# content: words and images

_ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z",
           "br", "dr", "kr", "pl", "st", "tr", "sh", "th"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ou"]
_CODAS = ["", "", "", "n", "r", "l", "s", "x"]


def _pseudo_words(rng: np.random.Generator, n: int) -> list[str]:
    """n distinct pronounceable words of 2-3 consonant-vowel syllables, e.g. 'zorvel'."""
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < n:
        n_syll = 2 + int(rng.random() < 0.4)
        parts = [_ONSETS[rng.integers(len(_ONSETS))] + _VOWELS[rng.integers(len(_VOWELS))]
                 for _ in range(n_syll)]
        word = "".join(parts) + _CODAS[rng.integers(len(_CODAS))]
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def _titles(rng: np.random.Generator, cfg: SynthConfig, vocab: list[list[str]],
            topic: np.ndarray, secondary: np.ndarray) -> list[str]:
    """One title per item; words mostly from its topic, distinct within a title and mostly across items."""
    w = cfg.words_per_title
    shared = vocab[cfg.n_topics]
    titles: list[str] = []
    used: set[str] = set()
    for j in range(len(topic)):
        for _attempt in range(20):  # resample on a duplicate title; the word space makes this rare
            u = rng.random(w)
            # the primary topic always keeps at least one word
            n_shared = min(int((u < _SHARED_WORD_PROB).sum()), w - 1)
            n_sec = int((u >= 1 - _SECONDARY_WORD_PROB).sum()) if secondary[j] >= 0 else 0
            n_sec = min(n_sec, w - n_shared - 1)
            n_main = w - n_shared - n_sec
            words = [vocab[topic[j]][i] for i in rng.choice(cfg.vocab_per_topic, n_main, replace=False)]
            if n_sec:
                words += [vocab[secondary[j]][i] for i in rng.choice(cfg.vocab_per_topic, n_sec, replace=False)]
            words += [shared[i] for i in rng.choice(cfg.shared_vocab, n_shared, replace=False)]
            title = " ".join(words[i] for i in rng.permutation(len(words)))
            if title not in used:
                break
        used.add(title)
        titles.append(title)
    return titles


def _topic_style(topic: int) -> tuple[float, float, float]:
    """Hue, stripe angle and stripe frequency of a topic.

    Golden-ratio steps spread any number of topics over the hue circle and the angle range without
    knowing n_topics, so one topic always looks the same whatever the dataset size.
    """
    hue = (topic * 0.6180339887) % 1.0
    angle = ((topic * 0.3819660113 + 0.1) % 1.0) * np.pi
    freq = 1.5 + (topic * 3 % 7) * 0.6  # stripes across the image: 1.5 .. 5.1
    return hue, angle, freq


def render_item_image(topic: int, item_seed: int, size: int) -> np.ndarray:
    """(size, size, 3) uint8 image: the topic fixes palette and stripe pattern; the item seed
    jitters them and adds blobs and pixel noise, so items of one topic look alike, not identical."""
    rng = np.random.default_rng(item_seed)
    hue, angle, freq = _topic_style(topic)
    hue = (hue + rng.normal(0, 0.012)) % 1.0
    angle += rng.normal(0, 0.08)
    freq *= 1 + rng.normal(0, 0.08)
    light = np.array(colorsys.hsv_to_rgb(hue, 0.30 + rng.uniform(-0.05, 0.05), 0.95))
    dark = np.array(colorsys.hsv_to_rgb(hue, 0.90, 0.45 + rng.uniform(-0.05, 0.05)))
    accent = np.array(colorsys.hsv_to_rgb((hue + 0.05) % 1.0, 1.0, 0.85))

    yy, xx = np.mgrid[0:size, 0:size] / max(size, 1)  # (H, W) in [0, 1)
    wave = np.sin(2 * np.pi * freq * (xx * np.cos(angle) + yy * np.sin(angle)) + rng.uniform(0, 2 * np.pi))
    s = (np.clip(2.5 * wave, -1, 1) + 1) / 2                      # (H, W) soft square wave in [0, 1]
    img = dark + s[..., None] * (light - dark)                    # (H, W, 3)
    for _ in range(rng.integers(1, 4)):                           # a few blobs in the accent colour
        cx, cy = rng.uniform(0.15, 0.85, 2)
        r = rng.uniform(0.08, 0.18)
        a = 0.8 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
        img = img * (1 - a[..., None]) + accent * a[..., None]
    img = img * 255 + rng.normal(0, 8, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# catalogue and users

def _sample_cat(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row of probs (n, k); rows need not be normalized."""
    cum = np.cumsum(probs, axis=1)
    u = rng.random(len(probs)) * cum[:, -1]
    return np.minimum((cum < u[:, None]).sum(axis=1), probs.shape[1] - 1)


def _pick_new_items(rng: np.random.Generator, cfg: SynthConfig, topic: np.ndarray) -> np.ndarray:
    """New items round-robin over topics, so every topic can produce them, never a topic's last item."""
    by_topic = [list(rng.permutation(np.flatnonzero(topic == k))) for k in range(cfg.n_topics)]
    chosen: list[int] = []
    k = 0
    while len(chosen) < cfg.n_new_items:
        if len(by_topic[k]) > 2:  # keep >= 2 regular items per topic to choose from
            chosen.append(int(by_topic[k].pop()))
        elif all(len(b) <= 2 for b in by_topic):
            raise DataFormatError("synthetic config: too many new items for the catalogue; "
                                  "lower n_new_items or raise n_items")
        k = (k + 1) % cfg.n_topics
    return np.array(sorted(chosen), dtype=np.int64)


class _Catalogue:
    """Per-topic popularity tables of the regular (non-new) items, plus follow-up items."""

    def __init__(self, rng: np.random.Generator, cfg: SynthConfig, topic: np.ndarray,
                 secondary: np.ndarray, is_new: np.ndarray):
        self.topic = topic
        self.cands: list[np.ndarray] = []
        self.cum: list[np.ndarray] = []
        weight = np.zeros(len(topic))
        for k in range(cfg.n_topics):
            own = np.flatnonzero((topic == k) & ~is_new)
            # Zipf over a random rank order: which items are hits is part of what IDs must learn.
            weight[own] = (rng.permutation(len(own)) + 1.0) ** -cfg.popularity_alpha
        for k in range(cfg.n_topics):
            own = np.flatnonzero((topic == k) & ~is_new)
            sec = np.flatnonzero((secondary == k) & ~is_new)
            cands = np.concatenate([own, sec])
            w = np.concatenate([weight[own], _SECONDARY_WEIGHT * weight[sec]])
            self.cands.append(cands)
            self.cum.append(np.cumsum(w))
        # Follow-ups: fixed, uniformly chosen same-topic items. Uniform (not by popularity) so that
        # co-occurrence predicts items that popularity alone would rank low.
        self.follow = np.zeros((len(topic), _N_FOLLOW), dtype=np.int64)
        for k in range(cfg.n_topics):
            own = np.flatnonzero((topic == k) & ~is_new)
            for j in own:
                others = own[own != j]
                self.follow[j] = others[rng.integers(len(others), size=_N_FOLLOW)]
        self.regular = np.flatnonzero(~is_new)

    def popular(self, rng: np.random.Generator, topics: np.ndarray) -> np.ndarray:
        """One popularity-weighted item per entry of topics."""
        out = np.empty(len(topics), dtype=np.int64)
        for k in np.unique(topics):
            idx = np.flatnonzero(topics == k)
            u = rng.random(len(idx)) * self.cum[k][-1]
            out[idx] = self.cands[k][np.searchsorted(self.cum[k], u, side="right")]
        return out


def synthesize(cfg: SynthConfig) -> tuple[RawDataset, SynthTruth]:
    """The dataset and the ground truth that generated it (``generate`` returns only the first)."""
    cfg.validate()
    # Independent streams per component: e.g. changing n_users does not change item titles.
    s_vocab, s_items, s_users, s_new, s_time, s_img = (
        np.random.default_rng(s) for s in np.random.SeedSequence(cfg.seed).spawn(6))
    vocab, topic, secondary, titles = _items(s_vocab, s_items, cfg)
    item_seeds = s_img.integers(0, 2**62, size=cfg.n_items)
    new_items = _pick_new_items(s_new, cfg, topic) if cfg.n_new_items else np.zeros(0, np.int64)
    is_new = np.zeros(cfg.n_items, dtype=bool)
    is_new[new_items] = True
    cat = _Catalogue(s_items, cfg, topic, secondary, is_new)
    topics, items, lens = _sequences(s_users, cfg, cat, topic)
    if cfg.n_new_items:
        _end_with_new_items(s_new, cfg, topic, new_items, topics, items, lens)
    inter, item_ids = _interactions(s_time, cfg, items, lens)
    # The topic is ground truth, not content: kept out of `items` so that text encoders, which read
    # every text column, cannot see it.
    items_df = pd.DataFrame({"item": item_ids, "title": titles})
    raw = RawDataset(inter, items_df, name="synthetic",
                     notes=[f"synthetic: {cfg.n_users} users, {cfg.n_items} items ({cfg.n_new_items} new), "
                            f"{cfg.n_topics} topics, {len(inter)} interactions, seed {cfg.seed}"])
    truth = SynthTruth(topic, secondary, [str(item_ids[j]) for j in new_items], vocab, item_seeds)
    return raw, truth


def _items(s_vocab, s_items, cfg: SynthConfig):
    """(vocab per topic + the shared one, each item's topic (balanced), secondary topic (-1: none), title)."""
    m, K = cfg.n_items, cfg.n_topics
    words = _pseudo_words(s_vocab, K * cfg.vocab_per_topic + cfg.shared_vocab)
    vocab = [words[k * cfg.vocab_per_topic:(k + 1) * cfg.vocab_per_topic] for k in range(K)]
    vocab.append(words[K * cfg.vocab_per_topic:])
    topic = s_items.permutation(np.arange(m) % K)
    secondary = np.full(m, -1, dtype=np.int64)
    if K > 1:
        has_sec = s_items.random(m) < _SECONDARY_PROB
        shift = s_items.integers(1, K, size=m)  # any topic but the primary
        secondary[has_sec] = (topic[has_sec] + shift[has_sec]) % K
    return vocab, topic, secondary, _titles(s_items, cfg, vocab, topic, secondary)


def _sequences(rng, cfg: SynthConfig, cat: _Catalogue, topic: np.ndarray):
    """Each user's topics and items, (n, L) each, and sequence length: preferences and topic transitions drive
    the topics, popularity and "follow" links the items; all users advance one step at a time."""
    n, K, L = cfg.n_users, cfg.n_topics, cfg.seq_len_max
    pref = rng.dirichlet(np.full(K, _PREF_CONCENTRATION), size=n)        # (n, K)
    trans = rng.dirichlet(np.full(K, 0.5), size=K)                       # (K, K)
    if K > 1:
        np.fill_diagonal(trans, 0.0)  # staying is stay_prob's job; a switch should move
    lens = rng.integers(cfg.seq_len_min, cfg.seq_len_max + 1, size=n)
    topics = np.empty((n, L), dtype=np.int64)
    items = np.empty((n, L), dtype=np.int64)
    topics[:, 0] = _sample_cat(rng, pref)
    items[:, 0] = cat.popular(rng, topics[:, 0])
    for t in range(1, L):
        prev_t, prev_i = topics[:, t - 1], items[:, t - 1]
        stay = rng.random(n) < cfg.stay_prob
        switch_p = _SWITCH_PREF_WEIGHT * pref + (1 - _SWITCH_PREF_WEIGHT) * trans[prev_t]
        topics[:, t] = np.where(stay, prev_t, _sample_cat(rng, switch_p))
        items[:, t] = cat.popular(rng, topics[:, t])
        follow = stay & (rng.random(n) < cfg.follow_prob)
        items[follow, t] = cat.follow[prev_i[follow], rng.integers(_N_FOLLOW, size=int(follow.sum()))]
        _redraw_repeats(rng, cat, topic, topics, items, t)
    return topics, items, lens


def _redraw_repeats(rng, cat: _Catalogue, topic: np.ndarray, topics: np.ndarray, items: np.ndarray, t: int) -> None:
    """No user repeats an item: step ``t``'s repeats redrawn by popularity, then from any unseen item."""
    for _ in range(10):
        dup = np.flatnonzero((items[:, :t] == items[:, t:t + 1]).any(axis=1))
        if len(dup) == 0:
            return
        items[dup, t] = cat.popular(rng, topics[dup, t])
    for u in np.flatnonzero((items[:, :t] == items[:, t:t + 1]).any(axis=1)):
        seen = items[u, :t]
        pool = np.setdiff1d(cat.cands[topics[u, t]], seen)
        if len(pool) == 0:  # the user has seen the whole topic: any unseen regular item
            pool = np.setdiff1d(cat.regular, seen)
            items[u, t] = pool[rng.integers(len(pool))]
            topics[u, t] = topic[items[u, t]]  # the user moved on to that item's topic
        else:
            items[u, t] = pool[rng.integers(len(pool))]


def _end_with_new_items(s_new, cfg: SynthConfig, topic: np.ndarray, new_items: np.ndarray, topics: np.ndarray,
                        items: np.ndarray, lens: np.ndarray) -> None:
    """The final item of ~n/10 users replaced by a new item of the topic they were in; every new item at least once."""
    n, K = cfg.n_users, cfg.n_topics
    last = np.arange(n), lens - 1
    last_topic = topics[last]
    new_by_topic = [new_items[topic[new_items] == k] for k in range(K)]
    order = s_new.permutation(n)
    assigned = np.full(n, -1, dtype=np.int64)
    queues = {k: [u for u in order if last_topic[u] == k] for k in range(K)}
    for j in new_items:  # every new item appears at least once
        q = queues[int(topic[j])]
        if q:
            u = q.pop(0)
        else:  # no user ends in this topic (tiny configs): take any unassigned user
            u = next(int(x) for x in order if assigned[x] < 0)
        assigned[u] = j
    quota = min(n, max(cfg.n_new_items, round(n / 10))) - cfg.n_new_items
    extra = [u for u in order if assigned[u] < 0 and len(new_by_topic[last_topic[u]])][:quota]
    for u in extra:
        pool = new_by_topic[last_topic[u]]
        assigned[u] = pool[s_new.integers(len(pool))]
    has = assigned >= 0
    items[np.flatnonzero(has), lens[has] - 1] = assigned[has]


def _interactions(s_time, cfg: SynthConfig, items: np.ndarray, lens: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """The interactions table (user, item, timestamp strictly increasing per user) and every item's id."""
    n, m, L = cfg.n_users, cfg.n_items, cfg.seq_len_max
    mask = np.arange(L)[None, :] < lens[:, None]                         # (n, L)
    gaps = s_time.integers(60, 3 * 86400, size=(n, L))                    # seconds between events
    start = _T0 + s_time.integers(0, 180 * 86400, size=n)
    ts = start[:, None] + np.cumsum(gaps, axis=1)                         # strictly increasing per user
    user_ids = np.array([f"u{u}" for u in range(n)], dtype=object)
    item_ids = np.array([f"i{j}" for j in range(m)], dtype=object)
    inter = pd.DataFrame({
        "user": np.repeat(user_ids, lens),
        "item": item_ids[items[mask]],
        "timestamp": ts[mask].astype(np.int64),
    })
    return inter, item_ids


def generate(cfg: SynthConfig) -> RawDataset:
    """The dataset in memory; no images (``items`` has no ``image`` column)."""
    return synthesize(cfg)[0]


def write_synthetic(cfg: SynthConfig, out_dir: Path) -> Path:
    """Write interactions.csv, items.csv (item,title,topic[,image]), images/<item>.png and SYNTH.json."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    raw, truth = synthesize(cfg)
    raw.interactions.to_csv(out_dir / "interactions.csv", index=False)
    items = raw.items.copy()
    items["topic"] = truth.item_topic
    if cfg.image_size > 0:
        Image = need("PIL.Image", "writing synthetic item images")  # generating in memory works without Pillow

        (out_dir / "images").mkdir(exist_ok=True)
        paths = []
        for item, k, seed in zip(items["item"], truth.item_topic, truth.item_seeds):
            rel = f"images/{item}.png"
            Image.fromarray(render_item_image(int(k), int(seed), cfg.image_size)).save(out_dir / rel)
            paths.append(rel)
        items["image"] = paths
    items.to_csv(out_dir / "items.csv", index=False)
    meta = {
        "format": "morec-synthetic/1",
        "config": asdict(cfg),
        "item_topic": {i: int(k) for i, k in zip(raw.items["item"], truth.item_topic)},
        "item_secondary_topic": {i: int(k) for i, k in zip(raw.items["item"], truth.item_secondary)
                                 if k >= 0},
        "new_items": truth.new_items,
        "vocab": {("shared" if k == cfg.n_topics else str(k)): ws for k, ws in enumerate(truth.vocab)},
    }
    (out_dir / "SYNTH.json").write_text(json.dumps(meta, indent=1))
    return out_dir


def read_synthetic(out_dir) -> RawDataset:
    """Read what ``write_synthetic`` wrote. The ``topic`` column is ground truth and is left out of
    ``items`` (see SYNTH.json for it), so no encoder can read the answer."""
    out_dir = Path(out_dir)
    for name in ("interactions.csv", "items.csv", "SYNTH.json"):
        if not (out_dir / name).is_file():
            raise DataFormatError(f"{out_dir / name}: missing; write it with `morec data synth`")
    inter = pd.read_csv(out_dir / "interactions.csv", dtype={"user": str, "item": str, "timestamp": np.int64},
                        keep_default_na=False)
    items = pd.read_csv(out_dir / "items.csv", dtype=str, keep_default_na=False)
    items = items.drop(columns=["topic"], errors="ignore")
    meta = json.loads((out_dir / "SYNTH.json").read_text())
    return RawDataset(inter, items, name="synthetic", root=out_dir,
                      notes=[f"synthetic dataset read from {out_dir} (seed {meta['config']['seed']})"])
