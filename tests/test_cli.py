"""The `morec` command end to end, in process."""
import json

import pytest

from morec.cli import main


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_synth_prepare_stats_train_evaluate(tmp_path, capsys):
    raw, prepared, run = tmp_path / "raw", tmp_path / "prepared", tmp_path / "run"
    assert main(["data", "synth", str(raw), "--synth.n_users=200", "--synth.n_items=80", "--synth.image_size=0"]) == 0
    assert main(["data", "prepare", str(raw), "--out", str(prepared), "--prepare.max_seq_len=15"]) == 0
    assert last_json(capsys.readouterr().out)["users"] == 200
    assert main(["data", "stats", str(prepared)]) == 0
    assert "item popularity plot" in capsys.readouterr().out and (prepared / "item_popularity.png").stat().st_size > 1000
    assert main(["train", f"--data={prepared}", f"--out={run}", "--train.epochs=2", "--model.dim=16", "--json"]) == 0
    trained = last_json(capsys.readouterr().out)
    assert main(["evaluate", str(run), "--json"]) == 0
    rescored = last_json(capsys.readouterr().out)
    assert rescored["test"] == pytest.approx(trained["test"]) and rescored["valid"] == pytest.approx(trained["valid"])


def test_errors_are_for_people(tmp_path, capsys):
    assert main(["train", f"--data={tmp_path}", "--train.lrr=1"]) == 2
    assert "unknown config key 'train.lrr'" in capsys.readouterr().err
    assert main(["train", f"--data={tmp_path}"]) == 2
    assert "morec data prepare" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "config.yaml" in capsys.readouterr().err


def test_quickstart_refuses_a_dataset_prepared_with_other_options(tmp_path):
    from morec.api import check_quickstart_prepare
    from morec.config import ConfigError, PrepareConfig
    from morec.data.dataset import PreparedDataset
    from morec.data.prepare import prepare
    from morec.data.synthetic import SynthConfig, generate

    raw = generate(SynthConfig(n_users=60, n_items=30, n_topics=2, seq_len_min=6, seq_len_max=8, image_size=0, seed=1))
    check_quickstart_prepare(PreparedDataset(prepare(raw, tmp_path / "a", log=lambda s: None)))  # defaults: fine
    other = PreparedDataset(prepare(raw, tmp_path / "b", PrepareConfig(min_item_interactions=3), log=lambda s: None))
    with pytest.raises(ConfigError, match="min_item_interactions=3"):
        check_quickstart_prepare(other)
