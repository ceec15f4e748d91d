"""tools/mutation.py's bookkeeping: the per-group mutmut table, the mutant-name patterns and the score that
leaves equivalent mutants out (the mutation runs themselves take minutes and are not part of CI)."""
import sys
import tomllib
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))  # the tools run as scripts from there
import broken_variants  # noqa: E402
import mutation  # noqa: E402


def test_score_leaves_out_equivalent_mutants_and_lists_the_live_ones():
    statuses = {"m.x_f__mutmut_1": "killed", "m.x_f__mutmut_2": "survived", "m.x_f__mutmut_3": "survived",
                "m.x_f__mutmut_4": "timeout", "m.x_g__mutmut_1": "no tests"}
    lines, score = mutation.summary("g", statuses, {"m.x_f__mutmut_3": "same value"})
    assert score == 2 / 4
    assert lines[0] == "g: 5 mutants, 1 equivalent, 2 of 4 non-equivalent killed = 50.0%"
    assert lines[1:] == ["  alive: m.x_f__mutmut_2 (survived)", "  alive: m.x_g__mutmut_1 (no tests)"]


def test_equivalent_file_lines_and_group_tables(tmp_path):
    f = tmp_path / "eq.txt"
    f.write_text("# comment\n\na.x_f__mutmut_1  # block size only\n", encoding="utf-8")
    assert mutation.read_equivalent(f) == {"a.x_f__mutmut_1": "block size only"}
    group = mutation.GROUPS["catalog"]
    table = tomllib.loads(mutation.mutmut_table(group))["tool"]["mutmut"]
    assert table["only_mutate"] == ["morec/catalog.py"] and table["pytest_add_cli_args_test_selection"] == list(group.tests)
    assert mutation.mutant_patterns(group)[0] == "morec.catalog.x_catalog_signature__mutmut_*"
    assert mutation.mutant_patterns(mutation.GROUPS["ranking"]) == ["morec.evaluate.*", "morec.ranks.*"]
    for name, g in mutation.GROUPS.items():  # every listed test file exists
        assert all((Path(mutation.ROOT) / t.split("::")[0]).exists() for t in g.tests), name


def test_every_broken_variant_still_applies_to_the_code_and_names_real_tests():
    """tools/broken_variants.py edits the code by exact text: each edit must match once, so that a refactor
    makes the tool fail loudly instead of checking an unbroken copy; and each test it expects to fail exists."""
    root = Path(broken_variants.ROOT)
    for name, variant in broken_variants.VARIANTS.items():
        for file, text, new in variant.edits:
            assert (root / file).read_text(encoding="utf-8").count(text) == 1 and new != text, (name, file)
        for test in variant.tests:
            path, func = test.split("::")
            assert f"def {func.split('[')[0]}(" in (root / path).read_text(encoding="utf-8"), (name, test)


def test_a_stale_broken_variant_is_refused_in_one_line(tmp_path):
    (tmp_path / "m.py").write_text("x = 1\nx = 1\n", encoding="utf-8")
    with pytest.raises(SystemExit) as stop:
        broken_variants.apply(tmp_path, [("m.py", "x = 1", "x = 2")])
    assert str(stop.value) == "broken_variants: m.py holds 2 copies of 'x = 1', not 1: update the variant to the code"
    assert (tmp_path / "m.py").read_text(encoding="utf-8") == "x = 1\nx = 1\n"
