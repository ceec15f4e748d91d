"""Per-encoder config sections, and configs saved before them: a run directory written by the earlier layout
(tests/fixtures/run-v1, flat model.encoder.max_tokens / text_fields and the retired eval.item_chunk) loads and
scores exactly as when it was trained; the published ML-100K runs load and still count as done for their sweep."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from morec.config import Config, ConfigError, from_dict, load_config, migrate, save_config, to_dict

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "run-v1"
PUBLISHED = ROOT / "docs" / "results" / "ml100k" / "runs"


@pytest.fixture()
def old_run(tmp_path):
    """A copy of the fixture whose relative paths point into the copy (the committed one is never written)."""
    copy = tmp_path / "run-v1"
    shutil.copytree(FIXTURE, copy)
    config = copy / "run" / "config.yaml"
    config.write_text(config.read_text().replace("tests/fixtures/run-v1/", f"{copy}/"))
    return copy


def test_old_layout_is_read_as_the_new_one_and_says_so(old_run, capsys):
    saved = yaml.safe_load((old_run / "run" / "config.yaml").read_text())
    assert saved["model"]["encoder"]["max_tokens"] == 6 and "item_chunk" in saved["eval"]  # it is the old layout
    cfg = load_config(old_run / "run" / "config.yaml")
    assert cfg.model.encoder.text.fields == ["title"] and cfg.model.encoder.text.max_tokens == 6
    assert cfg.model.encoder.vision.image_size == 224 and cfg.model.encoder.mode == "top"
    assert not hasattr(cfg.eval, "item_chunk")
    err = capsys.readouterr().err
    assert "model.encoder.max_tokens -> model.encoder.text.max_tokens" in err and "eval.item_chunk dropped" in err
    # what it is saved as now loads without any note
    save_config(cfg, old_run / "again.yaml")
    assert "max_tokens" not in yaml.safe_load((old_run / "again.yaml").read_text())["model"]["encoder"]
    assert to_dict(load_config(old_run / "again.yaml")) == to_dict(cfg)
    assert "note" not in capsys.readouterr().err


def test_old_run_directory_loads_and_ranks_as_when_trained(old_run):
    pytest.importorskip("transformers")
    from morec.data.dataset import PreparedDataset
    from morec.evaluate import rank_users
    from morec.ranks import load_ranks
    from morec.runs import load_run

    cfg, model, ds = load_run(old_run / "run")  # the weights fit the model the migrated config describes
    saved = load_ranks(old_run / "run")
    for split in ("valid", "test"):
        got = rank_users(model, PreparedDataset(cfg.data), split, cfg.model.max_len)
        np.testing.assert_array_equal(got, saved[split])


def test_an_override_wins_whichever_layout_it_is_written_in(old_run):
    path = old_run / "run" / "config.yaml"
    assert load_config(path, ["--model.encoder.text.max_tokens=9"]).model.encoder.text.max_tokens == 9
    assert load_config(path, ["--model.encoder.max_tokens=7"]).model.encoder.text.max_tokens == 7
    new = old_run / "new.yaml"
    save_config(load_config(path), new)
    assert load_config(new, ["--model.encoder.max_tokens=5"]).model.encoder.text.max_tokens == 5
    assert load_config(new, ["--model.encoder.image_size=32"]).model.encoder.vision.image_size == 32


def test_unknown_keys_in_a_section_are_named(tmp_path):
    for key, where in [("--model.encoder.text.tokens=3", "model.encoder.text.tokens"),
                       ("--model.encoder.vision.size=3", "model.encoder.vision.size"),
                       ("--eval.item_chunks=3", "eval.item_chunks")]:
        with pytest.raises(ConfigError, match=f"unknown config key '{where}'"):
            load_config(None, ["--data=x", key])


def test_unknown_section_key_is_one_error_line_from_the_cli(tmp_path, capsys):
    from morec.cli import main

    assert main(["train", "--data=nowhere", f"--out={tmp_path / 'r'}", "--model.encoder.text.max_token=3"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("morec: error: ") and "model.encoder.text.max_token" in err[0]


@pytest.mark.skipif(not PUBLISHED.is_dir(), reason="no published runs")
def test_published_runs_load_and_their_sweep_still_counts_them_done():
    from morec.sweep import expand, load_sweep, same_config

    runs = {p.name: p for p in PUBLISHED.iterdir() if (p / "config.yaml").exists()}
    assert runs
    flat_layout = 0
    for name, run in runs.items():
        flat = yaml.safe_load((run / "config.yaml").read_text())["model"]["encoder"]
        enc = load_config(run / "config.yaml").model.encoder
        if "text_fields" in flat:  # seeds 1-3 were saved in the earlier, flat layout; seeds 4-5 in today's
            flat_layout += 1
            assert enc.text.fields == flat["text_fields"] and enc.text.max_tokens == flat["max_tokens"], name
            assert enc.vision.image_size == flat["image_size"] and enc.kind == flat["kind"], name
    assert flat_layout >= 24
    matched = 0
    for sweep_file in ("ml100k_sweep.yaml", "ml100k_sweep_seeds4-5_id_ts.yaml", "ml100k_sweep_seeds4-5_dssm_tsdnn.yaml"):
        spec = load_sweep(ROOT / "docs" / "results" / sweep_file)
        spec.out = PUBLISHED  # a sweep directory of long-named runs resumes under their names
        for sweep_run in expand(spec):
            if sweep_run.name in runs:
                finished = json.loads((runs[sweep_run.name] / "results.json").read_text())["config"]
                assert same_config(finished, to_dict(sweep_run.config)), sweep_run.name
                matched += 1
    assert matched == len(runs)


def test_migrate_leaves_todays_layout_alone():
    today = to_dict(Config(data="x"))
    assert migrate(today) == today
    assert to_dict(from_dict(Config, today)) == today


def test_report_labels_read_both_layouts_and_both_parts_of_a_multimodal_encoder():
    from morec.report.discovery import encoder_label, training_label

    flat = {"kind": "vision", "pretrained": "w.pth", "arch": "resnet50", "mode": "frozen", "mlp_layers": 2}
    sectioned = {"kind": "vision", "pretrained": "w.pth", "mode": "frozen", "mlp_layers": 2, "vision": {"arch": "resnet50"}}
    assert encoder_label(flat) == encoder_label(sectioned) == "resnet50"
    both = {"kind": "multimodal", "pretrained": "", "mode": "e2e", "train_layers": 0, "mlp_layers": 0,
            "text": {"pretrained": "models/minilm", "mode": "top", "train_layers": 2},
            "vision": {"pretrained": "timm:resnet18", "mode": "frozen", "arch": ""}}
    assert encoder_label(both) == "minilm + resnet18"
    assert training_label(both) == "E2E top-2 + TS"
