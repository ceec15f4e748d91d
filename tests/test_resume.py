"""Checkpoints and exact resume: a run interrupted anywhere (SIGKILL included) and resumed ends exactly
where the uninterrupted run ends; checkpoints are written atomically and loaded without unpickling."""
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import morec.checkpoint as ckpt
from morec.cli import main
from morec.config import load_config
from morec.data.dataset import PreparedDataset
from morec.train import Trainer, train

REPO = Path(__file__).resolve().parents[1]
ARGS = ["--model.dim=32", "--train.batch_size=32", "--train.threads=1", "--train.progress=false",
        "--train.patience=10", "--train.checkpoint_every_steps=4"]


def config(data, out, *extra):
    return load_config(None, [f"--data={data}", f"--out={out}", *ARGS, *extra])


def quiet(_):
    pass


def records(run: Path) -> list[dict]:
    """metrics.jsonl without the wall-clock field."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


class Interrupted(Exception):
    pass


@pytest.fixture(scope="module")
def reference(synth_prepared, tmp_path_factory):
    """An uninterrupted 3-epoch run."""
    out = tmp_path_factory.mktemp("ref") / "run"
    results = train(config(synth_prepared, out, "--train.epochs=3"), PreparedDataset(synth_prepared), log=quiet)
    return out, results


# save 2: mid-epoch 0; save 7: the end of epoch 0 (25 batches of 32 -> steps 4..24 mid-epoch, then the end);
# save 10: mid-epoch 1
@pytest.mark.parametrize("stop_after", [2, 7, 10])
def test_interrupted_run_resumes_exactly(synth_prepared, tmp_path, monkeypatch, reference, stop_after):
    ref_dir, ref = reference
    ds = PreparedDataset(synth_prepared)
    run = tmp_path / "run"
    original = Trainer.save_checkpoint
    calls = {"n": 0}

    def save_then_die(self):
        original(self)
        calls["n"] += 1
        if calls["n"] == stop_after:
            raise Interrupted  # as if killed right after the checkpoint hit the disk

    monkeypatch.setattr(Trainer, "save_checkpoint", save_then_die)
    with pytest.raises(Interrupted):
        train(config(synth_prepared, run, "--train.epochs=3"), ds, log=quiet)
    monkeypatch.setattr(Trainer, "save_checkpoint", original)
    assert not (run / "results.json").exists()
    meta = ckpt.read_checkpoint_meta(run)
    assert meta["serial"] == stop_after

    resumed = Trainer.resume(run, ds, log=quiet)
    assert resumed["test"] == ref["test"] and resumed["valid"] == ref["valid"]
    assert resumed["best_epoch"] == ref["best_epoch"] and resumed["epochs_run"] == ref["epochs_run"] == 3
    assert records(run) == records(ref_dir)
    # only the latest tensor file is kept
    assert [p.name for p in run.glob("checkpoint-*.safetensors")] == [ckpt.read_checkpoint_meta(run)["tensors"]]


def test_resume_with_more_epochs_continues_a_finished_run(synth_prepared, tmp_path, reference, capsys):
    ref_dir, ref = reference
    run = tmp_path / "run"
    train(config(synth_prepared, run, "--train.epochs=2"), PreparedDataset(synth_prepared), log=quiet)
    assert main(["train", "--resume", str(run), "--train.epochs=3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["test"] == ref["test"] and records(run) == records(ref_dir)


def test_crash_mid_write_leaves_the_previous_checkpoint(synth_prepared, tmp_path, monkeypatch):
    run = tmp_path / "run"
    ds = PreparedDataset(synth_prepared)
    trainer = Trainer(config(synth_prepared, run, "--train.epochs=1"), ds, log=quiet)
    trainer.fit()
    before, tensors_before = ckpt.load_checkpoint(run)

    # 1) the process dies while the tensor file is half written
    def half_written(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"\x00" * 100)
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt, "save_file", half_written)
    with pytest.raises(KeyboardInterrupt):
        trainer.save_checkpoint()
    monkeypatch.undo()
    # 2) the process dies after the new tensor file, before the pointer moved
    real_replace = os.replace

    def die_on_pointer(src, dst):
        if Path(dst).name == ckpt.POINTER:
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(ckpt.os, "replace", die_on_pointer)
    with pytest.raises(KeyboardInterrupt):
        trainer.save_checkpoint()
    monkeypatch.undo()

    after, tensors_after = ckpt.load_checkpoint(run)
    assert after == before
    assert tensors_after.keys() == tensors_before.keys()
    assert all(torch.equal(tensors_after[k], tensors_before[k]) for k in tensors_before)
    assert not list(run.glob(".*.tmp")), "temporary files are removed"
    # the orphan tensor file of crash 2 is cleaned up by the next successful save
    trainer.save_checkpoint()
    assert len(list(run.glob("checkpoint-*.safetensors"))) == 1


def test_checkpoints_load_without_unpickling(synth_prepared, tmp_path, monkeypatch):
    run = tmp_path / "run"
    ds = PreparedDataset(synth_prepared)
    train(config(synth_prepared, run, "--train.epochs=1"), ds, log=quiet)
    # TensorBoard event files are protobuf records, written only, never read back by morec; ranks.npz holds plain
    # int arrays, read with allow_pickle=False
    assert {p.suffix for p in run.iterdir() if not p.name.startswith("events.out.tfevents.")} \
        <= {".json", ".jsonl", ".safetensors", ".yaml", ".npz"}

    def refuse(*args, **kwargs):
        raise AssertionError("a checkpoint must never be unpickled")

    for module, name in [(torch, "load"), (pickle, "load"), (pickle, "loads")]:
        monkeypatch.setattr(module, name, refuse)
    results = Trainer.resume(run, ds, log=quiet, overrides=["--train.epochs=2"])
    assert results["epochs_run"] == 2
    meta, tensors = ckpt.load_checkpoint(run)
    assert meta["state"]["epoch"] == 2 and any(k.startswith("optim.") for k in tensors)
    assert "rng.torch" in tensors and "python" in meta["rng"] and "numpy" in meta["rng"]


def test_resume_errors_are_for_people(synth_prepared, tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path / "nope")]) == 2
    assert "not a run directory" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "has no checkpoint" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path), "--config", "x.yaml"]) == 2
    assert "drop --config" in capsys.readouterr().err
    (tmp_path / "checkpoint.json").write_text("{not json")
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "not valid JSON" in capsys.readouterr().err


# --- the real thing: SIGKILL a training process, twice, and resume it --------------------------

def _morec(*args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "morec", "train", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _kill_after_checkpoint(proc: subprocess.Popen, run: Path, serial: int, timeout: float = 120) -> int:
    """SIGKILL ``proc`` as soon as checkpoint number >= ``serial`` is on disk; returns that number."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            seen = json.loads((run / ckpt.POINTER).read_text())["serial"]
        except (OSError, ValueError, KeyError):
            seen = 0
        if seen >= serial:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return seen
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before it could be killed:\n{proc.stderr.read()}")
        time.sleep(0.01)
    proc.kill()
    raise AssertionError("no checkpoint appeared in time")


def test_sigkill_then_resume_matches_uninterrupted(synth_prepared, tmp_path):
    """One real SIGKILL (wherever the poll lands: mid-epoch, maybe mid-write); the in-process tests above
    cover the other positions (epoch end, later epochs) without paying for more interpreter start-ups."""
    args = [f"--data={synth_prepared}", *ARGS, "--train.epochs=2", "--json"]
    ref_dir, run = tmp_path / "ref", tmp_path / "run"
    reference = _morec(*args, f"--out={ref_dir}")
    victim = _morec(*args, f"--out={run}")
    killed_at = _kill_after_checkpoint(victim, run, serial=3)  # epoch 0 has 6 mid-epoch checkpoints
    assert victim.returncode == -signal.SIGKILL and not (run / "results.json").exists()

    final = _morec("--resume", str(run), "--json")
    out, err = final.communicate(timeout=300)
    assert final.returncode == 0, err
    assert "resumed" in out
    ref_out, ref_err = reference.communicate(timeout=300)
    assert reference.returncode == 0, ref_err

    got = json.loads((run / "results.json").read_text())
    want = json.loads((ref_dir / "results.json").read_text())
    assert got["test"] == want["test"] and got["valid"] == want["valid"], killed_at
    assert got["best_epoch"] == want["best_epoch"] and got["epochs_run"] == want["epochs_run"] == 2
    assert records(run) == records(ref_dir)
    assert json.loads(out.strip().splitlines()[-1])["test"] == want["test"]
