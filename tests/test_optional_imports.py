"""Every import of an optional package (an extra of the package) is guarded: a missing one is a one-line
`pip install 'morec[extra]'` error, never a raw ModuleNotFoundError."""
import ast
import sys
from pathlib import Path

import pytest

from morec.extras import EXTRAS, MissingExtra, need

ROOT = Path(__file__).resolve().parents[1] / "morec"


def _optional(node) -> str | None:
    names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
    if isinstance(node, ast.ImportFrom) and node.module == "torch.utils.tensorboard":
        return "tensorboard"
    return next((n.split(".")[0] for n in names if n.split(".")[0] in EXTRAS), None)


def _tried(node) -> list:
    """The imports inside ``node``'s try blocks that catch ImportError."""
    return [n for t in ast.walk(node) if isinstance(t, ast.Try)
            and any("ImportError" in ast.unparse(h.type or ast.Name("")) for h in t.handlers)
            for n in ast.walk(t) if isinstance(n, (ast.Import, ast.ImportFrom))]


def _guards(tree) -> dict[str, set[str]]:
    """Function name -> the optional packages it imports inside try / except ImportError."""
    return {fn.name: {p for n in _tried(fn) if (p := _optional(n))} for fn in ast.walk(tree)
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))}


def _unguarded(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    guards, tried = _guards(tree), {id(n) for n in _tried(tree)}
    bad = []
    for fn in [tree, *[f for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))]]:
        guarded: set[str] = set(guards.get(getattr(fn, "name", ""), ()))
        body = fn.body if fn is not tree else [s for s in tree.body if not isinstance(s, (ast.FunctionDef, ast.ClassDef))]
        for stmt in body:
            for node in ast.walk(stmt):
                if isinstance(node, ast.Call):
                    name = ast.unparse(node.func).split(".")[-1]
                    guarded |= guards.get(name, set())
                    if name == "need" and node.args and isinstance(node.args[0], ast.Constant):
                        guarded.add(node.args[0].value.split(".")[0])
                if isinstance(node, (ast.Import, ast.ImportFrom)) and (pkg := _optional(node)) and pkg not in guarded \
                        and id(node) not in tried:
                    bad.append(f"{path.relative_to(ROOT.parent)}:{node.lineno} imports {pkg}")
    return bad


def test_every_optional_import_is_guarded():
    bad = sorted({b for path in ROOT.rglob("*.py") for b in _unguarded(path)})
    assert not bad, "optional imports without a `pip install 'morec[extra]'` error: " + "; ".join(bad)


def test_need_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(MissingExtra, match=r"^morec tune needs optuna: pip install 'morec\[tune\]'$"):
        need("optuna", "morec tune")


def test_tune_without_optuna_is_one_line(tmp_path, monkeypatch, capsys):
    from morec.cli import main

    monkeypatch.setitem(sys.modules, "optuna", None)
    monkeypatch.setitem(sys.modules, "optuna.trial", None)
    spec = tmp_path / "tune.yaml"
    spec.write_text("base: {data: nowhere}\nspace: {train.lr: {log_uniform: [1.0e-4, 1.0e-2]}}\ntrials: 1\n"
                    f"out: {tmp_path / 'tune'}\n")
    assert main(["tune", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "pip install 'morec[tune]'" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_tune_example_is_a_commented_tune_file_that_parses(tmp_path, capsys):
    import yaml

    from morec.cli import main
    from morec.tune import parse_tune

    assert main(["tune", "--example"]) == 0
    text = capsys.readouterr().out
    assert text.count("#") >= 10 and "space:" in text and "log_uniform" in text
    spec = parse_tune(yaml.safe_load(text))
    assert spec.trials == 20 and "train.lr" in spec.space and spec.seeds == [1, 2, 3]
    assert main(["tune"]) == 2 and "--example" in capsys.readouterr().err
