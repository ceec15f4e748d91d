"""Dependencies point one way (config <- data <- encoders/backbones <- model <- losses/evaluate <- runs/train <-
sweep/report/serve <- api <- cli): read from the source with ast, so a new import that breaks the rule fails here."""
import ast
from pathlib import Path

import morec

ROOT = Path(morec.__file__).parent


def module_name(path: Path) -> str:
    parts = ("morec",) + path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


def imports(name: str) -> tuple[set[str], set[str]]:
    """(morec modules imported at module level, morec modules imported inside functions or classes) by ``name``."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    top_level = {id(n) for n in tree.body}
    top_level |= {id(n) for s in tree.body if isinstance(s, (ast.If, ast.Try)) for n in ast.walk(s)}
    top, inner = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # `from . import cost` names a module; `from .x import y` names x (or x.y when that is a module)
            found = [f"{source}.{a.name}" if f"{source}.{a.name}" in MODULES else source for a in node.names]
        else:
            continue
        for target in found:
            while target and target not in MODULES and "." in target:
                target = target.rpartition(".")[0]
            if target in MODULES and target != name and target != "morec":
                (top if id(node) in top_level else inner).add(target)
    return top, inner


GRAPH = {name: imports(name) for name in MODULES}


def in_package(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def test_the_reader_sees_known_imports():
    # a check on the checker: these edges exist, so a reader that found nothing would fail here, not pass everything
    assert "morec.data.batches" in GRAPH["morec.model"][0]
    assert "morec.runs" in GRAPH["morec.recommend"][0]
    assert "morec.model" in GRAPH["morec.runs"][0]


def test_data_imports_nothing_from_the_model_side():
    upper = ("morec.model", "morec.encoders", "morec.backbones", "morec.losses", "morec.evaluate", "morec.train",
             "morec.runs", "morec.distributed", "morec.catalog", "morec.recommend", "morec.serve", "morec.api",
             "morec.cli", "morec.report", "morec.sweep", "morec.tune")
    bad = {(m, t) for m in GRAPH if in_package(m, "morec.data") for t in set().union(*GRAPH[m]) if in_package(t, *upper)}
    assert not bad, f"data/ must not import from the model side: {sorted(bad)}"


def test_serving_and_pretraining_import_nothing_from_training():
    users = ("morec.recommend", "morec.serve", "morec.catalog", "morec.pretraining", "morec.pretrain_text",
             "morec.pretrain_vision", "morec.runs", "morec.model", "morec.evaluate")
    bad = {(m, t) for m in users for t in set().union(*GRAPH[m]) if t in ("morec.train", "morec.sweep", "morec.tune")}
    assert not bad, f"serving and pre-training load runs through morec.runs, never the training loop: {sorted(bad)}"


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycles_even_through_function_local_imports():
    # a package's __init__ importing its own submodules is how a registry works; any other cycle is a layering bug
    edges = {m: {t for t in top | inner if not (m == t.rpartition(".")[0] and MODULES[m].name == "__init__.py")}
             for m, (top, inner) in GRAPH.items()}
    assert find_cycle(edges) is None, f"import cycle: {' -> '.join(find_cycle(edges))}"


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
