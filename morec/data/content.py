"""Item content stores: item texts tokenized once into token-id arrays.

Training never sees a string. The first time a (tokenizer, text fields, max_tokens) combination is
used on a prepared dataset, every item's text is tokenized and the arrays are written to the
dataset's cache directory; later runs load them in milliseconds.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import ConfigError
from ..digest import texts_digest
from ..tempfiles import temp_sibling
from .dataset import PreparedDataset


@dataclass
class ItemTokens:
    """Token ids of every item, right-padded. Row ``i`` is item index ``i``; row 0 (padding) holds an
    empty text so that encoding it is harmless."""

    ids: np.ndarray  # (n_items + 1, T) int32, T = the longest tokenized text (<= max_tokens)
    lengths: np.ndarray  # (n_items + 1,) int32, number of real tokens per row (>= 1)
    pad_id: int

    @property
    def n_tokens(self) -> int:
        return int(self.ids.shape[1])


def item_texts(dataset: PreparedDataset, fields: list[str]) -> list[str]:
    """One string per item (index 1..n_items, in order): the chosen text fields joined by ' ; '.

    Missing values count as empty, so an item without an abstract still has its title.
    """
    items = dataset.items
    missing = [f for f in fields if f not in items.columns]
    if missing:
        known = ", ".join(dataset.text_columns) or "none"
        raise ConfigError(f"model.encoder.text.fields: {', '.join(missing)} not in {dataset.path} "
                          f"(its text columns: {known})")
    if not fields:
        raise ConfigError(f"model.encoder.text.fields is empty and {dataset.path} has no text columns; prepare it "
                          "with an item table (reader option text_columns=...) or train an ID model")
    parts = [items[f].astype("string").fillna("").str.strip() for f in fields]
    joined = parts[0]
    for p in parts[1:]:
        # join only non-empty parts, so a missing field leaves no dangling separator
        joined = pd.Series([" ; ".join(x for x in pair if x) for pair in zip(joined, p)], index=joined.index)
    return [str(t) for t in joined]


def tokenizer_fingerprint(tokenizer) -> str:
    """A digest of what decides the token ids: the full tokenizer definition, not its name, so two
    copies of one tokenizer share a cache and a retrained vocabulary never reuses a stale one."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        spec = json.loads(backend.to_str())
        # truncation / padding are call-time state (set by the last call), not the tokenizer
        spec = json.dumps({k: v for k, v in spec.items() if k not in ("truncation", "padding")}, sort_keys=True)
    else:  # slow (pure Python) tokenizers: the vocabulary and class decide
        spec = type(tokenizer).__name__ + json.dumps(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(spec.encode("utf-8")).hexdigest()[:16]


def tokenize_texts(tokenizer, texts: list[str], max_tokens: int, batch: int = 4096, prompt: str = "") -> ItemTokens:
    """Tokenize (with the model's special tokens, truncated to ``max_tokens``) into padded arrays. ``prompt``: a
    template around each text (``"Title: {text}. In one word:"``); the text is what truncation shortens, so
    the prompt's end (what last-token pooling reads) is always there. Row texts that are empty stay empty."""
    if prompt:
        return _pad(tokenizer, _prompted(tokenizer, texts, max_tokens, prompt))
    rows: list[list[int]] = []
    for start in range(0, len(texts), batch):
        enc = tokenizer(texts[start:start + batch], truncation=True, max_length=max_tokens,
                        add_special_tokens=True, return_attention_mask=False, return_token_type_ids=False)
        rows.extend(enc["input_ids"])
    return _pad(tokenizer, rows)


def _prompted(tokenizer, texts: list[str], max_tokens: int, prompt: str) -> list[list[int]]:
    if prompt.count("{text}") != 1:
        raise ConfigError(f"model.encoder.text.prompt must hold {{text}} once (where the item text goes), got {prompt!r}")
    before, after = (tokenizer(p, add_special_tokens=False)["input_ids"] if p else [] for p in prompt.split("{text}"))
    head, tail = _special_tokens(tokenizer)
    budget = max_tokens - len(head) - len(before) - len(after) - len(tail)
    if budget < 1:
        raise ConfigError(f"model.encoder.text.prompt takes {len(before) + len(after)} tokens, leaving none of "
                          f"model.encoder.text.max_tokens={max_tokens} for the item text; raise max_tokens")
    bodies = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
    return [head + before + body[:budget] + after + tail if text else [] for text, body in zip(texts, bodies)]


def _special_tokens(tokenizer) -> tuple[list[int], list[int]]:
    """The ids a tokenizer puts before and after a text ([CLS] / [SEP], <s>, none), read off a probe text."""
    bare = tokenizer("x", add_special_tokens=False)["input_ids"]
    full = tokenizer("x", add_special_tokens=True)["input_ids"]
    at = next((i for i in range(len(full) - len(bare) + 1) if full[i:i + len(bare)] == bare), 0)
    return full[:at], full[at + len(bare):]


def _pad(tokenizer, rows: list[list[int]]) -> ItemTokens:
    pad = tokenizer.pad_token_id
    if pad is None:  # decoder tokenizers (GPT-2, OPT) may have none; padding is masked out anyway
        pad = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    lengths = np.array([max(len(r), 1) for r in rows], dtype=np.int32)
    ids = np.full((len(rows), int(lengths.max(initial=1))), pad, dtype=np.int32)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = r
    return ItemTokens(ids, lengths, int(pad))


def item_tokens(dataset: PreparedDataset, tokenizer, fields: list[str], max_tokens: int, log=None,
                prompt: str = "") -> ItemTokens:
    """Every item's token ids, from the dataset cache or tokenized now and cached. The cache is keyed by
    the texts themselves (and the tokenizer and settings), so changed titles are never served stale."""
    texts = [""] + item_texts(dataset, fields)  # row 0 = padding item
    spec = [tokenizer_fingerprint(tokenizer), list(fields), max_tokens, dataset.n_items, texts_digest(texts)]
    key = hashlib.sha256(json.dumps(spec + ([prompt] if prompt else [])).encode()).hexdigest()[:16]
    path = Path(dataset.cache_dir) / f"tokens-{key}.npz"
    if path.exists():
        z = np.load(path)
        return ItemTokens(z["ids"], z["lengths"], int(z["pad_id"]))
    tokens = tokenize_texts(tokenizer, texts, max_tokens, prompt=prompt)
    tmp = temp_sibling(path, ".npz")
    np.savez(tmp, ids=tokens.ids, lengths=tokens.lengths, pad_id=np.int64(tokens.pad_id))
    tmp.replace(path)  # atomic: a run killed mid-write leaves no half-written cache
    if log:
        log(f"tokenized {dataset.n_items:,} item texts ({'+'.join(fields)}, <= {max_tokens} tokens, "
            f"longest {tokens.n_tokens}) -> {path}")
    return tokens
