"""Nothing stale, nothing half-written, no raw tracebacks.

* caches are keyed by what they are computed from (texts, image files, weights);
* `data prepare` into an existing folder refuses without --overwrite, which replaces it whole;
* `train --out` onto an existing run refuses unless --resume / --overwrite, and a fresh run in a
  directory never leaves the old model or results beside its new config;
* temporary files of killed writers are removed on the next start; written files get the usual
  permissions; a hub name fails fast without network;
* the bad-input table below: every case is exit status 2 and one `morec: error:` line.
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from morec.cli import main

USERS, ITEMS = 40, 25


def write_raw(folder: Path, titles: dict[int, str] | None = None) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    rows = [f"u{u},i{rng.integers(ITEMS)},{t}" for u in range(USERS) for t in range(6)]
    (folder / "interactions.csv").write_text("user,item,timestamp\n" + "\n".join(rows) + "\n")
    titles = titles or {}
    (folder / "items.csv").write_text("item,title\n" + "".join(f"i{i},{titles.get(i, f'alpha beta {i}')}\n"
                                                              for i in range(ITEMS)))
    return folder


def one_error_line(capsys, argv: list[str]) -> str:
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("morec: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("safe")
    assert main(["data", "prepare", str(write_raw(root / "raw")), "--out", str(root / "prepared")]) == 0
    return root / "prepared"


@pytest.fixture(scope="module")
def id_run(prepared, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "id"
    assert main(["train", f"--data={prepared}", f"--out={out}", "--train.epochs=1", "--model.dim=16",
                 "--model.max_len=8", "--train.progress=false", "--train.threads=1"]) == 0
    return out


def copy_run(run: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(run, dest)
    return dest


# --- caches keyed by content --------------------------------------------------------------------

def test_token_and_feature_cache_keys_follow_the_texts(tmp_path):
    pytest.importorskip("transformers")
    import serving_fixtures as sf

    from morec.config import EncoderConfig, TextEncoderSettings
    from morec.data.content import item_tokens
    from morec.data.dataset import PreparedDataset
    from morec.encoders.text import build_text_encoder

    main(["data", "prepare", str(write_raw(tmp_path / "raw")), "--out", str(tmp_path / "p")])
    ds = PreparedDataset(tmp_path / "p")
    bert = sf.write_tiny_bert(tmp_path / "bert", {"alpha", "beta", "gamma"} | {str(i) for i in range(ITEMS)})
    cfg = EncoderConfig(kind="text", pretrained=str(bert), text=TextEncoderSettings(fields=["title"]), mode="frozen")
    before = build_text_encoder(cfg, ds, 8)
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(bert)
    old_ids = item_tokens(ds, tok, ["title"], 16).ids
    # the same folder, titles changed in place: new tokens, a new feature-cache key
    items = pd.read_parquet(tmp_path / "p" / "items.parquet")
    items["title"] = [f"gamma {i}" for i in range(len(items))]
    items.to_parquet(tmp_path / "p" / "items.parquet", index=False)
    ds2 = PreparedDataset(tmp_path / "p")
    assert not np.array_equal(item_tokens(ds2, tok, ["title"], 16).ids[1:, 1], old_ids[1:, 1])
    after = build_text_encoder(cfg, ds2, 8)
    assert after._cache_key and after._cache_key != before._cache_key
    assert len(list((tmp_path / "p" / "cache").glob("tokens-*.npz"))) >= 2
    # new weights in place (same path, same size): another key
    from safetensors.torch import load_file, save_file
    w = load_file(str(bert / "model.safetensors"))
    save_file({k: v + 1 if v.is_floating_point() else v for k, v in w.items()}, str(bert / "model.safetensors"))
    assert build_text_encoder(cfg, ds2, 8)._cache_key != after._cache_key


def test_image_store_sees_an_image_fixed_in_place(tmp_path):
    PIL = pytest.importorskip("PIL")  # noqa: F841
    from PIL import Image

    from morec.data.dataset import PreparedDataset
    from morec.data.formats import DataFormatError
    from morec.data.images import build_image_store

    raw = write_raw(tmp_path / "raw")
    (raw / "img").mkdir()
    for i in range(ITEMS):
        Image.new("RGB", (20, 20), (10 * i, 0, 0)).save(raw / "img" / f"i{i}.png")
    items = pd.read_csv(raw / "items.csv")
    items["image"] = [f"img/{x}.png" for x in items["item"]]
    items.to_csv(raw / "items.csv", index=False)
    main(["data", "prepare", str(raw), "--out", str(tmp_path / "p")])
    (raw / "img" / "i3.png").write_bytes(b"corrupt")  # broken after prepare checked it
    ds = PreparedDataset(tmp_path / "p")
    with pytest.raises(DataFormatError, match="i3.png"):
        build_image_store(ds, 16, "error", log=lambda s: None)
    Image.new("RGB", (20, 20), (1, 250, 3)).save(raw / "img" / "i3.png")  # fixed in place
    store = build_image_store(ds, 16, "error", log=lambda s: None)
    row = int(np.flatnonzero(ds.items["item"].astype(str).to_numpy() == "i3")[0]) + 1
    assert store.pixels[row, 8, 8, 1] > 200


# --- prepare into an existing folder ----------------------------------------------------------------

def test_prepare_refuses_an_existing_folder_and_overwrite_replaces_it_whole(tmp_path, capsys):
    raw = write_raw(tmp_path / "raw")
    out = tmp_path / "p"
    assert main(["data", "prepare", str(raw), "--out", str(out)]) == 0
    (out / "cache").mkdir(exist_ok=True)
    (out / "cache" / "tokens-old.npz").write_bytes(b"stale")
    capsys.readouterr()
    err = one_error_line(capsys, ["data", "prepare", str(raw), "--out", str(out)])
    assert str(out) in err and "--overwrite" in err
    write_raw(raw, titles={i: f"changed {i}" for i in range(ITEMS)})
    assert main(["data", "prepare", str(raw), "--out", str(out), "--overwrite"]) == 0
    assert not (out / "cache" / "tokens-old.npz").exists()  # the old caches went with the old folder
    assert pd.read_parquet(out / "items.parquet")["title"].str.startswith("changed").all()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging folder left
    (tmp_path / "file").write_text("x")
    assert "is a file" in one_error_line(capsys, ["data", "prepare", str(raw), "--out", str(tmp_path / "file")])


# --- train --out onto an existing run ----------------------------------------------------------------

def test_train_refuses_an_existing_run_unless_resume_or_overwrite(prepared, id_run, tmp_path, capsys):
    run = copy_run(id_run, tmp_path / "run")
    args = ["train", f"--data={prepared}", f"--out={run}", "--train.epochs=1", "--model.dim=16", "--model.max_len=8",
            "--train.progress=false", "--train.threads=1"]
    capsys.readouterr()
    err = one_error_line(capsys, args)
    assert "already holds a run" in err and "--resume" in err and "--overwrite" in err
    old = (run / "model.safetensors").stat().st_ino
    (run / "added_items.safetensors").write_bytes(b"old")
    assert main(args + ["--overwrite", "--model.dim=8"]) == 0
    assert not (run / "added_items.safetensors").exists() and (run / "model.safetensors").stat().st_ino != old
    results = json.loads((run / "results.json").read_text())
    assert results["config"]["model"]["dim"] == 8
    assert "one of them" in one_error_line(capsys, ["train", "--resume", str(run), "--overwrite"])


def test_a_fresh_run_in_an_old_directory_never_shows_the_old_model(prepared, id_run, tmp_path):
    """The Python API (sweeps restart runs this way) clears the old best model and results at the start."""
    from morec.config import load_config
    from morec.train import Trainer

    run = copy_run(id_run, tmp_path / "run")
    cfg = load_config(None, [f"--data={prepared}", f"--out={run}", "--train.epochs=1", "--model.dim=16",
                             "--model.max_len=8", "--train.progress=false", "--train.threads=1"])

    def interrupt(epoch, metrics):
        raise KeyboardInterrupt

    seen = {}

    def stop_at_first_batch(*a, **k):
        seen["model"] = (run / "model.safetensors").exists()
        seen["results"] = (run / "results.json").exists()
        raise KeyboardInterrupt

    trainer = Trainer(cfg, log=lambda s: None)
    trainer._run_epoch = stop_at_first_batch
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert seen == {"model": False, "results": False}


# --- temporary files, permissions, hub offline --------------------------------------------------------

def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_temporary_files_of_killed_writers_are_removed_on_the_next_start(prepared, id_run, tmp_path):
    from morec.data.dataset import PreparedDataset
    from morec.recommend import RecommenderService

    run = copy_run(id_run, tmp_path / "run")
    dead = _dead_pid()
    stale = run / f".model.safetensors.{dead}.0a1b2c3d.tmp"
    live = run / f".results.json.{os.getpid()}.0a1b2c3d.tmp"  # a writer still running: left alone
    stale.write_bytes(b"")
    live.write_bytes(b"")
    RecommenderService.from_run(run)
    assert not stale.exists() and live.exists()
    cache = PreparedDataset(prepared).cache_dir
    stale_cache = cache / f".tokens-x.npz.{dead}.deadbeef.tmp.npz"
    stale_cache.write_bytes(b"")
    PreparedDataset(prepared).cache_dir
    assert not stale_cache.exists()


def test_weight_files_have_the_usual_permissions(id_run, tmp_path):
    from morec.checkpoint import atomic_save_tensors

    mask = os.umask(0o022)
    try:
        atomic_save_tensors({"w": torch.zeros(2)}, tmp_path / "w.safetensors")
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "w.safetensors").stat().st_mode) == 0o644
    assert stat.S_IMODE((id_run / "model.safetensors").stat().st_mode) == 0o666 & ~mask


def test_an_unreachable_hub_name_fails_fast(monkeypatch):
    pytest.importorskip("transformers")
    from morec.config import ConfigError
    from morec.encoders import hf, text

    monkeypatch.setattr(hf, "_HUB_REACHABLE", {})
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match="cannot be reached from here"):
        text.load_text_model("some-org/some-model-that-is-not-cached")
    assert time.perf_counter() - t0 < 10


# --- the bad-input table --------------------------------------------------------------------------------
# (what a person did, the argv builder, a fragment the one error line must hold)

def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def _case(name, tmp_path, prepared, run, monkeypatch):
    base = ["--train.epochs=1", "--model.dim=16", "--model.max_len=8", "--train.progress=false", "--train.threads=1"]
    if name == "truncated model.safetensors":
        _truncate(run / "model.safetensors")
        return ["evaluate", str(run)], "model.safetensors is not a readable safetensors file"
    if name == "model.safetensors not safetensors":
        (run / "model.safetensors").write_text("hello")
        return ["recommend", str(run), "--user", "u1"], "model.safetensors is not a readable safetensors file"
    if name == "truncated checkpoint":
        (tensors,) = run.glob("checkpoint-*.safetensors")
        _truncate(tensors)
        return ["train", "--resume", str(run)], "is not a readable safetensors file"
    if name == "damaged added_items.safetensors":
        (run / "added_items.safetensors").write_bytes(b"\x00" * 40)
        return ["recommend", str(run), "--user", "u1"], "added_items.safetensors is damaged"
    if name == "garbage config.yaml":
        (run / "config.yaml").write_bytes(bytes(range(256)))
        return ["evaluate", str(run)], "config.yaml is not UTF-8 text"
    if name == "config sizes do not match the weights":
        text = (run / "config.yaml").read_text().replace("dim: 16", "dim: 24")
        (run / "config.yaml").write_text(text)
        return ["evaluate", str(run)], "does not fit the model that"
    if name == "YAML syntax error":
        (tmp_path / "bad.yaml").write_text("train:\n  lr: [1\n")
        return ["train", "--config", str(tmp_path / "bad.yaml")], "not valid YAML"
    if name == "--config is a folder":
        return ["train", "--config", str(tmp_path)], "is a folder"
    if name == "evaluate on a file":
        return ["evaluate", str(run / "results.json")], "results.json"
    if name == "export --out onto a file":
        (tmp_path / "taken").write_text("x")
        return ["export", str(run), "--out", str(tmp_path / "taken")], "taken"
    if name == "prepare --out onto a file":
        (tmp_path / "taken").write_text("x")
        return ["data", "prepare", str(prepared), "--out", str(tmp_path / "taken")], "is a file"
    if name == "cuda without a GPU":
        if torch.cuda.is_available():
            pytest.skip("this machine has a GPU")
        return ["train", f"--data={prepared}", f"--out={tmp_path / 'new'}", *base, "--train.device=cuda"], \
            "no usable CUDA GPU"
    if name == "recommend --device cuda without a GPU":
        if torch.cuda.is_available():
            pytest.skip("this machine has a GPU")
        return ["recommend", str(run), "--user", "u1", "--device", "cuda"], "no usable CUDA GPU"
    if name == "learning rate .inf":
        return ["train", f"--data={prepared}", f"--out={tmp_path / 'new'}", *base, "--train.lr=.inf"], \
            "train.lr must be a finite number"
    if name == "train --out onto a run":
        return ["train", f"--data={prepared}", f"--out={run}", *base], "already holds a run"
    if name == "prepare into an existing folder":
        return ["data", "prepare", str(prepared), "--out", str(prepared)], "already exists"
    if name == "timestamp beyond int64":
        raw = write_raw(tmp_path / "raw")
        lines = (raw / "interactions.csv").read_text().splitlines()
        lines[5] = lines[5].rsplit(",", 1)[0] + ",9223372036854775808"
        (raw / "interactions.csv").write_text("\n".join(lines) + "\n")
        return ["data", "prepare", str(raw), "--out", str(tmp_path / "p")], "line 6: timestamp"
    if name == "ragged row":
        raw = write_raw(tmp_path / "raw")
        (raw / "items.csv").write_text("item,title\ni1,ok\ni2,zorvel,extra,fields\n")
        return ["data", "prepare", str(raw), "--out", str(tmp_path / "p")], "line 3: 4 fields"
    if name == "serve with a missing --image-root":
        return ["serve", str(run), "--image-root", str(tmp_path / "nope")], "no such folder"
    if name == "evaluate a missing directory":
        return ["evaluate", str(tmp_path / "nope")], "nope"
    if name == "hub name without network":
        pytest.importorskip("transformers")
        from morec.encoders import hf as text_mod
        monkeypatch.setattr(text_mod, "_HUB_REACHABLE", {})
        monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
        return ["train", f"--data={prepared}", f"--out={tmp_path / 'new'}", *base, "--model.encoder.kind=text",
                "--model.encoder.pretrained=some-org/not-cached"], "cannot be reached from here"
    raise AssertionError(name)


BAD_INPUTS = ["truncated model.safetensors", "model.safetensors not safetensors", "truncated checkpoint",
              "damaged added_items.safetensors", "garbage config.yaml", "config sizes do not match the weights",
              "YAML syntax error", "--config is a folder", "evaluate on a file", "export --out onto a file",
              "prepare --out onto a file", "cuda without a GPU", "recommend --device cuda without a GPU",
              "learning rate .inf", "train --out onto a run", "prepare into an existing folder",
              "timestamp beyond int64", "ragged row", "serve with a missing --image-root",
              "evaluate a missing directory", "hub name without network"]


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_input_ends_in_one_clear_error_line(name, prepared, id_run, tmp_path, capsys, monkeypatch):
    run = copy_run(id_run, tmp_path / "run")
    argv, fragment = _case(name, tmp_path, prepared, run, monkeypatch)
    capsys.readouterr()
    err = one_error_line(capsys, argv)
    assert fragment in err, err


def test_debug_shows_the_traceback(prepared, id_run, tmp_path):
    run = copy_run(id_run, tmp_path / "run")
    _truncate(run / "model.safetensors")
    from morec.checkpoint import CheckpointError

    with pytest.raises(CheckpointError):
        main(["--debug", "evaluate", str(run)])
