"""bench_morec_cost's --time-epochs pass: one epoch of each finished arm, ratios to IDRec; rerunnable."""
import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_morec_cost as bench  # noqa: E402

from morec.stats import paired  # noqa: E402

FAST = ["--train.epochs=2", "--train.patience=1", "--model.max_len=20", "--train.batch_size=256"]


def test_time_epochs_refuses_unfinished_runs_then_times_and_reruns(synth_prepared, tmp_path, capsys):
    runs = tmp_path / "runs"
    with pytest.raises(SystemExit, match="no finished run of idrec"):
        bench.timing_pass(["idrec"], 1, synth_prepared, runs, FAST)
    bench.run_arm("idrec", 1, synth_prepared, runs, FAST)
    for _ in range(2):  # a second pass re-times into the same scratch directory
        started = time.perf_counter()
        assert bench.timing_pass(["idrec"], 1, synth_prepared, runs, FAST) == 0
        rows = json.loads((tmp_path / "runs-timing" / "timing_rows.json").read_text())
        assert [r["arm"] for r in rows] == ["idrec"] and 0 < rows[0]["epoch_seconds"] < time.perf_counter() - started
        assert rows[0]["x_epoch"] == 1.0 and rows[0]["best_epoch"] == json.loads(
            (runs / "idrec-seed1" / "results.json").read_text())["best_epoch"]
    assert "SUMMARY bench_morec_cost --time-epochs" in capsys.readouterr().out


@pytest.fixture(scope="module")
def synth_new_items(tmp_path_factory):
    from morec.config import PrepareConfig
    from morec.data.prepare import prepare
    from morec.data.synthetic import SynthConfig, generate

    raw = generate(SynthConfig(n_users=600, n_items=200, n_topics=4, seq_len_min=8, seq_len_max=16, image_size=0, seed=2))
    return prepare(raw, tmp_path_factory.mktemp("new") / "prepared", PrepareConfig(new_items=20, seed=0),
                   log=lambda s: None)


def test_new_items_pass_scores_only_new_item_users_and_pairs_each_arm_with_ts(synth_new_items, tmp_path):
    """Runs draw negatives from training items only; HR@10 counts just the users whose target is a new item, and
    each arm's verdict against TS is paired over exactly those users."""
    from morec.config import load_config
    from morec.data.dataset import PreparedDataset

    ds = PreparedDataset(synth_new_items)
    out = bench.new_items_pass(["idrec", "ts"], [1, 2], synth_new_items, tmp_path / "runs", FAST)
    new_user = ds.train_item_counts[ds.targets("test")] == 0  # a test target no user trained on
    new_users = int(new_user.sum())
    assert out["users"] == new_users > 0
    new_user_ranks = {}  # each run's saved test ranks (ranks.npz) of those users
    for arm in ("idrec", "ts"):
        for seed in (1, 2):
            run = tmp_path / "runs" / f"{arm}-seed{seed}"
            assert load_config(run / "config.yaml").train.negatives_from == "train"
            new_user_ranks.setdefault(arm, []).append(np.load(run / "ranks.npz")["test"][new_user])
        assert out["hits"][arm] == [int((r <= 10).sum()) for r in new_user_ranks[arm]]
        assert out["hr"][arm] == pytest.approx(sum(out["hits"][arm]) / (2 * new_users))
    verdict = out["vs"]["idrec vs ts"]
    assert verdict["users"] == new_users and verdict["seeds_a"] == verdict["seeds_b"] == 2
    assert verdict["diff"] == pytest.approx(out["hr"]["idrec"] - out["hr"]["ts"])
    # the pairing is over exactly those users, TS first: the same interval and p as morec's paired test on them
    want = paired(new_user_ranks["ts"], new_user_ranks["idrec"], "hr@10").to_dict()
    assert (verdict["p"], verdict["diff_ci"]) == (want["p"], want["diff_ci"])


@pytest.mark.parametrize("args, says", [(["--seeds", "1,x"], "integer seeds such as 1,2,3, got '1,x'"),
                                        (["--new-items-seeds", "2;3"], "got '2;3'"),
                                        (["--seeds", ""], "--seeds needs at least one seed")])
def test_a_bad_seed_list_is_a_one_line_usage_error(args, says, capsys):
    with pytest.raises(SystemExit) as stop:
        bench.main(args)
    assert stop.value.code == 2 and says in capsys.readouterr().err
