"""Reports: the paper's tables from hand-made run directories with known numbers (tests/fixtures/runs,
written by make_runs.py), only the tables whose runs exist, and the figures as valid PNGs."""
import csv
import json
import shutil
from pathlib import Path

import pytest

from morec import cli
from morec.report import build_tables, find_runs, write_report

RUNS = Path(__file__).parent / "fixtures" / "runs"
PNG = b"\x89PNG\r\n\x1a\n"


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def run_names(rows, column="run") -> list[str]:
    return [Path(part.split(": ")[-1]).name for r in rows for part in r[column].replace(" vs ", "; ").split("; ")]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    written = write_report([RUNS], out)
    return out, written


def test_all_tables_from_known_runs(report):
    out, written = report
    names = {p.name for p in written}
    for stem in ("table2_idrec_vs_morec", "table3_warm", "table4_pretrained_vs_scratch", "table5_ts_vs_e2e",
                 "table6_cost", "table7_fusion", "table9_cold_new"):
        assert f"{stem}.md" in names and f"{stem}.csv" in names
    # the collapsed run has the best validation score of all, yet appears in no table
    for p in out.glob("table*.csv"):
        assert "sasrec-text-e2e-collapsed" not in run_names(read_csv(p)), p.name
    assert "sasrec-text-e2e-collapsed" in (out / "report.md").read_text()  # listed as collapsed


def test_table2_improv_and_validation_choice(report):
    out, _ = report
    rows = read_csv(out / "table2_idrec_vs_morec.csv")
    cells = {(r["backbone"], r["item encoder"], r["training"]): r for r in rows}
    assert [(r["backbone"], r["item encoder"], r["training"]) for r in rows[:5]] == [
        ("dssm", "IDRec", "ID"), ("dssm", "bert-base", "E2E"), ("sasrec", "IDRec", "ID"),
        ("sasrec", "bert-base", "E2E top-2"), ("sasrec", "bert-base", "E2E")]  # two-stage runs are Table 5's
    # IDRec SASRec: lr 1e-3 (valid 5.0%) is chosen over lr 1e-4 (better test 15%, worse valid 4.0%)
    assert Path(cells[("sasrec", "IDRec", "ID")]["run"]).name == "sasrec-id-lr1e-3"
    assert float(cells[("sasrec", "IDRec", "ID")]["HR@10"]) == pytest.approx(10.0)
    assert Path(cells[("sasrec", "bert-base", "E2E")]["run"]).name == "sasrec-text-e2e"
    assert Path(cells[("sasrec", "bert-base", "E2E top-2")]["run"]).name == "sasrec-text-top2"
    improv = rows[-1]
    assert improv["item encoder"] == "Improv. (bert-base E2E vs IDRec)"  # E2E: better valid than top-2
    assert improv["HR@10"] == "+20.00%" and improv["NDCG@10"] == "+10.00%"  # 12 vs 10, 5.5 vs 5.0
    assert run_names([improv]) == ["sasrec-text-e2e", "sasrec-id-lr1e-3"]
    assert all(r["run"] for r in rows)  # every row names its run directory
    md = (out / "table2_idrec_vs_morec.md").read_text()
    assert "| 12.00 " in md and "+20.00%" in md and "15.00" not in md


def test_tables_3_to_9(report):
    out, _ = report
    t3 = read_csv(out / "table3_warm.csv")
    warm = [(r["item encoder"], r["training"], r["HR@10"]) for r in t3 if r["setting"] == "Warm-20"]
    assert warm == [("IDRec", "ID", "20.0"), ("bert-base", "TS", "18.0"), ("bert-base", "E2E", "22.0")]

    t4 = read_csv(out / "table4_pretrained_vs_scratch.csv")
    assert [(r["users"], r["TFS HR@10"], r["PE HR@10"], r["Improv."]) for r in t4] == [
        ("Base", "9.6", "12.0", "+25.00%"), ("50,000", "8.0", "6.0", "-25.00%")]

    t5 = read_csv(out / "table5_ts_vs_e2e.csv")
    assert [(r["training"], r["HR@10"]) for r in t5 if r["training"]] == [("ID", "10.0"), ("TS", "8.0"), ("TS-DNN 2", "9.0"),
                                                                          ("E2E top-2", "11.5"), ("E2E", "12.0")]
    (improv,) = [r for r in t5 if not r["training"]]  # the fixtures keep no per-user ranks: no interval, said so
    assert improv["HR@10"] == "+20.00%" and improv["notes"].startswith("no CI: ") and "ranks.npz" in improv["notes"]

    t6 = read_csv(out / "table6_cost.csv")
    ids = [r for r in t6 if r["item encoder"] == "IDRec" and r["setting"] == "Regular"]
    assert ids[0]["#Param."] == "1.00K" and ids[0]["FLOPs/item"] == "0" and ids[0]["Time/E"] == "1.50s"
    assert ids[0]["peak memory"] == "3.00 MiB (CPU RSS, whole process)"  # fixtures: ru_maxrss
    assert not any(r["backbone"] == "dssm" for r in t6)  # the DSSM runs recorded no cost

    t7 = read_csv(out / "table7_fusion.csv")
    assert [r["variant"] for r in t7[:4]] == ["IDRec", "E2E", "ID+E2E ADD w/o MLP", "ID+E2E CONCAT w/o MLP"]
    assert t7[-1]["HR@10"] == "-8.33%"  # Improv.: ADD (better valid, 11%) vs pure MoRec 12%; CONCAT's 13% test is not chosen
    assert run_names([t7[-1]]) == ["sasrec-text-add", "sasrec-text-e2e"]

    t9 = read_csv(out / "table9_cold_new.csv")
    assert [(r["new items held out"], r["item encoder"], r["training"], r["negatives from"], r["cold users"],
             r["cold HR@10"], r["new users"], r["new HR@10"]) for r in t9] == [
        ("0", "IDRec", "ID", "all", "20", "1.0", "0", ""), ("0", "bert-base", "E2E", "all", "20", "5.0", "0", ""),
        ("0.1", "IDRec", "ID", "train", "10", "2.0", "15", "0.0"),
        ("0.1", "bert-base", "TS", "train", "10", "2.0", "15", "20.0")]


def test_only_tables_whose_runs_exist(tmp_path):
    written = write_report([RUNS / "sasrec-id-lr1e-3", RUNS / "sasrec-text-e2e"], tmp_path)
    tables = sorted(p.stem for p in written if p.suffix == ".csv")
    assert tables == ["table2_idrec_vs_morec", "table6_cost", "table9_cold_new"]
    only_id = build_tables(find_runs([RUNS / "dssm-id"]))
    assert [t.name for t in only_id] == []  # no MoRec, no cost, no subsets: nothing to compare


def test_figures_are_valid_pngs(report, tmp_path):
    import matplotlib.image

    out, written = report
    pngs = [p for p in written if p.suffix == ".png"]
    assert {p.name for p in pngs} >= {"figure4_accuracy_by_encoder_ml.png", "figure5_lr_curves_ml_sasrec_bert-base_E2E.png",
                                      "figure5_lr_curves_ml_sasrec_IDRec_ID.png"}
    for p in pngs:
        assert p.read_bytes()[:8] == PNG
        assert matplotlib.image.imread(p).shape[0] > 100

    # Figure 3 needs the dataset itself: a run pointing at a real prepared dataset gets one
    from morec.data.prepare import prepare
    from morec.data.synthetic import SynthConfig, generate

    data = tmp_path / "prepared"
    prepare(generate(SynthConfig(n_users=60, n_items=30, n_topics=3, seq_len_min=6, seq_len_max=8, image_size=0, seed=2)),
            data, log=lambda s: None)
    run = tmp_path / "run"
    shutil.copytree(RUNS / "sasrec-text-e2e", run)
    results = json.loads((run / "results.json").read_text())
    results["config"]["data"] = str(data)
    (run / "results.json").write_text(json.dumps(results))
    got = write_report([run], tmp_path / "rep")
    fig3 = [p for p in got if p.name.startswith("figure3_item_popularity")]
    assert len(fig3) == 1 and fig3[0].read_bytes()[:8] == PNG


def test_cli_report(tmp_path, capsys):
    assert cli.main(["report", str(RUNS), "--out", str(tmp_path / "r")]) == 0
    assert "table2_idrec_vs_morec.md" in capsys.readouterr().out
    assert (tmp_path / "r" / "report.md").exists()
    assert cli.main(["report", str(tmp_path / "nothing-here")]) == 2


def test_report_of_a_real_sweep(tmp_path):
    """A sweep directory straight into the report: real results.json / metrics.jsonl written by training."""
    from morec.data.prepare import prepare
    from morec.data.synthetic import SynthConfig, generate
    from morec.sweep import parse_sweep, run_sweep

    data = tmp_path / "prepared"
    prepare(generate(SynthConfig(n_users=80, n_items=40, n_topics=3, seq_len_min=6, seq_len_max=9, image_size=0, seed=3)),
            data, log=lambda s: None)
    spec = parse_sweep({"base": {"data": str(data), "model": {"dim": 16, "max_len": 8},
                                 "train": {"epochs": 2, "threads": 1, "progress": False, "batch_size": 64}},
                        "grid": {"model.backbone": ["sasrec", "dssm"]}, "out": str(tmp_path / "sw")})
    run_sweep(spec, lambda s: None)
    written = write_report([tmp_path / "sw"], tmp_path / "rep")
    names = {p.name for p in written}
    assert "table6_cost.csv" in names and "table2_idrec_vs_morec.csv" not in names  # IDRec only: no comparison
    cost = read_csv(tmp_path / "rep" / "table6_cost.csv")
    assert len(cost) == 2 and all(int(r["processes"]) == 1 and r["peak memory"].endswith("(CPU RSS)") for r in cost)
    assert any(n.startswith("figure3_item_popularity") for n in names)
    assert sum(n.startswith("figure5_lr_curves") for n in names) == 2


def test_cost_figures():
    import torch
    from torch import nn

    from morec.cost import human, human_bytes, item_flops, peak_memory, trainable_parameters

    class Encoder(nn.Module):  # an item encoder: ID lookup (0 FLOPs) then a 8 -> 4 dense layer
        def __init__(self):
            super().__init__()
            self.emb, self.lin = nn.Embedding(10, 8), nn.Linear(8, 4)
            self.emb.weight.requires_grad_(False)

        def forward(self, items):
            return self.lin(self.emb(items))

    enc = Encoder().train()
    assert item_flops(enc) == 2 * 8 * 4 and enc.training  # one item, batch size 1; mode restored
    assert trainable_parameters(enc) == 8 * 4 + 4
    mem = peak_memory(torch.device("cpu"))
    assert mem["peak_memory_kind"] in ("cpu_hwm", "cpu_max_rss") and mem["peak_memory_bytes"] > 1 << 20
    assert human(116_000_000) == "116.00M" and human(0) == "0" and human_bytes(3 << 30) == "3.00 GiB"


def test_table9_names_new_items_that_come_with_the_data(tmp_path):
    """A dataset with items only in test (a generator's new items) but no prepare.new_items says so."""
    run = tmp_path / "sasrec-id"
    shutil.copytree(RUNS / "sasrec-id-lr1e-3", run)
    shutil.copytree(RUNS / "_data", tmp_path / "_data")
    results = json.loads((run / "results.json").read_text())
    results["test_subsets"]["new"] = {"users": 7, "hr@10": 0.5, "ndcg@10": 0.25}
    (run / "results.json").write_text(json.dumps(results))
    t9 = next(t for t in build_tables(find_runs([run])) if t.name == "table9_cold_new")
    assert [(r["new items held out"], r["new users"], r["new HR@10"]) for r in t9.rows] == [("by the data", "7", 50.0)]


def test_table9_calls_every_user_all_since_cold_and_new_are_subsets(tmp_path):
    run = tmp_path / "sasrec-id"
    shutil.copytree(RUNS / "sasrec-id-lr1e-3", run)
    shutil.copytree(RUNS / "_data", tmp_path / "_data")
    t9 = next(t for t in build_tables(find_runs([run])) if t.name == "table9_cold_new")
    assert "all users" in t9.columns and not any("regular" in c for c in t9.columns)
    assert "subsets" in t9.note


def test_side_and_lora_runs_take_their_places_in_the_tables(tmp_path):
    """Every encoder mode is a MoRec row where pure MoRec is shown (Table 9 here); LoRA fine-tunes the encoder so
    it is an E2E-family row of Table 2, while side (no gradient into the encoder) stays out of Table 2 like TS."""
    shutil.copytree(RUNS / "_data", tmp_path / "_data")
    shutil.copytree(RUNS / "sasrec-id-lr1e-3", tmp_path / "sasrec-id")
    for mode, extra in [("side", {}), ("lora", {"train_layers": 2, "lora_rank": 4})]:
        run = tmp_path / f"sasrec-text-{mode}"
        shutil.copytree(RUNS / "sasrec-text-e2e", run)
        results = json.loads((run / "results.json").read_text())
        results["config"]["model"]["encoder"].update(mode=mode, **extra)
        (run / "results.json").write_text(json.dumps(results))
    tables = {t.name: t for t in build_tables(find_runs([tmp_path]))}
    assert [r["training"] for r in tables["table9_cold_new"].rows] == ["ID", "Side", "LoRA top-2 r4"]
    assert [r["training"] for r in tables["table2_idrec_vs_morec"].rows if r.get("training")] == ["ID", "LoRA top-2 r4"]
