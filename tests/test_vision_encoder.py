"""Vision MoRec: the encoder's modes, work done once, fusion, speed options, the real EfficientNet-Lite0
weights, MAE extra pre-training, and that it learns from images (new items included).

Most tests use a tiny random Hugging Face ResNet written to a temp directory like any local model,
on 32 px synthetic images whose colours and stripes carry the topic that drives user taste.
"""
import numpy as np
import pytest
import torch

pytest.importorskip("timm")
pytest.importorskip("transformers")
from transformers import ResNetConfig, ResNetModel, ViTMAEConfig, ViTMAEForPreTraining  # noqa: E402

from morec.config import ConfigError, EncoderConfig, VisionEncoderSettings, load_config  # noqa: E402
from morec.data.dataset import PreparedDataset  # noqa: E402
from morec.data.formats.registry import read_raw  # noqa: E402
from morec.data.prepare import prepare  # noqa: E402
from morec.data.synthetic import SynthConfig, write_synthetic  # noqa: E402
from morec.encoders import build_item_encoder  # noqa: E402
from morec.encoders.heads import FusedEncoder  # noqa: E402
from morec.encoders.vision import efficientnet_lite0, load_vision_model, map_lite0_keys  # noqa: E402
from morec.evaluate import metrics_from_ranks, most_popular_ranks, rank_users  # noqa: E402
from morec.runs import load_run  # noqa: E402
from morec.train import Trainer  # noqa: E402
from training_helpers import encoder_param_group, fit_arms, loss_and_grads_with_and_without_dedup  # noqa: E402

QUIET = lambda s: None  # noqa: E731
SYNTH = SynthConfig(n_users=500, n_items=160, n_topics=6, n_new_items=18, seq_len_min=8, seq_len_max=20,
                    image_size=32, seed=3)


def write_tiny_resnet(path, hidden=(8, 16)):
    ResNetModel(ResNetConfig(num_channels=3, embedding_size=8, hidden_sizes=list(hidden), depths=[1] * len(hidden),
                             layer_type="basic")).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("vision")
    raw_dir = write_synthetic(SYNTH, root / "raw")
    prepare(read_raw(raw_dir), root / "prepared", log=QUIET)
    ds = PreparedDataset(root / "prepared")
    import json
    meta = json.loads((raw_dir / "SYNTH.json").read_text())
    topic = np.array([meta["item_topic"][i] for i in ds.items["item"]])
    new = ds.item_index()[meta["new_items"]].to_numpy()
    return {"root": root, "data": root / "prepared", "ds": ds, "topic": topic, "new": new,
            "resnet": write_tiny_resnet(root / "resnet")}


def enc_cfg(model, **kw) -> EncoderConfig:
    cfg = EncoderConfig(kind="vision", pretrained=str(model), vision=VisionEncoderSettings(image_size=32), **kw)
    cfg.validate()
    return cfg


def run_config(world, out, *extra):
    return load_config(None, [f"--data={world['data']}", f"--out={out}", "--model.dim=32", "--model.max_len=20",
                              "--train.progress=false", "--train.batch_size=64", "--train.threads=1",
                              "--model.encoder.kind=vision", "--model.encoder.vision.image_size=32",
                              f"--model.encoder.pretrained={world['resnet']}", *extra])


# --- loading -------------------------------------------------------------------------------

def test_efficientnet_lite0_weights_load_and_classify_a_real_photo():
    from matplotlib import cbook
    from PIL import Image
    from timm.data import ImageNetInfo

    model = efficientnet_lite0(num_classes=1000).eval()  # load_into_timm refuses missing / unexpected keys
    img = Image.open(cbook.get_sample_data("grace_hopper.jpg")).convert("RGB").resize((224, 224))
    x = (torch.tensor(np.array(img)).permute(2, 0, 1).float()[None] / 255 - 0.5) / 0.5  # timm's lite0 mean / std
    with torch.no_grad():
        top5 = model(x).topk(5).indices[0].tolist()
    names = [ImageNetInfo().index_to_description(i) for i in top5]
    assert names[0] == "military uniform", names  # Grace Hopper in her US Navy uniform
    assert any("suit" in n or "tie" in n for n in names), names


def test_lite0_key_mapping_covers_every_weight():
    from morec.encoders.vision import lite0_weights_file, read_state_dict

    timm_model = efficientnet_lite0(num_classes=1000, pretrained=False)
    mapped = map_lite0_keys(read_state_dict(lite0_weights_file()), [len(s) for s in timm_model.blocks])
    own = timm_model.state_dict()
    assert set(mapped) == set(own)
    assert all(mapped[k].shape == own[k].shape for k in own)


def test_pretrained_specs_and_errors(tmp_path, world):
    vm = load_vision_model(EncoderConfig(kind="vision", pretrained=str(world["resnet"])))
    assert vm.family == "hf" and vm.hidden == 16 and vm.identity
    scratch = load_vision_model(EncoderConfig(kind="vision", pretrained="timm:resnet10t", from_scratch=True))
    assert scratch.family == "timm" and scratch.identity == ""  # random weights: nothing to key a cache on
    torch.save(scratch.model.state_dict(), tmp_path / "r10.pth")
    again = load_vision_model(EncoderConfig(kind="vision", pretrained=str(tmp_path / "r10.pth"),
                                             vision=VisionEncoderSettings(arch="resnet10t")))
    assert all(torch.equal(a, b) for a, b in zip(again.model.state_dict().values(), scratch.model.state_dict().values()))
    with pytest.raises(ConfigError, match="model.encoder.vision.arch"):
        load_vision_model(EncoderConfig(kind="vision", pretrained=str(tmp_path / "r10.pth")))
    with pytest.raises(ConfigError, match="do not fit"):
        load_vision_model(EncoderConfig(kind="vision", pretrained=str(tmp_path / "r10.pth"),
                                        vision=VisionEncoderSettings(arch="resnet18")))
    with pytest.raises(ConfigError, match="not found"):
        load_vision_model(EncoderConfig(kind="vision", pretrained="./nope"))
    with pytest.raises(ConfigError, match="image_missing"):
        EncoderConfig(kind="vision", vision=VisionEncoderSettings(image_missing="skip")).validate()


# --- modes ---------------------------------------------------------------------------------

def test_modes_train_what_they_say(world):
    ds = world["ds"]
    e2e = build_item_encoder(enc_cfg(world["resnet"]), ds, 16)
    top = build_item_encoder(enc_cfg(world["resnet"], mode="top", train_layers=1, disk_cache=False), ds, 16)
    ts = build_item_encoder(enc_cfg(world["resnet"], mode="frozen", mlp_layers=2, disk_cache=False), ds, 16)
    assert sum(p.numel() for p in e2e.encoder_parameters()) == sum(p.numel() for p in e2e.net.parameters())
    last = sum(p.numel() for p in top.net.encoder.stages[-1].parameters())
    assert sum(p.numel() for p in top.encoder_parameters()) == last
    assert ts.encoder_parameters() == [] and ts.net is None
    assert all(k.startswith("head.") for k in ts.state_dict()) and len(ts.head.mlp) == 4
    top.train()
    frozen_bn = [m for m in top.net.embedder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert frozen_bn and not any(m.training for m in frozen_bn)  # frozen BatchNorm statistics stay put
    assert all(m.training for m in top.net.encoder.stages[-1].modules())
    with pytest.raises(ConfigError, match="train_layers=5, but the vision model has 2"):
        build_item_encoder(enc_cfg(world["resnet"], mode="top", train_layers=5), ds, 16)


@pytest.mark.parametrize("model", ["resnet", "efficientnet-lite0"])
def test_cached_lower_stages_give_the_full_forward(world, model):
    name = world["resnet"] if model == "resnet" else model
    items = torch.arange(1, 41)
    out = []
    for cfg in (enc_cfg(name), enc_cfg(name, mode="top", train_layers=1, disk_cache=False),
                enc_cfg(name, mode="top", train_layers=1, cache_lower=False)):
        torch.manual_seed(0)
        enc = build_item_encoder(cfg, world["ds"], 16).eval()
        with torch.no_grad():
            out.append(enc(items))
    # the cache is float16: equal to fp16 precision
    assert torch.allclose(out[0], out[1], atol=2e-3, rtol=1e-2) and torch.allclose(out[0], out[2], atol=1e-5)
    assert (out[0][0] - out[0][1]).abs().max() > 1e-4


def test_frozen_features_and_lower_cache_are_stored_and_reused(world):
    ds = world["ds"]
    a = build_item_encoder(enc_cfg(world["resnet"], mode="frozen"), ds, 16)
    feats = a.frozen_features()
    assert feats.shape == (ds.n_items + 1, 16) and (feats[0] == 0).all()
    b = build_item_encoder(enc_cfg(world["resnet"], mode="frozen"), ds, 16)
    b._vm = None  # no model left: the features can only come from the dataset cache
    assert torch.equal(b.frozen_features(), feats)
    c = build_item_encoder(enc_cfg(world["resnet"], mode="top", train_layers=1), ds, 16)
    lower = c.lower_outputs()
    assert isinstance(lower, np.ndarray) and lower.dtype == np.float16  # memory-mapped from the cache dir
    assert list(ds.cache_dir.glob("vision-lower1-*.npy"))


@pytest.mark.parametrize("fusion, width", [("add", 16), ("concat", 8)])
def test_fusion_wraps_the_vision_encoder(world, fusion, width):
    enc = build_item_encoder(enc_cfg(world["resnet"], fusion=fusion), world["ds"], 16)
    assert isinstance(enc, FusedEncoder) and enc.modality.dim == width and enc(torch.tensor([1, 2])).shape == (2, 16)
    assert len(enc.encoder_parameters()) == len(list(enc.modality.net.parameters()))


# --- work done once, speed options ---------------------------------------------------------

@pytest.mark.parametrize("extra", [[], ["--model.encoder.vision.grad_checkpointing=true"],
                                   ["--model.encoder.vision.channels_last=true"],
                                   ["--model.encoder.mode=top", "--model.encoder.train_layers=1",
                                    "--model.encoder.vision.grad_checkpointing=true"]])
def test_dedup_and_speed_options_give_the_same_loss_and_gradients(world, tmp_path, extra):
    cfg = run_config(world, tmp_path, "--model.dropout=0", *extra)
    torch.manual_seed(0)
    trainer = Trainer(cfg, world["ds"], log=QUIET)
    model = trainer.model.eval()  # BatchNorm in eval mode: both paths are deterministic
    batch = next(iter(trainer.batches.epoch(np.random.default_rng(0))))
    (l1, g1), (l2, g2) = loss_and_grads_with_and_without_dedup(model, batch)
    assert l1 == pytest.approx(l2, rel=1e-4) and g1.keys() == g2.keys()
    assert any("net." in n for n in g1)  # the image model itself is trained
    for name in g1:
        diff, scale = (g1[name] - g2[name]).abs().max(), g1[name].abs().max()
        assert diff <= 1e-3 * scale + 1e-7, (name, diff, scale)


def test_bf16_autocast_runs_and_stays_close(world, tmp_path):
    enc = build_item_encoder(enc_cfg(world["resnet"]), world["ds"], 16).eval()
    items = torch.arange(1, 33)
    with torch.no_grad():
        ref = enc(items)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = enc(items)
    assert low.dtype == torch.bfloat16 and (low.float() - ref).abs().max() < 0.1 * ref.abs().max() + 1e-3


def test_encoder_gets_its_own_learning_rate(world, tmp_path):
    cfg = run_config(world, tmp_path, "--model.encoder.lr=3e-5", "--model.encoder.weight_decay=0.02")
    trainer = Trainer(cfg, world["ds"], log=QUIET)
    group = encoder_param_group(trainer, cfg)
    assert group["lr"] == 3e-5 and group["weight_decay"] == 0.02


# --- pretrained features, learning ---------------------------------------------------------

def _topic_separation(feats: torch.Tensor, topic: np.ndarray) -> tuple[float, float]:
    """(leave-one-out 1-NN topic accuracy, share of the feature variance between topics), cosine geometry."""
    f = torch.nn.functional.normalize(feats - feats.mean(0), dim=-1)
    t = torch.tensor(topic)
    sims = f @ f.T
    sims.fill_diagonal_(-2)
    nn1 = float((t[sims.argmax(1)] == t).float().mean())
    centres = torch.stack([f[t == k].mean(0) for k in range(int(t.max()) + 1)])
    within = ((f - centres[t]) ** 2).sum(1).mean() / ((f - f.mean(0)) ** 2).sum(1).mean()
    return nn1, float(1 - within)


def test_pretrained_features_separate_topics_better_than_random_init(world):
    """Random conv features already group flat colours somewhat; ImageNet features group the topics'
    palettes and stripe patterns cleanly (measured: 1-NN 1.0 vs 0.85, between-topic variance 0.71 vs 0.60)."""
    ds, seps = world["ds"], {}
    for scratch in (False, True):
        torch.manual_seed(0)
        cfg = enc_cfg("efficientnet-lite0", mode="frozen", from_scratch=scratch, disk_cache=False)
        seps[scratch] = _topic_separation(build_item_encoder(cfg, ds, 16).frozen_features()[1:], world["topic"])
    (nn_pre, var_pre), (nn_rand, var_rand) = seps[False], seps[True]
    assert nn_pre >= 0.97 and nn_pre > nn_rand + 0.03, seps
    assert var_pre > var_rand + 0.05, seps


@pytest.fixture(scope="module")
def trained(world):
    """Vision MoRec (tiny ResNet, end to end) and IDRec SASRec on the same data, a few epochs each."""
    return fit_arms(world, run_config, {"vision": ["--model.encoder.lr=1e-3", "--train.epochs=20"],
                                        "id": ["--model.encoder.kind=id", "--train.epochs=5"]})


def test_vision_morec_learns_far_above_most_popular(world, trained):
    popular = metrics_from_ranks(most_popular_ranks(world["ds"], "test"), [10])
    vision = trained["vision"][0]["test"]
    assert vision["ndcg@10"] > 2.0 * popular["ndcg@10"], (vision, popular)


def test_new_items_ranked_by_image_far_above_chance(world, trained):
    """Items never seen in training are ranked by their images alone. Judged by the median rank (robust on
    ~50 users; chance = half the catalogue) and HR@20 (chance = 20 / n_items)."""
    ds = world["ds"]
    users = np.flatnonzero(np.isin(ds.targets("test"), world["new"]))
    assert len(users) >= 30
    ranks = {name: rank_users(model, ds, "test", 20, users=users) for name, (_, model) in trained.items()}
    median = {name: float(np.median(r)) for name, r in ranks.items()}
    hr = {name: float((r <= 20).mean()) for name, r in ranks.items()}
    print("new items: median rank", median, "hr@20", hr, "of", ds.n_items)
    assert median["vision"] < ds.n_items / 4, median  # chance: n_items / 2
    assert median["vision"] < median["id"] / 2, median  # never-trained ID vectors know nothing of them
    assert hr["vision"] > 2 * 20 / ds.n_items, hr


def test_vision_run_reloads_from_its_directory(world, trained):
    _, model, ds = load_run(world["root"] / "run-vision")
    again = metrics_from_ranks(rank_users(model, ds, "test", 20), [10])
    assert again == pytest.approx(trained["vision"][0]["test"])


# --- MAE extra pre-training ----------------------------------------------------------------

def test_mae_pretraining_saves_a_model_the_encoder_loads(world, tmp_path):
    from morec.pretrain_vision import PretrainVisionConfig, pretrain_vision

    base = tmp_path / "mae"
    ViTMAEForPreTraining(ViTMAEConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                                      num_attention_heads=2, intermediate_size=64, decoder_hidden_size=32,
                                      decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
                                      decoder_intermediate_size=64)).save_pretrained(base)
    cfg = PretrainVisionConfig(data=str(world["data"]), pretrained=str(base), out=str(tmp_path / "out"), epochs=3,
                               batch_size=32, lr=1e-2, threads=1)
    result = pretrain_vision(cfg, world["ds"], log=QUIET)
    assert result["heldout_loss_after"] < result["heldout_loss_before"]
    enc = build_item_encoder(enc_cfg(tmp_path / "out", mode="top", train_layers=1, disk_cache=False), world["ds"], 16)
    assert enc(torch.tensor([1, 2, 3])).shape == (3, 16)  # the staged ViT forward matched its own (checked once)
    assert enc._vm.model.config.mask_ratio == 0.0
