import pytest

from morec.config import Config, ConfigError, load_config, parse_overrides, save_config


def test_overrides_nested_and_typed(tmp_path):
    cfg = load_config(None, ["--data=d", "--train.lr=5e-4", "--model.encoder.kind", "id", "--eval.ks=5,10", "--train.progress=false"])
    assert cfg.train.lr == 5e-4 and cfg.model.encoder.kind == "id" and cfg.eval.ks == [5, 10] and cfg.train.progress is False
    path = tmp_path / "c.yaml"
    save_config(cfg, path)
    again = load_config(path, ["--model.dim=32"])
    assert again.train.lr == 5e-4 and again.model.dim == 32


@pytest.mark.parametrize("args, message", [
    (["--data=d", "--train.lrr=1"], "unknown config key 'train.lrr'"),
    (["--data=d", "--model.encoder.kin=x"], "unknown config key 'model.encoder.kin'"),
    (["--data=d", "--train.batch_size=big"], "train.batch_size: expected an integer"),
    (["--data=d", "--train.lr=-1"], "train.lr must be > 0"),
    (["--data=d", "--model.max_len=0"], "model.max_len must be > 0"),
    (["--data=d", "--model.dim=30", "--model.n_heads=4"], "divisible"),
    (["--data=d", "--eval.select_metric=ndcg@20"], "select_metric"),
    (["--data=d", "--train.collapse_ratio=1.5"], "train.collapse_ratio must be in"),
    (["--data=d", "--train.collapse_epochs=0"], "train.collapse_epochs must be >= 1, got 0"),
    (["--train.lr=1e-3"], "prepared dataset directory must be set"),
])
def test_bad_config_names_the_key(args, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_config(None, args)


def test_defaults_are_the_papers():
    cfg = Config(data="d")
    assert cfg.model.n_layers == 2 and cfg.model.n_heads == 2 and cfg.model.dropout == 0.1
    assert cfg.train.batch_size == 128 and cfg.train.loss == "bce" and cfg.eval.mask_history


def test_parse_overrides_requires_dashes():
    with pytest.raises(ConfigError):
        parse_overrides(["train.lr=1"])
