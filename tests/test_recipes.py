"""The fast recipes: one place (morec.recipes) that `morec study`, the committed fast configs and the recipe
benchmark all agree with, so a published speed-up is the speed-up of what a user runs."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from morec.config import load_config, to_dict
from morec.recipes import fast
from morec.study.plan import recipe

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


def load_bench(name: str):
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


def settings(cfg, section: str) -> dict:
    return {k: v for k, v in to_dict(getattr(cfg, section)).items() if k not in ("encoder", "threads", "seed", "progress", "tensorboard")}


def config_file(name: str):
    return load_config(str(ROOT / "configs" / name), [])


@pytest.fixture(scope="module")
def bench():
    return load_bench("bench_recipes")


def test_every_fast_config_is_benchmarked_and_every_benchmarked_arm_is_committed(bench):
    committed = {p.name for p in (ROOT / "configs").glob("ml100k_sasrec_*_fast.yaml")}
    assert committed == {name for name, _ in bench.FAST_CONFIGS.values() if name}


@pytest.mark.parametrize("arm", ["idrec", "ts"])
def test_shared_recipe_arms_train_exactly_the_study_recipe(bench, arm):
    """IDRec and TS: the committed fast config trains with morec.recipes' SASRec recipe, the one
    `morec study` gives every arm (equal budgets between the arms of a study)."""
    from_file = config_file(bench.FAST_CONFIGS[arm][0])
    from_recipe = load_config(None, ["--data=data/prepared/ml-100k", *fast("sasrec")])
    for section in ("model", "train", "eval"):
        assert settings(from_file, section) == settings(from_recipe, section), (arm, section)
    assert recipe("sasrec")[:len(fast("sasrec"))] == fast("sasrec")


@pytest.mark.parametrize("arm", ["idrec", "ts", "side", "side-id", "top1"])
def test_fast_arm_represents_items_as_its_default_arm_does(bench, arm):
    """A fast config is compared with its default arm of bench_morec_cost.py: only the recipe may differ, never
    the item encoder (kind, mode, fusion, pretrained model, text fields, layers trained)."""
    from_file = config_file(bench.FAST_CONFIGS[arm][0])
    default = load_config(None, ["--data=data/prepared/ml-100k", *bench.DEFAULT_BUDGET,
                                 *bench.DEFAULT_ARMS[bench.FAST_CONFIGS[arm][1]]])
    a, b = to_dict(from_file.model.encoder), to_dict(default.model.encoder)
    if a["kind"] == "id":  # an ID table has no content settings: the default arm's are unused
        a, b = {k: a[k] for k in ("kind", "fusion")}, {k: b[k] for k in ("kind", "fusion")}
    a.pop("lr", None), b.pop("lr", None)  # the encoder's learning rate is part of the recipe
    assert a == b
    assert from_file.model.backbone == default.model.backbone == "sasrec"
    assert from_file.train.loss == "ce" and from_file.train.schedule == "cosine"
    assert default.train.loss == "bce" and default.train.schedule == "constant"


def test_other_backbones_keep_the_library_defaults_with_a_cap():
    cfg = load_config(None, ["--data=d", *recipe("gru4rec")])
    plain = load_config(None, ["--data=d", "--model.backbone=gru4rec"])
    assert cfg.train.loss == plain.train.loss and cfg.train.lr == plain.train.lr
    assert cfg.train.epochs == 100 and cfg.train.patience == 10
