"""Runs, full disks and the server, probed as an outsider would: two writers in one run directory, a lock left
by a killed process, ENOSPC in prepare / train / catalog add / POST /items, impossible server options, a
non-ASCII token, ids asked with a stray space, and image errors that must not name the server's paths.

A full disk is simulated where the bytes are written (numpy's save, safetensors' save_file, raising what they
raise on ENOSPC after writing part of the file), and once for real on a small tmpfs when this machine lets an
unprivileged user namespace mount one.
"""
from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("fastapi")
pytest.importorskip("httpx")
import serving_fixtures as sf  # noqa: E402
from test_bad_inputs import nothing_left, one_line_error, plain_rows, raw_folder, table  # noqa: E402

from morec.cli import main  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DISK_FULL = "Error while serializing: I/O error: No space left on device (os error 28)"  # safetensors 0.7, on a tmpfs


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return sf.world(tmp_path_factory)


def train_args(world, out: Path) -> list[str]:
    return ["train", f"--data={world['data']}", f"--out={out}", "--model.dim=16", "--model.max_len=8",
            "--train.epochs=1", "--train.batch_size=64", "--train.threads=1", "--train.progress=false",
            "--train.tensorboard=false"]


HOLDER = """
import sys
from morec.runlock import run_lock
run = sys.argv[1]
sys.argv = ["morec", "train", "--out", run]
with run_lock(run):
    print("held", flush=True)
    sys.stdin.readline()
"""


@contextmanager
def writer(run: Path):
    """Another process holding ``run``'s writer lock (as `morec train --out RUN` would) until the block ends."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        if proc.poll() is None:
            proc.stdin.close()
        proc.wait(timeout=30)


def owner_record(run: Path) -> Path:
    from morec.runlock import lock_paths

    return lock_paths(run)[1]


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- one writer per run directory ------------------------------------------------------------

def test_a_second_train_into_a_running_run_is_refused_with_the_holder(world, tmp_path, capsys):
    out = tmp_path / "run"
    with writer(out) as proc:
        message = one_line_error(capsys, train_args(world, out))
        assert f"{out} is being written by pid {proc.pid} (`morec train --out {out}`" in message
        assert not out.exists()  # the refused process wrote nothing


def test_resume_while_the_run_trains_is_refused_and_reads_nothing(world, tmp_path_factory, tmp_path, capsys):
    run = sf.fresh_copy(sf.id_sasrec(tmp_path_factory), tmp_path / "run")
    before = tree(run)
    with writer(run) as proc:
        message = one_line_error(capsys, ["train", "--resume", run])
        assert f"pid {proc.pid}" in message and "one process at a time may resume it" in message
    assert tree(run) == before


def test_a_lock_left_by_a_killed_writer_is_taken_over_with_a_note(world, tmp_path, capsys):
    out = tmp_path / "run"
    with writer(out) as proc:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert owner_record(out).exists()  # its record is left behind; the lock itself died with it
    assert main(train_args(world, out)) == 0
    err = capsys.readouterr().err
    assert f"taking over the lock left by pid {proc.pid}" in err and "which has ended" in err
    assert (out / "results.json").exists() and not owner_record(out).exists()


def test_a_sweep_leaves_a_run_another_process_writes_to_it(world, tmp_path):
    from morec.sweep import parse_sweep, run_sweep

    spec = parse_sweep({"base": {"data": str(world["data"]), "model": {"dim": 16, "max_len": 8},
                                 "train": {"epochs": 1, "progress": False, "tensorboard": False}},
                        "grid": {"train.lr": [0.001]}, "out": str(tmp_path / "sweep")})
    said = []
    with writer(tmp_path / "sweep" / "sasrec-id"):
        summary = run_sweep(spec, log=said.append)
    assert summary["runs"][0]["status"] == "pending" and summary["runs"][0]["how"] == "running elsewhere"
    assert any("is being written by pid" in line for line in said)
    assert not (tmp_path / "sweep" / "sasrec-id").exists()  # no error.txt written into another writer's folder


def test_a_tune_trial_whose_folder_has_a_live_writer_is_not_trained(world, tmp_path):
    pytest.importorskip("optuna")
    from morec.tune import parse_tune, search

    base = {"data": str(world["data"]), "model": {"dim": 16, "max_len": 8},
            "train": {"epochs": 1, "progress": False, "tensorboard": False}}
    spec = parse_tune({"base": base, "space": {"train.lr": {"uniform": [0.001, 0.002]}}, "trials": 1,
                       "out": str(tmp_path / "tune")})
    with writer(tmp_path / "tune" / "trials" / "trial-000") as proc:
        study = search(spec, log=lambda s: None)
    first = min(study.trials, key=lambda t: t.number)
    assert f"is being written by pid {proc.pid}" in first.user_attrs["error"]
    assert not (tmp_path / "tune" / "trials" / "trial-000").exists()


# --- a full disk -----------------------------------------------------------------------------

def full_disk_save_file(tensors, filename, metadata=None):
    Path(filename).write_bytes(b"partial")
    from safetensors import SafetensorError

    raise SafetensorError(DISK_FULL)


def no_temp_files(folder: Path) -> None:
    assert not list(folder.glob(".*.tmp*")), sorted(folder.iterdir())


def test_disk_full_in_prepare(tmp_path, capsys, monkeypatch):
    import numpy as np

    def full(file, arr, *args, **kwargs):
        Path(file).write_bytes(b"\x93NUMPY partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", full)
    out = tmp_path / "prepared"
    message = one_line_error(capsys, ["data", "prepare", raw_folder(tmp_path, table(plain_rows())), "--out", out])
    assert "no space left on the device" in message
    nothing_left(out)


def test_disk_full_in_train(world, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("morec.checkpoint.save_file", full_disk_save_file)
    out = tmp_path / "run"
    message = one_line_error(capsys, train_args(world, out))
    assert f"no space left on the device writing {out}" in message
    no_temp_files(out)
    assert not (out / "model.safetensors").exists() and not (out / "results.json").exists()
    assert not owner_record(out).exists()


def new_items(tmp_path: Path, header: str = "id,title") -> Path:
    path = tmp_path / "new.csv"
    path.write_text(header + "\n" + "".join(f"n{i},zzznovel words {i}{',x' * header.count(',title,')}\n"
                                            for i in range(3)))
    return path


def test_disk_full_in_catalog_add_and_post_items(tmp_path_factory, tmp_path, capsys, monkeypatch):
    from starlette.testclient import TestClient

    from morec.recommend import RecommenderService
    from morec.serve import create_app

    run = sf.fresh_copy(sf.text_sasrec(tmp_path_factory), tmp_path / "run")
    monkeypatch.setattr("morec.checkpoint.save_file", full_disk_save_file)
    message = one_line_error(capsys, ["catalog", "add", run, "--items", new_items(tmp_path)])
    assert "no space left on the device that holds the run's catalogue; the items were not added" in message
    assert not (run / "added_items.safetensors").exists()
    no_temp_files(run)
    with TestClient(create_app(RecommenderService.from_run(run)), raise_server_exceptions=False) as client:
        r = client.post("/items", json={"items": [{"id": "n9", "title": "zzznovel"}]})
    assert r.status_code == 507 and "no space left" in r.json()["detail"], r.text
    assert str(tmp_path) not in r.text and not (run / "added_items.safetensors").exists()


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare to mount a private tmpfs")
def test_disk_full_for_real_on_a_small_tmpfs(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    rows = [f"u{u},i{(u * 7 + t) % 500},{t}" for u in range(3000) for t in range(8)]
    source = raw_folder(tmp_path, table(rows))
    script = (f"mount -t tmpfs -o size=256k tmpfs {mount} || exit 77; cd {ROOT}; "
              f"{sys.executable} -m morec data prepare {source} --out {mount / 'out'}; rc=$?; "
              f"echo LEFT: $(ls -A {mount}); exit $rc")
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    if proc.returncode == 77 or "unshare:" in proc.stderr:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()[:200]}")
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and errors == [errors[-1]] and "no space left on the device" in errors[-1], proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "LEFT:", proc.stdout  # no prepared or staging folder left


# --- catalog add: repeated column names --------------------------------------------------------

def test_a_repeated_column_in_a_new_items_file_is_an_error(tmp_path_factory, tmp_path, capsys):
    run = sf.fresh_copy(sf.id_sasrec(tmp_path_factory), tmp_path / "run")
    items = new_items(tmp_path, "id,title,title")
    message = one_line_error(capsys, ["catalog", "add", run, "--items", items])
    assert f"{items}: column 'title' appears twice in the header" in message
    assert not (run / "added_items.safetensors").exists()


# --- the server ------------------------------------------------------------------------------

@pytest.mark.parametrize("option, value, said", [
    ("--port", "99999", "--port 99999 is not a TCP port"), ("--port", "-1", "--port -1 is not a TCP port"),
    ("--threads", "-2", "--threads -2: give at least 1"), ("--threads", "0", "--threads 0: give at least 1"),
    ("--max-k", "0", "--max-k 0: give at least 1"), ("--max-body", "-1", "--max-body -1: give at least 1"),
    ("--max-history", "0", "--max-history 0: give at least 1")])
def test_impossible_server_options_are_refused_before_binding(tmp_path, capsys, option, value, said):
    assert said in one_line_error(capsys, ["serve", tmp_path / "no-run", option, value])


def test_a_non_ascii_token_sent_as_utf8_is_accepted(tmp_path_factory):
    from starlette.testclient import TestClient

    from morec.recommend import RecommenderService
    from morec.serve import create_app

    service = RecommenderService.from_run(sf.id_sasrec(tmp_path_factory))
    body = {"items": [{"id": "n1", "title": "zzznovel"}]}
    with TestClient(create_app(service, token="pässwörd-✓")) as client:
        right = client.post("/items", json=body, headers={"Authorization": "Bearer pässwörd-✓".encode()})
        wrong = client.post("/items", json=body, headers={"Authorization": "Bearer passwort".encode()})
    assert right.status_code == 422 and "ID-based model" in right.json()["detail"]  # past the token check
    assert wrong.status_code == 401


def test_a_host_other_machines_reach_without_a_token_is_warned_about():
    from morec.serve import exposure_warning

    assert "no --token" in exposure_warning("0.0.0.0", None) and "no --token" in exposure_warning("192.168.1.5", "")
    assert exposure_warning("127.0.0.1", None) is None and exposure_warning("::1", None) is None
    assert exposure_warning("localhost", None) is None and exposure_warning("0.0.0.0", "secret") is None


def test_recommend_and_serve_answer_only_for_the_id_asked(tmp_path_factory, capsys):
    from starlette.testclient import TestClient

    from morec.recommend import RecommenderService
    from morec.serve import create_app

    run = sf.id_sasrec(tmp_path_factory)
    message = one_line_error(capsys, ["recommend", run, "--user", " u1"])
    assert "unknown user id ' u1'" in message and "' u1' is not 'u1'" in message
    assert main(["recommend", str(run), "--user", "u1", "--k", "3"]) == 0
    with TestClient(create_app(RecommenderService.from_run(run))) as client:
        assert client.post("/recommend", json={"user": "u1 ", "k": 3}).status_code == 422
        r = client.post("/recommend", json={"history": ["i1", " i2"], "k": 3})
        assert r.status_code == 422 and "unknown item id(s): ' i2'" in r.json()["detail"]
        assert client.post("/recommend", json={"user": "u1", "k": 3}).status_code == 200


def test_image_errors_name_only_what_the_client_sent(tmp_path):
    from morec.data.images import ImageDecoder, ImageUnreadable

    root = tmp_path / "srv" / "images"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "notes.txt").write_text("not an image")
    (root / "bad.lmdb").write_bytes(b"not a database" * 100)
    decode = ImageDecoder(root, 16, confine=True)
    for ref, sent in (("sub/notes.txt", "'sub/notes.txt'"), ("lmdb:bad.lmdb#k", "bad.lmdb")):
        with pytest.raises(ImageUnreadable) as caught:
            decode(ref)
        text = str(caught.value)
        assert str(tmp_path) not in text and os.path.realpath(tmp_path) not in text, text
        assert sent in text or "<image-root>" in text, text
