"""Every number published in README.md and docs/results/**/README.md comes from the committed files the
document cites, and every generated block is exactly the file it names.

A document cites files with ``<!-- results: PATH -->`` blocks (filled by ``morec report --fill``) and
``<!-- cites: PATH PATH ... -->`` comments. Numbers with a decimal point outside code (tables, prose) must
appear verbatim in one of the cited files; version strings (1.2.1) and code are not results."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs" / "results").rglob("README.md")), *sorted((ROOT / "docs" / "guide").glob("*.md"))]
NUMBER = re.compile(r"(?<![\w.])\d+\.\d+(?![\w.]*\d)")


def cited_files(text: str) -> list[Path]:
    paths = [m.group(1) for m in re.finditer(r"<!-- results: (\S+) -->", text)]
    for m in re.finditer(r"<!-- cites: (.*?) -->", text, re.S):
        paths += m.group(1).split()
    return [ROOT / p for p in paths]


def published_numbers(text: str) -> list[str]:
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    return NUMBER.findall(text)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_published_number_is_in_the_files_the_document_cites(doc):
    text = doc.read_text(encoding="utf-8")
    files = cited_files(text)
    missing_files = [str(f.relative_to(ROOT)) for f in files if not f.exists()]
    assert not missing_files, f"{doc.name} cites files that are not committed: {missing_files}"
    sources = "\n".join(f.read_text(encoding="utf-8") for f in files)
    missing = sorted({n for n in published_numbers(text) if n not in sources})
    assert not missing, (f"{doc.relative_to(ROOT)}: numbers not found in the files it cites "
                         f"({[str(f.relative_to(ROOT)) for f in files]}): {missing}")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_generated_blocks_are_the_files_they_name(doc):
    text = doc.read_text(encoding="utf-8")
    for m in re.finditer(r"<!-- results: (\S+) -->\n(.*?)<!-- /results -->", text, re.S):
        assert m.group(2).strip() == (ROOT / m.group(1)).read_text(encoding="utf-8").strip(), (
            f"{doc.name}: the block of {m.group(1)} was edited by hand; regenerate it with morec report --fill")


def test_the_check_catches_a_number_that_is_not_cited(tmp_path):
    cited = tmp_path / "t.md"
    cited.write_text("| IDRec | 15.59 |")
    text = f"<!-- cites: {cited} -->\nIDRec reaches 15.59, MoRec 18.88 (`pip install torch==2.14.1`), morec 1.2.1."
    numbers = published_numbers(text)
    assert numbers == ["15.59", "18.88"]
    assert [n for n in numbers if n not in cited.read_text()] == ["18.88"]
