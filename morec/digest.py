"""Content digests for cache keys: a cache is named by what it was computed from, so a changed input
(a title, an image file, the weights) can never pick up a stale cache.

File digests are SHA-256 of the bytes, remembered per process by (path, size, mtime) so a run hashes
each weight file once. Image files are identified by (size, mtime) instead of their bytes: a store of a
million images would otherwise read every file on each run just to find its cache; rewriting a file in
place (a fixed corrupt image) changes both.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

_MEMO: dict[tuple, str] = {}


def file_digest(path: str | Path) -> str:
    real = os.path.realpath(path)
    st = os.stat(real)
    key = (real, st.st_size, st.st_mtime_ns, st.st_ino)
    if key not in _MEMO:
        h = hashlib.sha256()
        with open(real, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _MEMO[key] = h.hexdigest()
    return _MEMO[key]


def files_digest(*paths: str | Path) -> str:
    """One digest of several files' contents (names do not matter, order does)."""
    return json_digest([file_digest(p) for p in paths])


def texts_digest(texts: list[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        b = t.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))  # length-prefixed: ["ab", "c"] != ["a", "bc"]
        h.update(b)
    return h.hexdigest()


def arrays_digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(json.dumps([str(a.dtype), list(a.shape)]).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def file_stamp(path: str | Path) -> list:
    """(size, mtime) of a file, or None if absent (a missing image is part of what a store records)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def json_digest(value, n: int = 64) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode("utf-8")).hexdigest()[:n]
