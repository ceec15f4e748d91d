"""A fresh scratch copy of parts of the repository, outside it: where tools/mutation.py and
tools/broken_variants.py change code without touching the working tree."""
from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def fresh_copy(work: Path, folders: tuple[str, ...], files: tuple[str, ...] = ()) -> None:
    """``work`` emptied, then the repository's ``folders`` (without bytecode) and ``files`` copied into it."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in folders:
        shutil.copytree(ROOT / folder, work / folder, ignore=ignore)
    for file in files:
        shutil.copy(ROOT / file, work / file)
