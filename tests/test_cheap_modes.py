"""The cheaper MoRec modes: ``side`` (a side network over the frozen encoder's cached per-layer states) and
``lora`` (peft low-rank updates on the top layers, lower outputs cached): what they train, that they learn,
that a new item added from its content gets the vector the trained model computes, and exact resume."""
import json

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("peft")

from morec.catalog import ContentEncoder  # noqa: E402
from morec.config import ConfigError, load_config  # noqa: E402
from morec.data.dataset import PreparedDataset  # noqa: E402
from morec.data.prepare import prepare  # noqa: E402
from morec.encoders import build_item_encoder  # noqa: E402
from morec.encoders.text import load_text_model, pool  # noqa: E402
from morec.evaluate import metrics_from_ranks, most_popular_ranks  # noqa: E402
from morec.runs import load_run  # noqa: E402
from morec.train import Trainer  # noqa: E402
from test_text_encoder import QUIET, enc_cfg, world  # noqa: E402,F401 (world: the text tests' data and tiny BERT)

LORA = ["--model.encoder.mode=lora", "--model.encoder.train_layers=2"]
SIDE = ["--model.encoder.mode=side"]
# the learning test's arms and their shared budget (benchmarks/measure_test_bars.py trains the same over seeds)
MODES = [("ts", ["--model.encoder.mode=frozen"]), ("side", SIDE), ("lora", LORA + ["--model.encoder.lr=1e-3"])]
BUDGET = ["--train.epochs=8", "--train.patience=100", "--model.encoder.disk_cache=false"]


def run_config(world, out, *extra, model=None):
    return load_config(None, [f"--data={world['data']}", f"--out={out}", "--model.dim=32", "--model.max_len=20",
                              "--train.progress=false", "--train.batch_size=64", "--model.encoder.kind=text",
                              f"--model.encoder.pretrained={model or world['bert']}", *extra])


# --- what each mode trains -----------------------------------------------------------------

def test_side_states_are_the_frozen_encoders_pooled_layers_and_only_the_side_network_trains(world):
    ds = world["ds"]
    enc = build_item_encoder(enc_cfg(world["bert"], mode="side", pooling="mean", disk_cache=False), ds, 16)
    assert enc.encoder_parameters() == []
    assert all(k.startswith(("side.", "head.")) for k in enc.state_dict())  # the encoder is never saved or optimized
    states = enc.layer_states()
    model, _, _ = load_text_model(str(world["bert"]))
    items = torch.arange(1, ds.n_items + 1)
    ids = enc.token_ids[items]
    lengths = enc.token_lengths[items]
    t = int(lengths.max())
    mask = torch.arange(t) < lengths[:, None]
    with torch.no_grad():
        hidden = model.eval()(input_ids=ids[:, :t], attention_mask=mask, output_hidden_states=True).hidden_states
    want = torch.cat([pool(h, mask, "mean") for h in hidden], dim=-1)
    assert len(hidden) == 4 and states.shape == (ds.n_items + 1, 4 * 32)
    assert torch.allclose(states[1:], want, atol=1e-5)
    # the states come back from the dataset cache without the encoder
    cached = build_item_encoder(enc_cfg(world["bert"], mode="side", pooling="mean"), ds, 16)
    first = cached.layer_states()
    again = build_item_encoder(enc_cfg(world["bert"], mode="side", pooling="mean"), ds, 16)
    again._frozen.clear()
    assert torch.equal(again.layer_states(), first)


def test_lora_trains_only_the_low_rank_matrices_of_the_top_layers_and_starts_as_the_encoder(world):
    ds = world["ds"]
    torch.manual_seed(0)
    top = build_item_encoder(enc_cfg(world["bert"], mode="top", train_layers=2, disk_cache=False), ds, 16).eval()
    torch.manual_seed(0)
    lora = build_item_encoder(enc_cfg(world["bert"], mode="lora", train_layers=2, lora_rank=4, disk_cache=False),
                              ds, 16).eval()
    names = [n for n, p in lora.named_parameters() if p.requires_grad and not n.startswith("head.")]
    # 2 layers x (query, value) x (A, B): peft's BERT default targets
    assert len(names) == 8 and all("lora_" in n for n in names), names
    assert {p.shape[0] for n, p in lora.named_parameters() if "lora_A" in n} == {4}
    assert sum(p.numel() for p in lora.encoder_parameters()) == 8 * 4 * 32
    items = torch.arange(1, 30)
    with torch.no_grad():
        assert torch.allclose(lora(items), top(items), atol=1e-5)  # B = 0 at the start: the pretrained encoder
    frozen = {n: p.detach().clone() for n, p in lora.named_parameters() if not p.requires_grad}
    opt = torch.optim.Adam([p for p in lora.parameters() if p.requires_grad], lr=1e-2)
    lora.train()
    for _ in range(2):
        opt.zero_grad()
        lora(items).pow(2).sum().backward()
        opt.step()
    assert all(torch.equal(p, frozen[n]) for n, p in lora.named_parameters() if not p.requires_grad)
    with torch.no_grad():
        assert not torch.allclose(lora.eval()(items), top(items), atol=1e-4)  # the updates changed the vectors


def test_side_network_reads_every_layer():
    """Moving any one layer's pooled state moves the side network's output (a network that passed only the top
    layer through would ignore the lower ones)."""
    from morec.encoders.side import SideNetwork

    torch.manual_seed(0)
    net, states = SideNetwork([8, 6, 8], 16).eval(), torch.randn(5, 22)
    for start, width in ((0, 8), (8, 6), (14, 8)):
        moved = states.clone()
        moved[:, start:start + width] += torch.randn(5, width)  # (a constant shift would vanish in LayerNorm)
        assert (net(moved) - net(states)).abs().max() > 1e-3, (start, width)


def test_side_dropout_acts_in_training_only_and_is_checked():
    from morec.encoders.side import SideNetwork

    torch.manual_seed(0)
    net, states = SideNetwork([8, 8, 8], 16, dropout=0.5), torch.randn(5, 24)
    assert not torch.equal(net.train()(states), net(states))  # two training passes drop different units
    assert torch.equal(net.eval()(states), net(states))
    with pytest.raises(ConfigError, match="side_dropout"):
        enc_cfg("x", mode="side", side_dropout=1.0)


def test_lora_targets_that_match_nothing_are_a_clear_error(world):
    with pytest.raises(ConfigError, match="lora_targets"):
        build_item_encoder(enc_cfg(world["bert"], mode="lora", train_layers=1, lora_targets=["nope"],
                                   disk_cache=False), world["ds"], 16)
    with pytest.raises(ConfigError, match="train_layers > 0"):
        enc_cfg(world["bert"], mode="lora")


# --- they learn ----------------------------------------------------------------------------

SEEDS = (42, 1, 2)  # 42: the training default


@pytest.fixture(scope="module")
def trained(world):
    """TS, side and lora on MiniLM (titles share topic words and meaning), same budget, a few epochs, per seed."""
    runs = {}
    for seed in SEEDS:
        for name, extra in MODES:
            cfg = run_config(world, world["root"] / f"run-{name}-{seed}", *BUDGET, f"--train.seed={seed}", *extra,
                             model="minilm")
            runs[name, seed] = Trainer(cfg, world["ds"], log=QUIET).fit()["test"]["ndcg@10"]
    return runs


@pytest.mark.integration
def test_side_and_lora_learn_far_above_most_popular_and_beat_two_stage(world, trained):
    """The synthetic titles reward adapting the encoder: both adapted modes beat the frozen features. Measured over
    seeds 42, 1, 2, 3 (benchmarks/results/test_bars.jsonl), test NDCG@10 / most-popular's: TS 2.02-2.11, side
    2.10-2.32, lora 2.14-2.31; the margin over TS seed by seed: side +8.6%, +12.1%, -0.7%, +11.1%, lora +7.5%,
    +4.0%, +9.4%, +5.8%. One seed can lose to TS, so the margin is held on the mean over three seeds (side
    +6.7%, lora +7.0% on these). Checked on broken variants (benchmarks/results/broken_variants.log): LoRA
    updates that never train fall below TS (mean margin -0.038), a side network that never trains fails the
    1.8x bar. A side network that passes only the top layer through still beats TS here:
    test_side_network_reads_every_layer catches it."""
    popular = metrics_from_ranks(most_popular_ranks(world["ds"], "test"), [10])["ndcg@10"]
    for mode in ("ts", "side", "lora"):
        assert all(trained[mode, s] > 1.8 * popular for s in SEEDS), (mode, trained, popular)
    for mode in ("side", "lora"):
        margin = np.mean([trained[mode, s] / trained["ts", s] - 1 for s in SEEDS])
        assert margin > 0.03, (mode, margin, trained)


# --- new items through the same path ------------------------------------------------------

@pytest.mark.parametrize("mode", [SIDE, LORA])
def test_catalog_add_gives_the_vectors_the_trained_model_computes(world, tmp_path, mode):
    ds = world["ds"]
    cfg = run_config(world, tmp_path / "run", "--train.epochs=2", "--model.encoder.pooling=mean",
                     "--model.encoder.lr=1e-2", *mode)
    Trainer(cfg, ds, log=QUIET).fit()
    cfg, model, ds = load_run(tmp_path / "run")
    enc = model.item_encoder.eval()
    rows = ds.items.iloc[[0, 5, 40, 100]].copy()  # items as a new catalogue row would give them
    rows["item"] = [f"copy-{i}" for i in range(len(rows))]
    with torch.no_grad():
        want = enc(torch.tensor([1, 6, 41, 101]))
    got = ContentEncoder(enc, cfg)(rows)
    assert got.shape == want.shape and torch.allclose(got, want, atol=1e-4), (got - want).abs().max()
    # and they are the trained vectors, not the untrained ones
    fresh = Trainer(run_config(world, tmp_path / "fresh", "--model.encoder.pooling=mean", *mode), ds,
                    log=QUIET).model.item_encoder.eval()
    with torch.no_grad():
        assert not torch.allclose(fresh(torch.tensor([1, 6, 41, 101])), want, atol=1e-3)


# --- exact resume ---------------------------------------------------------------------------

class Interrupted(Exception):
    pass


def records(run):
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


@pytest.mark.parametrize("mode", [SIDE, LORA])
def test_interrupted_run_resumes_exactly(world, tmp_path, monkeypatch, mode):
    ds = world["ds"]
    extra = ["--train.epochs=2", "--train.checkpoint_every_steps=3", "--model.encoder.pooling=mean", *mode]
    ref = Trainer(run_config(world, tmp_path / "ref", *extra), ds, log=QUIET).fit()
    original, calls = Trainer.save_checkpoint, {"n": 0}

    def save_then_die(self):
        original(self)
        calls["n"] += 1
        if calls["n"] == 4:  # mid-epoch 1
            raise Interrupted

    monkeypatch.setattr(Trainer, "save_checkpoint", save_then_die)
    with pytest.raises(Interrupted):
        Trainer(run_config(world, tmp_path / "run", *extra), ds, log=QUIET).fit()
    monkeypatch.setattr(Trainer, "save_checkpoint", original)
    resumed = Trainer.resume(tmp_path / "run", ds, log=QUIET)
    assert resumed["test"] == ref["test"] and resumed["valid"] == ref["valid"]
    assert records(tmp_path / "run") == records(tmp_path / "ref")


# --- the same modes for an image encoder ---------------------------------------------------

@pytest.fixture(scope="module")
def images(tmp_path_factory):
    pytest.importorskip("timm")
    from test_vision_encoder import SYNTH, write_tiny_resnet

    from morec.data.formats.registry import read_raw
    from morec.data.synthetic import write_synthetic

    root = tmp_path_factory.mktemp("cheap-vision")
    prepare(read_raw(write_synthetic(SYNTH, root / "raw")), root / "prepared", log=QUIET)
    return {"root": root, "data": root / "prepared", "ds": PreparedDataset(root / "prepared"),
            "resnet": write_tiny_resnet(root / "resnet")}


def vision_config(images, out, *extra):
    return load_config(None, [f"--data={images['data']}", f"--out={out}", "--model.dim=32", "--model.max_len=20",
                              "--train.progress=false", "--train.batch_size=64", "--model.encoder.kind=vision",
                              "--model.encoder.image_size=32", f"--model.encoder.pretrained={images['resnet']}",
                              "--model.encoder.disk_cache=false", *extra])


def test_vision_side_reads_every_stage_and_new_images_take_the_training_path(images, tmp_path):
    cfg = vision_config(images, tmp_path / "run", *SIDE, "--train.epochs=1")
    trainer = Trainer(cfg, images["ds"], log=QUIET)
    enc = trainer.model.item_encoder
    # the embedder, both stages of the tiny ResNet (8 and 16 channels) and the model's pooled feature
    assert enc.side.widths == [8, 8, 16, 16] and enc.encoder_parameters() == []
    assert all(k.startswith(("side.", "head.")) for k in enc.state_dict())
    trainer.fit()
    items = torch.tensor([1, 7, 50])
    enc.eval()
    with torch.no_grad():
        want = enc(items)
        # what encode_content (`catalog add`) runs on a decoded image file: the states computed on the fly
        got = enc.head(enc._mode.pooled_inputs(enc, enc.pixels(items)))
    assert torch.allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("mode", [SIDE, ["--model.encoder.mode=lora", "--model.encoder.train_layers=1",
                                         "--model.encoder.lora_targets=[convolution]", "--model.encoder.lr=1e-2"]])
def test_vision_cheap_modes_learn_above_most_popular(images, tmp_path, mode):
    trainer = Trainer(vision_config(images, tmp_path / "run", *mode, "--train.epochs=12", "--train.patience=100"),
                      images["ds"], log=QUIET)
    if "lora" in mode[0]:
        trained = [n for n, p in trainer.model.item_encoder.named_parameters()
                   if p.requires_grad and not n.startswith("head.")]
        assert trained and all("lora_" in n for n in trained)
    result = trainer.fit()
    popular = metrics_from_ranks(most_popular_ranks(images["ds"], "test"), [10])["ndcg@10"]
    assert result["test"]["ndcg@10"] > 1.5 * popular, (result["test"], popular)
