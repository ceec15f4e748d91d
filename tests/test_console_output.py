"""What a run prints: a run stopped by its epoch cap while still improving says so at its end, and progress
bars are plain lines (no carriage returns) when the output is not a terminal, as in a log file."""
import io

from morec.cli import main
from morec.progress import PlainProgress, progress


def test_plain_lines_off_a_terminal():
    out = io.StringIO()
    bar = progress(range(10), 10, "epoch 0", True, 0, out)
    assert isinstance(bar, PlainProgress)
    for _ in bar:
        bar.set_postfix(loss="0.5")
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and len(lines) == 4 and lines[-1].startswith("epoch 0: 100% (10/10")
    assert "loss=0.5" in lines[-1]
    quiet = io.StringIO()
    assert list(progress(range(3), 3, "x", False, 0, quiet)) == [0, 1, 2] and quiet.getvalue() == ""


def test_capped_run_says_so_and_logs_cleanly(tmp_path, capsys):
    assert main(["data", "synth", str(tmp_path / "raw"), "--synth.n_users=40", "--synth.n_items=30",
                 "--synth.image_size=0"]) == 0
    assert main(["data", "prepare", str(tmp_path / "raw"), "--out", str(tmp_path / "p")]) == 0
    capsys.readouterr()
    assert main(["train", f"--data={tmp_path / 'p'}", f"--out={tmp_path / 'run'}", "--model.dim=8", "--model.max_len=8",
                 "--train.epochs=2", "--train.patience=5", "--train.threads=1", "--train.tensorboard=false"]) == 0
    captured = capsys.readouterr()
    assert "stopped at its epoch cap (train.epochs=2)" in captured.out and "--train.epochs=4" in captured.out
    assert "\r" not in captured.err and "epoch 0: 100%" in captured.err
