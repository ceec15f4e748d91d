"""The image feature pass (frozen / side / top modes' work done once over every item): run before epoch 0 with a
progress bar, timed apart from the epochs, in steps of bounded size; and the image store built and read with
bounded memory whatever its size."""
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("timm")
pytest.importorskip("transformers")
from transformers import ResNetConfig, ResNetModel  # noqa: E402

import morec.encoders.pass_memory as pass_memory  # noqa: E402
from morec.config import load_config  # noqa: E402
from morec.data.formats.registry import read_raw  # noqa: E402
from morec.data.images import ImageStore  # noqa: E402
from morec.data.prepare import prepare  # noqa: E402
from morec.data.synthetic import SynthConfig, write_synthetic  # noqa: E402
from morec.encoders.vision import VisionEncoder  # noqa: E402
from morec.train import Trainer  # noqa: E402

QUIET = lambda s: None  # noqa: E731
SYNTH = SynthConfig(n_users=120, n_items=60, n_topics=4, seq_len_min=6, seq_len_max=10, image_size=32, seed=5)
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("pass")
    prepare(read_raw(write_synthetic(SYNTH, root / "raw")), root / "prepared", log=QUIET)
    model = root / "resnet"
    ResNetModel(ResNetConfig(num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
                             layer_type="basic")).save_pretrained(model)
    return {"data": root / "prepared", "model": model}


def trainer(world, out, *extra) -> Trainer:
    cfg = load_config(None, [f"--data={world['data']}", f"--out={out}", "--model.dim=16", "--model.max_len=10",
                             "--train.epochs=2", "--train.batch_size=64", "--train.threads=1",
                             "--model.encoder.kind=vision", "--model.encoder.vision.image_size=32",
                             "--model.encoder.disk_cache=false", f"--model.encoder.pretrained={world['model']}", *extra])
    return Trainer(cfg, log=QUIET)


def record_passes(monkeypatch) -> list:
    """Events in order: ('pass', n images) for every step of the pass over every item, ('epoch', k) per epoch."""
    events = []
    gather = ImageStore.gather
    monkeypatch.setattr(ImageStore, "gather", lambda self, items: (events.append(("pass", len(items))),
                                                                   gather(self, items))[1])
    train_epoch = Trainer.train_epoch
    monkeypatch.setattr(Trainer, "train_epoch", lambda self, epoch: (events.append(("epoch", epoch)),
                                                                     train_epoch(self, epoch))[1])
    return events


@pytest.mark.parametrize("mode", ["frozen", "side", "top"])
def test_the_pass_runs_before_epoch_0_with_a_progress_bar(world, tmp_path, monkeypatch, capfd, mode):
    events = record_passes(monkeypatch)
    t = trainer(world, tmp_path / mode, f"--model.encoder.mode={mode}", "--model.encoder.train_layers=1")
    lines = []
    t.log = lines.append
    t.fit()
    first_epoch = events.index(("epoch", 0))
    assert sum(n for what, n in events[:first_epoch] if what == "pass") >= 60  # every item, before epoch 0
    what = {"frozen": "features", "side": "layer states", "top": "lower layers"}[mode]
    assert any(line.startswith(f"vision {what} of 60 items computed once in") for line in lines), lines
    err = capfd.readouterr().err
    assert f"vision {what} (once)" in err and "/60" in err  # tqdm's bar, counted in items


def test_epoch_seconds_exclude_the_pass(world, tmp_path, monkeypatch):
    """A pass made slow (0.5 s a step) shows in feature_pass_seconds, not in seconds_per_epoch."""
    forward_full = VisionEncoder.forward_full
    monkeypatch.setattr(VisionEncoder, "forward_full", lambda self, x: (time.sleep(0.5), forward_full(self, x))[1])
    monkeypatch.setattr(VisionEncoder, "cache_groups", lambda self: torch.arange(1, self.n_rows()).split(30))
    t = trainer(world, tmp_path / "run", "--model.encoder.mode=frozen", "--train.progress=false")
    results = t.fit()
    assert results["feature_pass_seconds"] >= 1.0
    assert results["seconds_per_epoch"] * 2 < results["feature_pass_seconds"]  # epoch 0 would hold 1 s of it
    again = json.loads((tmp_path / "run" / "results.json").read_text())
    assert again["feature_pass_seconds"] == results["feature_pass_seconds"]


def test_nothing_to_compute_reports_no_pass(world, tmp_path):
    results = trainer(world, tmp_path / "e2e", "--model.encoder.mode=e2e", "--train.epochs=1").fit()
    assert results["feature_pass_seconds"] == 0


def test_the_pass_runs_in_steps_within_the_memory_budget(world, tmp_path, monkeypatch):
    """model.encoder.batch_size=256 would run all 60 images at once; on a CPU the step is sized by the model's
    largest activation so that ACTIVATION_FACTOR x it x step <= PASS_MEMORY."""
    events = record_passes(monkeypatch)
    t = trainer(world, tmp_path / "r", "--model.encoder.mode=frozen", "--train.progress=false")
    enc = t.model.item_encoder
    probe = torch.zeros(1, 3, 32, 32)
    per_image = pass_memory.ACTIVATION_FACTOR * pass_memory.largest_activation(enc._vm.model, lambda: enc.forward_full(probe))
    assert per_image >= pass_memory.ACTIVATION_FACTOR * 8 * 16 * 16 * 4  # the stem's (8, 16, 16) float output
    monkeypatch.setattr(pass_memory, "PASS_MEMORY", 7 * per_image)
    t.fit()
    steps = [n for what, n in events[:events.index(("epoch", 0))] if what == "pass"]
    assert sum(steps) == 60 and max(steps) == 7 and len(steps) == 9, steps


def test_the_probe_leaves_train_flags_as_they_were():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Dropout())
    model.train()
    model[2].eval()
    before = model[1].running_mean.clone()
    assert pass_memory.largest_activation(model, lambda: model(torch.ones(1, 3, 8, 8))) == 4 * 6 * 6 * 4
    assert [m.training for m in model.modules()] == [True, True, True, False]
    assert torch.equal(model[1].running_mean, before)
    assert pass_memory.pass_chunk(model, lambda: model(torch.ones(1, 3, 8, 8)), 256, torch.device("cpu"),
                                  budget=pass_memory.ACTIVATION_FACTOR * 576 * 5) == 5


STORE_SCRIPT = textwrap.dedent("""
    import sys, types
    from pathlib import Path
    import numpy as np, pandas as pd
    from PIL import Image
    from morec.data.images import build_image_store
    root, n, size = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / "a.png")
    (root / "cache").mkdir()
    items = pd.DataFrame({"item": [f"i{k}" for k in range(n)], "image": ["a.png"] * n})
    ds = types.SimpleNamespace(items=items, manifest={"image_root": str(root)}, cache_dir=root / "cache", name="big",
                               path=root)
    # this process's peak resident memory (VmHWM starts anew at exec; ru_maxrss would carry the parent's over)
    kib = lambda: int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
    base = kib()
    store = build_image_store(ds, size, log=lambda s: None)
    built = kib()
    for start in range(1, n + 1, 100):
        assert store.gather(np.arange(start, min(start + 100, n + 1))).shape[1:] == (size, size, 3)
    print(built - base, kib() - base, store.path.stat().st_size // 1024)
""")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak memory from Linux's /proc")
def test_the_image_store_is_built_and_read_with_bounded_memory(tmp_path):
    """3,000 images of 96 px are an 81 MiB store; building it and reading every row must not hold it in memory
    (a store written or read through a memory map keeps every page it touched resident)."""
    out = subprocess.run([sys.executable, "-c", STORE_SCRIPT, str(tmp_path), "3000", "96"], capture_output=True,
                         text=True, check=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    built, read, store = map(int, out.stdout.split())
    assert store > 80_000
    assert built < store / 3 and read < store / 3, (built, read, store)
