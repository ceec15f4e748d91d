"""`morec train --help`, `morec data prepare --help` and `morec config show` list every setting with its type,
default and meaning, read from the typed config (so a new setting appears, and needs its comment)."""
import dataclasses
import typing

import pytest

from morec.cli import main
from morec.config import Config, PrepareConfig
from morec.config_help import all_settings, show


def help_of(capsys, argv):
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    return capsys.readouterr().out


def test_every_setting_has_a_type_default_and_meaning():
    rows = {key: (tp, default, meaning) for key, tp, default, meaning in all_settings()}
    assert rows["train.epochs"][:2] == ("int", "200") and "cap" in rows["train.epochs"][2]
    assert rows["prepare.time_test"][:2] == ("float | str | none", "none")
    assert rows["model.encoder.text.fields"][:2] == ("list[str]", "[]")
    assert rows["prepare.split"][2].startswith("The split: loo = leave-one-out")  # the block above it, not new_items'
    assert "listed in the prepared" in rows["prepare.image_missing"][2]  # a comment continued on the next line
    assert rows["train.negatives_shared"][2].startswith("bce / sampled / gbce: one set of K negatives")
    assert rows["train.collapse_floor"][2] == rows["train.collapse_ratio"][2] != ""  # a group under one comment
    missing = [key for key, (_, _, meaning) in rows.items() if not meaning]
    assert not missing, f"settings without a comment in morec/config/: {missing}"
    assert len(rows) == len(dataclasses.fields(PrepareConfig)) + _count(Config)


def _count(cls) -> int:
    hints = typing.get_type_hints(cls)
    return sum(_count(hints[f.name]) if dataclasses.is_dataclass(hints[f.name]) else 1 for f in dataclasses.fields(cls))


def test_train_and_prepare_help_list_their_settings(capsys):
    train = help_of(capsys, ["train"])
    for key in ("--data", "--model.encoder.kind", "--model.encoder.vision.image_missing", "--train.epochs", "--eval.ks"):
        assert key in train
    assert "default 200" in train and "morec config show" in train and "--prepare." not in train
    prepare = help_of(capsys, ["data", "prepare"])
    assert "--prepare.time_test" in prepare and "--prepare.image_missing" in prepare and "--train." not in prepare
    assert "date" in prepare and "--option" in prepare


def test_config_show_one_section(capsys):
    assert main(["config", "show", "model.encoder.vision"]) == 0
    out = capsys.readouterr().out
    assert out == show("model.encoder.vision") and "--model.encoder.vision.image_size" in out
    assert "--model.dim" not in out and "--train." not in out
    assert main(["config", "show", "nope"]) == 2
    assert "the sections are prepare, run, model" in capsys.readouterr().err


def test_the_guides_configuration_page_is_the_generated_reference():
    """docs/guide/configuration.md is `morec config show --markdown`: regenerate it when a setting changes."""
    from pathlib import Path

    from morec import config_help

    page = Path(__file__).resolve().parents[1] / "docs" / "guide" / "configuration.md"
    assert page.read_text(encoding="utf-8") == config_help.markdown()
    assert "| `--train.lr` | float | `0.001` |" in page.read_text(encoding="utf-8")
    assert "| `--model.encoder.vision.image_missing` |" in page.read_text(encoding="utf-8")
