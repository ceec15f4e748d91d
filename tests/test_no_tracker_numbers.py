"""No file name or file text of the repository cites a tracker number: a reader of the repository has no
tracker, so a result, section, test or comment is named by what it holds ("morec_modes_cost/", "the fast
recipe's benchmark"), never by the ticket it came from. Nothing is allow-listed.

Every tracked file is read (``git ls-files``; the working tree minus ignored folders where git is missing);
binary files (a NUL byte in their first 8 KiB, or not UTF-8) have no text to read, only a name.
"""
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# the word issue / ticket / tracker / pull request followed by a number (with or without a space, "_", "-" or
# "#" between: a file name like the runs folder this test replaced counts), "PR #" and a number, and a bare "#"
# and number after a space or bracket. A colour ("#3b75af", "color:#222") or an lmdb key is none of these.
TRACKER = re.compile(r"(?i)(?<![a-z0-9])(?:issues?|tickets?|tracker|pull request)[\s_-]*#?\d+"
                     r"|(?<![A-Za-z0-9/+])PR ?#\d+"
                     r"|(?:^|(?<=[\s(\[,]))#\d+\b(?![\w-])")
UNTRACKED = {".git", ".venv", "runs", "data", "__pycache__", ".pytest_cache"}


def repository_files() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
        return [f for f in out.decode("utf-8").split("\0") if f]
    except (OSError, subprocess.CalledProcessError):  # an unpacked archive: no git metadata
        return [str(p.relative_to(ROOT)) for p in ROOT.rglob("*")
                if p.is_file() and not UNTRACKED & set(p.relative_to(ROOT).parts)]


def text_of(path: Path) -> str | None:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:  # deleted in the working tree, not yet committed
        return None
    if b"\0" in raw[:8192]:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def tracker_citations(name: str, text: str | None) -> list[str]:
    found = [f"{name}: name holds {m.group(0)!r}" for m in TRACKER.finditer(name)]
    for m in TRACKER.finditer(text or ""):
        line = text.count("\n", 0, m.start()) + 1
        found.append(f"{name}:{line}: {m.group(0)!r}")
    return found


# built at run time so that this file's own text cites nothing
def _t(s: str) -> str:
    return s.replace("~", "")


@pytest.mark.parametrize("cited", [_t("benchmarks/results/is~sue13_runs/side"), _t("(is~sue 16)"),
                                   _t("Is~sue #~4:"), _t("is~sues 13 and 16"), _t("see #~29."), _t("(#~7)"),
                                   _t("PR #~12"), _t("tick~et 3"), _t("tests/test_is~sue_18.py")])
def test_the_pattern_finds_tracker_citations(cited):
    assert TRACKER.search(cited), cited


@pytest.mark.parametrize("plain", ["color:#222", '"#888888"', "#3b75af", "lmdb:hm_images.lmdb#2", "a tissue 3",
                                   "the issue's figure", "# 1 heading comment", "seed-1", "HR@10"])
def test_the_pattern_leaves_colours_keys_and_prose_alone(plain):
    assert not TRACKER.search(plain), plain


def test_no_tracker_number_in_any_file_name_or_text():
    files = repository_files()
    assert len(files) > 100, f"only {len(files)} files found under {ROOT}: the listing failed"
    found = [hit for f in files for hit in tracker_citations(f, text_of(ROOT / f))]
    assert not found, ("name results, sections and tests by what they hold, not by a tracker number:\n"
                       + "\n".join(found[:40]) + (f"\n... and {len(found) - 40} more" if len(found) > 40 else ""))
