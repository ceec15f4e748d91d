"""Every number published in README.md, docs/results/**/README.md and benchmarks/README.md comes from the
committed file its paragraph cites, token for token, and every generated block is exactly the file it names.

Which files a paragraph cites: those it names (``<!-- cites: PATH ... -->`` comments, ``<!-- results: PATH -->``
blocks, or a repository path such as ``benchmarks/results/x.log`` in its text); a paragraph naming none takes
its section's (heading to heading), a section naming none the document's ``cites`` comments.

What is checked: every decimal (``15.59``), every percentage (``+15%``, ``-17.65%``), and every integer of two or
more digits in a sentence that holds a decimal or a percentage (a result sentence: ``943 users``). A number
matches when the cited file holds it as a whole token (``15.5`` is not found in ``15.59``) or holds a more precise
value that rounds to it at the published precision (``0.07298`` for ``0.0730``). Code (fenced or inline) and
version strings are not results; generated blocks are compared whole with their file (second test). A section
marked ``<!-- no committed source: WHY -->`` is reported, not checked (measurements from before result files
were kept): the list of such sections may only shrink.
"""
import re
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path

import pytest

from morec.report import relink

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs" / "results").rglob("README.md")), ROOT / "benchmarks" / "README.md",
        # the configuration reference is generated from morec/config.py (settings, not results): its own test
        *sorted(p for p in (ROOT / "docs" / "guide").glob("*.md") if p.name != "configuration.md")]
PATH = re.compile(r"(?:benchmarks|docs)/[\w./+-]+")
SOURCE_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?%?(?![\w.]*\d)")
DECIMAL = re.compile(r"(?<![\w.\d-])\d+\.\d+(?![\w.]*\d)")
PERCENT = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?%(?!\s*(?:CI|confidence|interval|paired|two-level|bootstrap))")
INTEGER = re.compile(r"(?<![\w.,\d/@-])\d{2,}(?![\w.,]*\d|%)")
UNSOURCED = re.compile(r"<!-- no committed source: .*? -->", re.S)
RESULT_BLOCK = re.compile(r"<!-- results: (\S+) -->\n.*?<!-- /results -->", re.S)


def named_files(text: str) -> list[Path]:
    names = [p for m in re.finditer(r"<!-- (?:cites|results): (.*?) -->", text, re.S) for p in m.group(1).split()]
    names += [m.group(0).rstrip(".,;:)") for m in PATH.finditer(re.sub(r"<!--.*?-->", "", text, flags=re.S))]
    return [ROOT / p for p in dict.fromkeys(names) if (ROOT / p).is_file() and not p.endswith(".py")]  # code is no result


def prose(text: str) -> str:
    """``text`` without comments and code."""
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    return re.sub(r"`[^`\n]*`", "", text)


def published(text: str) -> list[str]:
    """The result tokens of a paragraph: decimals, percentages, and integers of result sentences."""
    out = []
    for sentence in re.split(r"(?<=[.;:])\s+(?=[A-Z(*])|\n(?=[-*|] )", prose(text)):
        numbers = DECIMAL.findall(sentence) + PERCENT.findall(sentence)
        if numbers:  # integers naming a seed, trial or epoch are labels, not results
            out += numbers + [m.group(0) for m in INTEGER.finditer(sentence)
                              if not re.search(r"(?:seed|trial|epoch|top)s? $", sentence[:m.start()])]
    return list(dict.fromkeys(out))


def paragraphs(doc_text: str):
    """(paragraph, the files it cites, whether its section is marked unsourced) in document order."""
    doc_files = [f for m in re.finditer(r"<!-- cites: (.*?) -->", doc_text, re.S) for f in named_files(m.group(0))]
    text = RESULT_BLOCK.sub(lambda m: f"<!-- cites: {m.group(1)} -->", doc_text)  # blocks: checked whole
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    for section in re.split(r"(?m)^(?=#{1,6} )", text):
        section_files, unsourced = named_files(section), bool(UNSOURCED.search(section))
        for para in re.split(r"\n\s*\n", section):
            yield para, named_files(para) or section_files or doc_files, unsourced


@lru_cache(maxsize=None)
def source_tokens(path: Path) -> frozenset:
    return frozenset(m.group(0).lstrip("+-").rstrip("%") for m in SOURCE_NUMBER.finditer(
        path.read_text(encoding="utf-8", errors="replace")))


def found(token: str, files: list[Path]) -> bool:
    """Whether ``token`` is a whole token of one of ``files``, or the rounding of a more precise one there."""
    want = Decimal(token.lstrip("+-").rstrip("%"))
    places = want.as_tuple().exponent
    for f in files:
        for s in source_tokens(f):
            try:
                v = Decimal(s)
            except InvalidOperation:
                continue
            if v.as_tuple().exponent > places:
                continue  # a less precise source cannot show these digits
            step = Decimal(1).scaleb(places)
            if v.quantize(step, ROUND_HALF_UP) == want or v.quantize(step, ROUND_HALF_EVEN) == want:
                return True
    return False


def missing_numbers(doc: Path) -> list[str]:
    """Numbers of paragraphs that cite files, not found in them."""
    out = []
    for para, files, _ in paragraphs(doc.read_text(encoding="utf-8")):
        out += [f"{n} (cited: {[str(f.relative_to(ROOT)) for f in files]}): {para.strip()[:80]!r}"
                for n in published(para) if files and not found(n, files)]
    return out


def uncited_numbers(doc: Path) -> list[str]:
    """Numbers of paragraphs that cite no file at all (nor does their section or document)."""
    return [n for para, files, _ in paragraphs(doc.read_text(encoding="utf-8")) if not files for n in published(para)]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_published_number_is_a_token_of_the_file_its_paragraph_cites(doc):
    text = doc.read_text(encoding="utf-8")
    missing_files = [p for m in re.finditer(r"<!-- (?:cites|results): (.*?) -->", text, re.S)
                     for p in m.group(1).split() if not (ROOT / p).exists()]
    assert not missing_files, f"{doc.name} cites files that are not committed: {missing_files}"
    missing = missing_numbers(doc)
    assert len(missing) <= NOT_FOUND.get(str(doc.relative_to(ROOT)), 0), (
        f"{doc.relative_to(ROOT)}: numbers not found in the files their paragraph cites:\n" + "\n".join(missing))


# numbers in paragraphs that cite no committed file: measurements typed from runs whose output was not kept.
# They cannot be checked; the count may only shrink (cite the result file, or remove the number).
UNCITED = {"benchmarks/README.md": 507}
# numbers of citing paragraphs not in their files: derived ones (ratios, differences) and settings; may only
# shrink, and a changed checked number raises the count, so it still fails
NOT_FOUND = {"benchmarks/README.md": 31}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_numbers_that_cite_nothing_do_not_grow(doc):
    uncited = uncited_numbers(doc)
    assert len(uncited) <= UNCITED.get(str(doc.relative_to(ROOT)), 0), (
        f"{doc.relative_to(ROOT)}: {len(uncited)} numbers in paragraphs citing no committed file: {uncited[:20]}")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_changed_last_digit_is_caught(doc):
    """Each checked number with its last digit changed is not found, unless the cited file really holds that
    other number too (another cell of the same table)."""
    caught = collided = 0
    for para, files, unsourced in paragraphs(doc.read_text(encoding="utf-8")):
        for n in [] if unsourced else published(para):
            changed = n[:-2] + str((int(n[-2]) + 1) % 10) + "%" if n.endswith("%") else n[:-1] + str((int(n[-1]) + 1) % 10)
            if found(changed, files):
                collided += 1  # both values are in the cited file: a change to the other one is still a real number
            else:
                caught += 1
    # a page without checked numbers (a guide page of settings and commands) has nothing to catch
    assert caught > collided or caught == collided == 0, \
        f"{doc.name}: {caught} changes caught, {collided} collide with other cited numbers"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_generated_blocks_are_the_files_they_name(doc):
    text = doc.read_text(encoding="utf-8")
    for m in re.finditer(r"<!-- results: (\S+) -->\n(.*?)<!-- /results -->", text, re.S):
        source = relink((ROOT / m.group(1)).read_text(encoding="utf-8").strip(), ROOT / m.group(1), doc)
        assert m.group(2).strip() == source, (
            f"{doc.name}: the block of {m.group(1)} was edited by hand; regenerate it with morec report --fill")


def test_the_check_is_token_exact_with_rounding(tmp_path):
    cited = tmp_path / "t.md"
    cited.write_text("| IDRec | 15.59 | 0.07298 | 943 users | +15.32% |")
    files = [cited]
    assert found("15.59", files) and found("0.0730", files) and found("15.3%", files) and found("943", files)
    assert not found("15.5", files)  # a truncation is not a rounding of 15.59
    assert not found("15.58", files) and not found("1.59", files) and not found("94", files)
    assert not found("0.07299", files)  # more digits than the source has
    text = f"<!-- cites: {cited} -->\nIDRec reaches 15.59 on 943 users, MoRec 18.88 (`pip install torch==2.14.1`), morec 1.2.1."
    assert published(text) == ["15.59", "18.88", "943"]
