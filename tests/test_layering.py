"""The order of the house, read from the source with ast, so that a new import that breaks it fails here.

Layers, lowest first; a module imports only from its own layer or a lower one:

    foundation   config, digest, tempfiles, checkpoint, runlog, cost, layers, ranks, yamlfile, runlock, extras,
                 progress, config_help, recipes
    data         morec.data (formats, preparation, batches, content stores)
    parts        encoders/, backbones/, losses      (peers: none imports another part)
    model        model
    evaluation   evaluate, runs, stats, verdict
    uses         train (with optim, selection, run_outputs), distributed, catalog, recommend, serve, pretraining,
                 pretrain_text, pretrain_vision, run_pool (training runs as `morec train` processes)
                 (serving, the catalogue and pre-training never import the training loop)
    experiments  sweep, tune, tune_processes, report, study, sequential, compare
    front        api, cli (with cli_data, cli_serving), __main__

and no import cycle, even through function-local imports. Each rule has a test on the real graph and a test that
adds one wrong edge to it and must see that rule fail.
"""
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


LAYERS = [
    ("foundation", ("morec.config", "morec.digest", "morec.tempfiles", "morec.checkpoint", "morec.runlog", "morec.cost",
                    "morec.yamlfile", "morec.runlock", "morec.extras", "morec.progress", "morec.config_help",
                    "morec.layers", "morec.ranks", "morec.recipes")),
    ("data", ("morec.data",)),
    ("parts", ("morec.encoders", "morec.backbones", "morec.losses")),
    ("model", ("morec.model",)),
    ("evaluation", ("morec.evaluate", "morec.runs", "morec.stats", "morec.verdict")),
    ("uses", ("morec.train", "morec.optim", "morec.selection", "morec.run_outputs", "morec.distributed",
              "morec.catalog", "morec.recommend", "morec.serve",
              "morec.pretraining", "morec.pretrain_text", "morec.pretrain_vision", "morec.run_pool")),
    ("experiments", ("morec.sweep", "morec.tune", "morec.tune_processes", "morec.report", "morec.study",
                     "morec.sequential", "morec.compare")),
    ("front", ("morec.api", "morec.cli", "morec.cli_data", "morec.cli_serving", "morec.__main__")),
]
PARTS = ("morec.encoders", "morec.backbones", "morec.losses")
TRAINING = ("morec.train", "morec.optim", "morec.selection", "morec.run_outputs", "morec.sweep", "morec.tune")
NEVER_TRAINING = ("morec.catalog", "morec.recommend", "morec.serve", "morec.pretraining", "morec.pretrain_text",
                  "morec.pretrain_vision", "morec.runs", "morec.model", "morec.evaluate")


def in_package(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def package_of(module: str, packages: tuple[str, ...]) -> str | None:
    return next((p for p in packages if in_package(module, p)), None)


def layer_of(module: str) -> int:
    for rank, (_, members) in enumerate(LAYERS):
        if package_of(module, members):
            return rank
    raise AssertionError(f"{module} has no layer: add it to LAYERS in {__file__}")


def edges_of(graph) -> set[tuple[str, str]]:
    return {(m, t) for m, (top, inner) in graph.items() for t in top | inner if m != "morec"}


def upward_imports(graph) -> list[str]:
    return sorted(f"{m} ({LAYERS[layer_of(m)][0]}) imports {t} ({LAYERS[layer_of(t)][0]})"
                  for m, t in edges_of(graph) if layer_of(t) > layer_of(m))


def imports_between_parts(graph) -> list[str]:
    return sorted(f"{m} imports {t}" for m, t in edges_of(graph)
                  if package_of(m, PARTS) and package_of(t, PARTS) and package_of(m, PARTS) != package_of(t, PARTS))


def training_imported_by_serving(graph) -> list[str]:
    return sorted(f"{m} imports {t}" for m, t in edges_of(graph)
                  if package_of(m, NEVER_TRAINING) and package_of(t, TRAINING))


def with_edge(graph, source: str, target: str):
    """The graph with one more (module-level) import: a deliberate wrong edge for the negative fixtures."""
    return {**graph, source: (graph[source][0] | {target}, graph[source][1])}


def test_the_reader_sees_known_imports():
    # a check on the checker: these edges exist, so a reader that found nothing would fail here, not pass everything
    assert "morec.data.batches" in GRAPH["morec.model"][0]
    assert "morec.runs" in GRAPH["morec.recommend"][0]
    assert "morec.model" in GRAPH["morec.runs"][0]


def test_every_module_has_a_layer():
    for module in MODULES.keys() - {"morec"}:  # the package itself holds only its version
        layer_of(module)


def test_imports_point_down_the_layers():
    assert not upward_imports(GRAPH), "an import points up the house:\n" + "\n".join(upward_imports(GRAPH))


def test_layer_rule_fails_on_a_wrong_import():
    for source, target in [("morec.evaluate", "morec.report"), ("morec.data.prepare", "morec.model"),
                           ("morec.config", "morec.data"), ("morec.train", "morec.cli")]:
        assert any(f"{source} " in v and f"imports {target} " in v for v in upward_imports(with_edge(GRAPH, source, target)))


def test_encoders_backbones_and_losses_import_none_of_each_other():
    assert not imports_between_parts(GRAPH), imports_between_parts(GRAPH)


def test_parts_rule_fails_on_an_encoder_importing_a_backbone():
    bad = imports_between_parts(with_edge(GRAPH, "morec.encoders.text", "morec.backbones.sasrec"))
    assert bad == ["morec.encoders.text imports morec.backbones.sasrec"]


def test_serving_and_pretraining_import_nothing_from_training():
    bad = training_imported_by_serving(GRAPH)
    assert not bad, f"serving and pre-training load runs through morec.runs, never the training loop: {bad}"


def test_serving_rule_fails_on_the_server_importing_the_trainer():
    # serve and train share a layer, so only this rule stands between them
    assert training_imported_by_serving(with_edge(GRAPH, "morec.serve", "morec.train")) == ["morec.serve imports morec.train"]
    assert not [v for v in upward_imports(with_edge(GRAPH, "morec.serve", "morec.train")) if v.startswith("morec.serve ")]


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


def test_cycle_rule_fails_on_a_graph_with_one_added_back_edge():
    edges = {m: set(top | inner) for m, (top, inner) in with_edge(GRAPH, "morec.config", "morec.runs").items()}
    assert find_cycle(edges) is not None
