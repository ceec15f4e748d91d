"""The text+image item encoder: a tiny random BERT and a tiny random ResNet (built here) read each synthetic item's
title and image, each part in its own mode; a new item's raw row gets the vector the trained model computes for
it, the parts keep their own trainable parameters and caches, and it learns."""
import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("timm")
from serving_fixtures import write_tiny_bert  # noqa: E402
from transformers import ResNetConfig, ResNetModel  # noqa: E402

from morec.catalog import ContentEncoder  # noqa: E402
from morec.config import ConfigError, load_config  # noqa: E402
from morec.data.dataset import PreparedDataset  # noqa: E402
from morec.data.formats.registry import read_raw  # noqa: E402
from morec.data.prepare import prepare  # noqa: E402
from morec.data.synthetic import SynthConfig, write_synthetic  # noqa: E402
from morec.encoders.multimodal import MultimodalEncoder  # noqa: E402
from morec.evaluate import metrics_from_ranks, most_popular_ranks  # noqa: E402
from morec.model import build_model  # noqa: E402
from morec.train import Trainer  # noqa: E402

QUIET = lambda s: None  # noqa: E731


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("multimodal")
    raw = write_synthetic(SynthConfig(n_users=500, n_items=160, n_topics=6, seq_len_min=8, seq_len_max=20, image_size=24,
                                      seed=6), root / "raw")
    prepare(read_raw(raw), root / "prepared", log=QUIET)
    ds = PreparedDataset(root / "prepared")
    words = sorted({w for t in ds.items["title"] for w in t.split()})
    bert = write_tiny_bert(root / "bert", words)
    ResNetModel(ResNetConfig(num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
                             layer_type="basic")).save_pretrained(root / "resnet")
    return {"root": root, "ds": ds, "bert": bert, "resnet": root / "resnet"}


def config(world, *extra):
    return load_config(None, [f"--data={world['root'] / 'prepared'}", f"--out={world['root'] / 'run'}", "--model.dim=16",
                              "--model.max_len=12", "--train.progress=false", "--train.batch_size=64",
                              "--train.tensorboard=false", "--model.encoder.kind=multimodal", "--model.encoder.pooling=mean",
                              f"--model.encoder.text.pretrained={world['bert']}", "--model.encoder.text.max_tokens=10",
                              f"--model.encoder.vision.pretrained={world['resnet']}", "--model.encoder.vision.image_size=24",
                              "--model.encoder.disk_cache=false", *extra])


@pytest.mark.parametrize("modes", [("top", "frozen"), ("frozen", "e2e"), ("e2e", "top")])
def test_each_part_has_its_own_mode_and_a_new_items_vector_is_the_trained_one(world, modes):
    text_mode, vision_mode = modes
    cfg = config(world, f"--model.encoder.text.mode={text_mode}", f"--model.encoder.vision.mode={vision_mode}",
                 "--model.encoder.text.train_layers=1", "--model.encoder.vision.train_layers=1")
    torch.manual_seed(0)
    model = build_model(cfg.model, world["ds"]).eval()
    enc = model.item_encoder
    assert isinstance(enc, MultimodalEncoder) and (enc.text.mode, enc.vision.mode) == modes
    trained = {p for p in enc.encoder_parameters()}
    assert (enc.text.model_part is None) == (text_mode == "frozen") and (enc.vision.model_part is None) == (vision_mode == "frozen")
    assert trained == {p for part in (enc.text, enc.vision) for p in part.encoder_parameters()}
    rows = np.arange(0, world["ds"].n_items, 7)
    with torch.no_grad():
        want = enc(torch.from_numpy(rows + 1))
        text_only = enc.text(torch.from_numpy(rows + 1))
    assert not torch.allclose(want, text_only)  # both parts count
    items = world["ds"].items.iloc[rows]
    root = world["ds"].manifest.get("image_root")
    new = pd.DataFrame({"item": [f"n{i}" for i in rows], "title": items["title"].to_numpy(),
                        "image": [f"{root}/{p}" if root else p for p in items["image"]]})
    got = ContentEncoder(enc, cfg)(new)
    # vision top mode caches its lower stages in float16; a new item's run through them in float32
    torch.testing.assert_close(got, want, atol=1e-3 if "top" in modes[1] else 1e-4, rtol=1e-3)


def test_part_settings_belong_to_multimodal_only(world):
    with pytest.raises(ConfigError, match="kind=multimodal"):
        load_config(None, ["--data=x", "--model.encoder.kind=text", "--model.encoder.text.mode=top"])
    with pytest.raises(ConfigError, match="model.encoder.vision.mode must be"):
        config(world, "--model.encoder.vision.mode=side-ways")


def test_multimodal_morec_learns_far_above_most_popular(world):
    cfg = config(world, "--model.encoder.text.mode=frozen", "--model.encoder.vision.mode=e2e", "--model.encoder.lr=1e-3",
                 "--train.epochs=8", "--train.patience=100")
    result = Trainer(cfg, world["ds"], log=QUIET).fit()
    popular = metrics_from_ranks(most_popular_ranks(world["ds"], "test"), [10])
    assert result["test"]["ndcg@10"] > 1.5 * popular["ndcg@10"], (result["test"], popular)
