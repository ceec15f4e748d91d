"""bench_morec_cost's --time-epochs pass: one epoch of each finished arm, ratios to IDRec; rerunnable."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_morec_cost as bench  # noqa: E402

FAST = ["--train.epochs=2", "--train.patience=1", "--model.max_len=20", "--train.batch_size=256"]


def test_time_epochs_refuses_unfinished_runs_then_times_and_reruns(synth_prepared, tmp_path, capsys):
    runs = tmp_path / "runs"
    with pytest.raises(SystemExit, match="no finished run of idrec"):
        bench.timing_pass(["idrec"], 1, synth_prepared, runs, FAST)
    bench.run_arm("idrec", 1, synth_prepared, runs, FAST)
    for _ in range(2):  # a second pass re-times into the same scratch directory
        assert bench.timing_pass(["idrec"], 1, synth_prepared, runs, FAST) == 0
        rows = json.loads((tmp_path / "runs-timing" / "timing_rows.json").read_text())
        assert [r["arm"] for r in rows] == ["idrec"] and rows[0]["epoch_seconds"] > 0
        assert rows[0]["x_epoch"] == 1.0 and rows[0]["best_epoch"] == json.loads(
            (runs / "idrec-seed1" / "results.json").read_text())["best_epoch"]
    assert "SUMMARY bench_morec_cost --time-epochs" in capsys.readouterr().out
