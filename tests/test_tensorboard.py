"""TensorBoard event files mirror metrics.jsonl / steps.jsonl exactly, and a resumed run does not log a step twice."""
import math

import pytest

from morec.config import load_config
from morec.data.dataset import PreparedDataset
from morec.runlog import read_jsonl, tensorboard_tag
from morec.train import Trainer, train

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

ARGS = ["--model.dim=16", "--train.batch_size=64", "--train.threads=1", "--train.progress=false",
        "--train.log_every=1", "--train.checkpoint_every_steps=4", "--train.epochs=2"]


class Killed(Exception):
    pass


def scalars(run) -> dict[str, list[tuple[int, float]]]:
    acc = event_accumulator.EventAccumulator(str(run), size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def expected(run) -> dict[str, list[tuple[int, float]]]:
    """What the JSON lines say each tag should hold, in step order."""
    want: dict[str, list] = {}
    for rec in read_jsonl(run / "steps.jsonl") + read_jsonl(run / "metrics.jsonl"):
        for key, value in rec.items():
            if key not in ("step", "epoch"):
                want.setdefault(tensorboard_tag(key), []).append((rec["step"], value))
    return {tag: sorted(points) for tag, points in want.items()}


def assert_same(run):
    got, want = scalars(run), expected(run)
    assert set(got) == set(want)
    for tag in want:
        assert [s for s, _ in got[tag]] == [s for s, _ in want[tag]], tag  # every step once, none twice
        for (_, g), (_, w) in zip(got[tag], want[tag]):
            assert g == pytest.approx(w, rel=1e-6, abs=1e-12), tag  # event files hold float32


def test_event_files_equal_the_json_logs_through_a_resume(synth_prepared, tmp_path, monkeypatch):
    ds = PreparedDataset(synth_prepared)
    run = tmp_path / "run"
    cfg = load_config(None, [f"--data={synth_prepared}", f"--out={run}", *ARGS])
    original = Trainer._log_step

    def log_then_die(self, epoch, interval):
        original(self, epoch, interval)
        if self.state.step == 7:  # 3 steps past the checkpoint of step 4: they are logged, then lost
            raise Killed

    monkeypatch.setattr(Trainer, "_log_step", log_then_die)
    with pytest.raises(Killed):
        train(cfg, ds, log=lambda s: None)
    assert [r["step"] for r in read_jsonl(run / "steps.jsonl")] == list(range(1, 8))
    monkeypatch.undo()

    results = Trainer.resume(run, ds, log=lambda s: None)
    steps = read_jsonl(run / "steps.jsonl")
    epochs = read_jsonl(run / "metrics.jsonl")
    n_steps = epochs[-1]["step"]
    assert [r["step"] for r in steps] == list(range(1, n_steps + 1))  # steps 5-7 logged once, by the resumed run
    assert [r["epoch"] for r in epochs] == [0, 1] and results["epochs_run"] == 2
    assert {"train/loss", "lr/decay", "lr/no_decay", "train/step_seconds", "train/peak_memory_bytes"} <= set(steps[0])
    assert all(math.isfinite(r["train/loss"]) and r["lr/decay"] == cfg.train.lr for r in steps)
    assert len(list(run.glob("events.out.tfevents.*"))) == 2  # one per process
    assert_same(run)
    got = scalars(run)
    assert got["valid/ndcg@10"][-1][1] == pytest.approx(epochs[-1]["valid_ndcg@10"], rel=1e-6)


def test_a_restarted_run_starts_new_curves_and_tensorboard_can_be_off(synth_prepared, tmp_path):
    ds = PreparedDataset(synth_prepared)
    run = tmp_path / "run"
    train(load_config(None, [f"--data={synth_prepared}", f"--out={run}", *ARGS, "--train.epochs=1"]), ds, log=lambda s: None)
    train(load_config(None, [f"--data={synth_prepared}", f"--out={run}", *ARGS, "--train.epochs=1"]), ds, log=lambda s: None)
    assert len(list(run.glob("events.out.tfevents.*"))) == 1  # the first run's file was removed
    assert_same(run)
    off = tmp_path / "off"
    train(load_config(None, [f"--data={synth_prepared}", f"--out={off}", *ARGS, "--train.epochs=1",
                             "--train.tensorboard=false"]), ds, log=lambda s: None)
    assert not list(off.glob("events.out.tfevents.*")) and read_jsonl(off / "steps.jsonl")
