"""The same loop under torchrun (2 CPU processes, gloo), with gradient accumulation and mixed precision."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from morec.config import load_config
from morec.data.dataset import PreparedDataset
from morec.distributed import DistInfo, shard_batch, shard_slice
from morec.data.batches import Batch
from morec.train import Trainer, train

from metric_reference import plain_metrics

REPO = Path(__file__).resolve().parents[1]
# dropout 0: each process draws its own dropout masks, so only without dropout is the math the same
ARGS = ["--model.dim=32", "--model.dropout=0", "--train.batch_size=64", "--train.threads=1", "--train.progress=false",
        "--train.device=cpu", "--train.patience=10"]


def quiet(_):
    pass


def torchrun(n: int, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}",
           "-m", "morec", "train", *args]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_two_processes_match_one(synth_prepared, tmp_path):
    """2 ranks x 32 rows = the single process's 64-row batch; the run is also cut after epoch 1 and resumed
    under torchrun (checkpoint with both ranks' RNG states, every 5 steps too)."""
    single = train(load_config(None, [f"--data={synth_prepared}", f"--out={tmp_path / 'one'}", *ARGS, "--train.epochs=2"]),
                   PreparedDataset(synth_prepared), log=quiet)
    run = tmp_path / "two"
    first = torchrun(2, f"--data={synth_prepared}", f"--out={run}", *ARGS, "--train.epochs=1",
                     "--train.checkpoint_every_steps=5", "--json")
    assert first.stdout.count(" s/epoch") == 1, "only rank 0 reports"  # (its capped note names the best epoch too)
    torchrun(2, "--resume", str(run), "--train.epochs=2", "--json")
    results = json.loads((run / "results.json").read_text())
    assert results["processes"] == 2 and results["epochs_run"] == 2
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2, "only rank 0 writes"
    for split in ("valid", "test"):
        for k, v in single[split].items():
            assert results[split][k] == pytest.approx(v, abs=2e-3), (split, k, results[split], single[split])
    ckpt = json.loads((run / "checkpoint.json").read_text())
    assert ckpt["world_size"] == 2


def test_shards_cover_the_batch_and_weights_average_to_the_global_mean():
    targets = torch.tensor([[1, 2, 0], [0, 0, 3], [4, 0, 0], [5, 6, 7], [8, 0, 0]])
    batch = Batch(torch.arange(5), targets.clone(), targets, None)
    parts = [shard_batch(batch, DistInfo(rank=r, world_size=2, backend="gloo")) for r in range(2)]
    assert torch.equal(torch.cat([p.users for p, _ in parts]), batch.users)
    n = [(p.targets > 0).sum().item() for p, _ in parts]
    assert sum(w / 2 for _, w in parts) == pytest.approx(1.0)
    assert [w for _, w in parts] == pytest.approx([2 * n[0] / 8, 2 * n[1] / 8])
    # more ranks than rows: the empty rank still runs (its first row), with weight 0
    lonely = shard_batch(Batch(torch.arange(1), targets[:1], targets[:1], None), DistInfo(rank=1, world_size=2, backend="gloo"))
    assert lonely[1] == 0.0 and len(lonely[0].users) == 1
    assert [shard_slice(5, DistInfo(rank=r, world_size=3, backend="gloo")) for r in range(3)] == [slice(0, 2), slice(2, 4), slice(4, 5)]


def config(data, out, *extra):
    return load_config(None, [f"--data={data}", f"--out={out}", *ARGS, "--train.epochs=2", *extra])


def test_gradient_accumulation_steps_once_per_group(synth_prepared, tmp_path):
    ds = PreparedDataset(synth_prepared)
    trainer = Trainer(config(synth_prepared, tmp_path / "acc", "--train.accumulate=3", "--train.batch_size=32"), ds, log=quiet)
    results = trainer.fit()
    n = len(trainer.batches)
    assert trainer.state.step == 2 * math.ceil(n / 3)
    # the reported metrics are the plain means over the saved ranks of the chosen model (rank 0: not scored)
    saved = np.load(tmp_path / "acc" / "ranks.npz")
    for split in ("valid", "test"):
        want = plain_metrics(saved[split], 10)
        assert (saved[split] > 0).any() and results[split]["ndcg@10"] == pytest.approx(want["ndcg@10"], rel=1e-6), split
        assert results[split]["hr@10"] == pytest.approx(want["hr@10"], rel=1e-6)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_and_resumes_exactly(synth_prepared, tmp_path, monkeypatch, precision):
    ds = PreparedDataset(synth_prepared)
    extra = [f"--train.precision={precision}", "--train.checkpoint_every_steps=4", "--model.dropout=0.1"]
    ref = train(config(synth_prepared, tmp_path / "ref", *extra), ds, log=quiet)
    assert all(math.isfinite(v) for v in ref["test"].values())
    lines = [json.loads(x) for x in (tmp_path / "ref" / "metrics.jsonl").read_text().splitlines()]
    assert lines[1]["loss"] < lines[0]["loss"]

    original, calls = Trainer.save_checkpoint, []

    def save_then_die(self):
        original(self)
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(config(synth_prepared, tmp_path / "cut", *extra), ds, log=quiet)
    monkeypatch.setattr(Trainer, "save_checkpoint", original)
    meta = json.loads((tmp_path / "cut" / "checkpoint.json").read_text())
    assert (meta["scaler"] is not None) == (precision == "fp16")
    resumed = Trainer.resume(tmp_path / "cut", ds, log=quiet)
    assert resumed["test"] == ref["test"] and resumed["valid"] == ref["valid"]


def _inbatch_rank(rank: int, world: int, data: str, out: str, init: str) -> None:
    """One process of the equality test: the DDP-wrapped in-batch loss of its rows, and the gradients."""
    import numpy as np
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from morec.data.batches import make_batches
    from morec.distributed import CandidateGather, DistInfo, shard_batch
    from morec.losses import LossContext
    from morec.model import build_model
    from morec.train import LossModule

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    info = DistInfo(rank, world, rank, "gloo")
    cfg = config(data, out, "--train.loss=inbatch")
    ds = PreparedDataset(data)
    torch.manual_seed(0)
    model = build_model(cfg.model, ds)
    ctx = LossContext.build(ds, cfg.train)
    ctx.gather = CandidateGather(info, torch.device("cpu"))
    module = DDP(LossModule(model, "inbatch", ctx))
    batch = next(make_batches(ds, model.backbone, cfg.model.max_len, 64, 0, loss="inbatch").epoch(np.random.default_rng(7)))
    local, weight = shard_batch(batch, info)
    loss = module(local) * weight
    loss.backward()  # DDP averages the gradients over the processes
    total = loss.detach().clone()
    dist.all_reduce(total)
    if rank == 0:
        torch.save({"loss": total / world, "grads": {k: p.grad for k, p in model.named_parameters()}}, f"{out}/ddp.pt")
    dist.destroy_process_group()


def test_inbatch_softmax_on_two_processes_equals_one_process(synth_prepared, tmp_path):
    """2 gloo processes with 32 rows each compute the loss and gradients of one process with the 64 rows:
    the candidates (and with them logQ and own-item masks) come from both processes."""
    import numpy as np
    import torch.multiprocessing as mp

    from morec.data.batches import make_batches
    from morec.losses import LossContext, compute_loss
    from morec.model import build_model

    mp.spawn(_inbatch_rank, args=(2, str(synth_prepared), str(tmp_path), f"file://{tmp_path / 'rendezvous'}"),
             nprocs=2, join=True)
    ddp = torch.load(tmp_path / "ddp.pt")

    cfg = config(synth_prepared, tmp_path, "--train.loss=inbatch")
    ds = PreparedDataset(synth_prepared)
    torch.manual_seed(0)
    model = build_model(cfg.model, ds)
    batch = next(make_batches(ds, model.backbone, cfg.model.max_len, 64, 0, loss="inbatch").epoch(np.random.default_rng(7)))
    halves = [batch.targets[:32], batch.targets[32:]]
    assert not torch.equal(*(torch.unique(h[h > 0]) for h in halves)), "each process has candidates the other lacks"
    loss = compute_loss(model, batch, "inbatch", LossContext.build(ds, cfg.train))
    loss.backward()
    assert ddp["loss"].item() == pytest.approx(loss.item(), rel=1e-5)
    for name, p in model.named_parameters():
        assert torch.allclose(ddp["grads"][name], p.grad, rtol=1e-4, atol=1e-7), name
