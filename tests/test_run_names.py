"""Short run names and arm labels: a sweep names its runs by what tells them apart (unique, deterministic,
directory-safe, seed last), a sweep directory with the old long names resumes under them, both namings group by
seed, and tables name arms by labels linked to a runs index (runs.md) that maps each to its directories."""
import json
import re
from pathlib import Path

import pytest

from morec.config import to_dict
from morec.report import find_runs, group_seeds, load_arm, write_report
from morec.report.names import short_names
from morec.sequential import seed_dir
from morec.sweep import SweepError, SweepRun, expand, parse_sweep, run_name, run_sweep, summary_markdown

RUNS = Path(__file__).parent / "fixtures" / "runs"
SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+-]*")

GRID = {"model.encoder.kind,model.encoder.mode,model.encoder.mlp_layers,model.encoder.fusion":
        [["id", "e2e", 0, "none"], ["text", "frozen", 0, "none"], ["text", "frozen", 2, "none"],
         ["text", "frozen", 0, "add"]],
        "model.backbone,train.batch_size,train.weight_decay": [["sasrec", 128, 0.1], ["dssm", 1024, 0.01]]}


def sweep(out, seeds=(1, 2), grid=None):
    return parse_sweep({"base": {"data": "data/prepared/toy", "model": {"dim": 16, "encoder": {"pretrained": "minilm"}},
                                 "train": {"epochs": 2}},
                        "grid": grid or GRID, "seeds": list(seeds), "out": str(out)})


def test_a_sweep_names_runs_by_what_tells_them_apart(tmp_path):
    runs = expand(sweep(tmp_path / "sw"))
    names = [r.name for r in runs]
    assert names[:8] == ["sasrec-id-s1", "dssm-id-s1", "sasrec-minilm-frozen-s1", "dssm-minilm-frozen-s1",
                         "sasrec-minilm-frozen-mlp2-s1", "dssm-minilm-frozen-mlp2-s1", "sasrec-minilm-frozen-add-s1",
                         "dssm-minilm-frozen-add-s1"]
    assert names[8:] == [n[:-1] + "2" for n in names[:8]]  # seed last, seed-major order
    assert len(set(names)) == len(names) and all(SAFE.fullmatch(n) and len(n) <= 100 for n in names)
    assert all(r.name == f"{r.config_name}-s{r.config.train.seed}" for r in runs)
    assert names == [r.name for r in expand(sweep(tmp_path / "sw"))]  # deterministic
    # the batch size and weight decay go with the backbone, so the names leave them out; the configs keep them
    assert runs[1].config.train.batch_size == 1024 and Path(runs[1].config.out) == tmp_path / "sw" / "dssm-id-s1"


def test_swept_settings_appear_only_where_they_differ_from_the_base_and_clashes_get_a_hash():
    base = {"train": {"lr": 1e-3}}
    combos = [{"train.lr": 1e-3, "model.encoder.lr": 1e-4}, {"train.lr": 1e-4, "model.encoder.lr": 1e-4},
              {"train.lr": 1e-3, "model.encoder.lr": 5e-5}]
    assert short_names(base, combos) == ["sasrec-id", "sasrec-id-trainlr0.0001", "sasrec-id-encoderlr5e-05"]
    clash = [{"model.encoder.kind": "text", "model.encoder.pretrained": p} for p in ("/a/minilm", "/b/minilm")]
    names = short_names({}, clash)
    assert names[0] != names[1] and all(n.startswith("sasrec-minilm-e2e-") for n in names)
    assert names == short_names({}, clash) and all(SAFE.fullmatch(n) for n in names)


def finish(run, resume, log):
    """A fake training: results.json as training writes it, with the run's config."""
    run.dir.mkdir(parents=True, exist_ok=True)
    metrics = {"hr@10": 0.1 + 0.01 * run.config.train.seed, "ndcg@10": 0.05}
    results = {"valid": metrics, "test": metrics, "best_epoch": 1, "stop_reason": "patience",
               "config": to_dict(run.config)}
    (run.dir / "results.json").write_text(json.dumps(results))
    return results


def test_a_sweep_with_old_long_names_resumes_under_them(tmp_path):
    out = tmp_path / "old"
    for run in expand(sweep(out, seeds=[1])):  # seed 1 laid out as an earlier version named its runs
        old = run_name({k: v for k, v in run.overrides.items() if k != "train.seed"}) + "_seed-1"
        run.config.out = str(out / old)
        finish(SweepRun(old, run.overrides, run.config), False, None)
    assert (out / "encoder.kind-id_encoder.mode-e2e_encoder.mlp_layers-0_encoder.fusion-none_backbone-dssm_"
                  "batch_size-1024_weight_decay-0.01_seed-1" / "results.json").exists()

    trained = []
    summary = run_sweep(sweep(out, seeds=[1, 2]), lambda s: None,
                        runner=lambda run, resume, log: trained.append(run.name) or finish(run, resume, log))
    # seed 1 of every configuration was finished before: skipped, nothing retrained; seed 2 joins the old naming
    assert sorted(trained) == sorted(r["name"] for r in summary["runs"] if r["seed"] == 2)
    assert all(r["how"] == "skipped" for r in summary["runs"] if r["seed"] == 1)
    assert all(n.endswith("_seed-2") and n.startswith("encoder.kind-") for n in trained) and len(trained) == 8
    groups = group_seeds(find_runs([out]))
    assert len(groups) == 8 and all(g.seeds == 2 for g in groups)
    assert {g.dir.name.rsplit("_seed-", 1)[1] for g in groups} == {"{1,2}"}


def test_both_namings_group_by_seed_and_load_as_arms(tmp_path):
    for name in ("sasrec-id-s1", "sasrec-id-s2", "sasrec-id-mlp2-s1", "kind-id_seed-1", "kind-id_seed-2"):
        run = tmp_path / "sw" / name
        run.mkdir(parents=True)
        config = {"data": "d", "out": str(run), "train": {"seed": int(name[-1]), "lr": 0.001 if "mlp" not in name else 0.01},
                  "model": {"dim": 8 if name.startswith("kind") else 16}}
        metrics = {"hr@10": 0.1 * int(name[-1]), "ndcg@10": 0.05}
        (run / "results.json").write_text(json.dumps({"valid": metrics, "test": metrics, "config": config}))
    arm = load_arm(tmp_path / "sw" / "sasrec-id")  # the configuration's name without its -sN
    assert [r.dir.name for r in arm.runs] == ["sasrec-id-s1", "sasrec-id-s2"] and arm.dir.name == "sasrec-id-s{1,2}"
    assert [r.dir.name for r in load_arm(tmp_path / "sw" / "kind-id").runs] == ["kind-id_seed-1", "kind-id_seed-2"]
    assert seed_dir(tmp_path / "sw" / "sasrec-id-s2", 3) == tmp_path / "sw" / "sasrec-id-s3"
    assert seed_dir(tmp_path / "sw" / "kind-id_seed-2", 3) == tmp_path / "sw" / "kind-id_seed-3"


def runs_index_rows(path: Path) -> dict[str, str]:
    """runs.md as {anchor: runs cell}."""
    rows = {}
    for line in path.read_text().splitlines():
        m = re.match(r'\| <a id="([^"]+)"></a>[^|]*\|[^|]*\| `([^`]*)`', line)
        if m:
            rows[m.group(1)] = m.group(2)
    return rows


def expand_braces(text: str) -> list[str]:
    m = re.fullmatch(r"(.*)\{([^}]*)\}", text)
    return [m.group(1) + x for x in m.group(2).split(",")] if m else text.split(", ")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    write_report([RUNS], out)
    return out


def test_report_tables_name_arms_by_label_linked_to_the_runs_index(report):
    index = runs_index_rows(report / "runs.md")
    assert index
    for anchor, cell in index.items():  # every arm maps to directories that exist
        assert all((report / d).is_dir() and (report / d / "results.json").exists() for d in expand_braces(cell)), anchor
    for table in report.glob("table*.md"):
        text = table.read_text()
        header = text.splitlines()[2]
        assert "| arm" in header and "| run " not in header, table.name
        assert str(RUNS) not in text and "sasrec-id-lr1e-3" not in text, table.name  # no directory names
        links = re.findall(r"\]\(runs\.md#([^)]+)\)", text)
        assert links and set(links) <= set(index), table.name
    assert "[SASRec · ID" in (report / "table2_idrec_vs_morec.md").read_text()
    csv = (report / "table2_idrec_vs_morec.csv").read_text()
    assert csv.splitlines()[0].endswith("arm,run") and "](runs.md" not in csv  # CSV: plain labels and directories


def test_sweep_summary_names_arms_and_writes_the_runs_index(tmp_path):
    spec = sweep(tmp_path / "sw", seeds=[1, 2])
    summary = run_sweep(spec, lambda s: None, runner=finish)
    md = (tmp_path / "sw" / "sweep.md").read_text()
    assert md == summary_markdown(summary) and "[SASRec · MiniLM frozen · MLP 2](runs.md#" in md
    assert "sasrec-minilm-frozen-mlp2-s1" not in md and "| run " not in md
    index = runs_index_rows(tmp_path / "sw" / "runs.md")
    assert len(index) == 8 and index["sasrec-minilm-frozen-mlp-2"] == "sasrec-minilm-frozen-mlp2-s{1,2}"
    with pytest.raises(SweepError, match="share the directory"):
        expand(parse_sweep({"base": {"data": "d"}, "grid": {"train.lr": [0.1, 0.1]}, "out": str(tmp_path / "x")}))
