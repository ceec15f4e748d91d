"""Recommending with a trained run: top-K for a user or a history, new items from their text without
retraining (MoRec; refused for IDRec), export without the training data, and the CLI commands."""
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("transformers")
import serving_fixtures as sf  # noqa: E402

from morec.catalog import CATALOG_FILE, CatalogError, ContentEncoder, DuplicateItemsError, cannot_add_reason  # noqa: E402
from morec.cli import main  # noqa: E402
from morec.config import ConfigError, load_config  # noqa: E402
from morec.model import build_model  # noqa: E402
from morec.recommend import RecommenderService, ServingError, UnknownItemsError, UnknownUserError  # noqa: E402
from morec.runs import load_run  # noqa: E402


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return sf.world(tmp_path_factory)


@pytest.fixture(scope="module")
def id_run(tmp_path_factory):
    return sf.id_sasrec(tmp_path_factory)


@pytest.fixture(scope="module")
def dssm_run(tmp_path_factory):
    return sf.id_dssm(tmp_path_factory)


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    return sf.text_sasrec(tmp_path_factory)


def ids_of(out):
    return [x["id"] for x in out["items"]]


# --- recommending ------------------------------------------------------------------------------

def test_topk_for_a_history_is_the_models_own_scoring(id_run):
    cfg, model, ds = load_run(id_run)
    svc = RecommenderService.from_run(id_run)
    user = 7
    seq = ds.sequence(user)
    history = [svc.snapshot.ids[i] for i in seq]
    out = svc.recommend(history=history, k=15)
    with torch.no_grad():
        hist = torch.from_numpy(seq[-cfg.model.max_len:].astype(np.int64))[None]
        vec = model.user_vectors(torch.tensor([user]), hist)[0]
        scores = model.item_table() @ vec
    scores[0] = -np.inf
    scores[torch.from_numpy(seq.astype(np.int64))] = -np.inf
    want = torch.topk(scores, 15)
    assert ids_of(out) == [svc.snapshot.ids[i] for i in want.indices.tolist()]
    assert [x["score"] for x in out["items"]] == pytest.approx(want.values.tolist(), abs=1e-5)
    assert not set(ids_of(out)) & set(history)  # the history is excluded
    titles = dict(zip(ds.items["item"].astype(str), ds.items["title"]))
    assert all(x["title"] == titles[x["id"]] for x in out["items"])
    # a known user = that user's whole sequence
    assert ids_of(svc.recommend(user=ds.users["user"].iloc[user], k=15)) == ids_of(out)


def test_k_is_clamped_to_the_candidates_and_history_may_be_longer_than_max_len(id_run):
    svc = RecommenderService.from_run(id_run)
    ids = svc.snapshot.ids[1:]
    out = svc.recommend(history=ids[:100], k=10_000)  # 100 > max_len: the latest max_len are read
    assert len(out["items"]) == svc.n_items - 100 and out["history_length"] == 100
    assert svc.recommend(history=ids, k=5)["items"] == []  # everything excluded
    assert len(svc.recommend(history=ids, k=5, exclude_history=False)["items"]) == 5


def test_bad_requests_are_clear_errors(id_run):
    svc = RecommenderService.from_run(id_run)
    with pytest.raises(UnknownItemsError, match=r"unknown item id\(s\): 'nope', 'nada'"):
        svc.recommend(history=[svc.snapshot.ids[1], "nope", "nada"])
    with pytest.raises(UnknownUserError, match="unknown user id 'ghost'"):
        svc.recommend(user="ghost")
    with pytest.raises(ServingError, match="exactly one of user"):
        svc.recommend()
    with pytest.raises(ServingError, match="history is empty"):
        svc.recommend(history=[])
    with pytest.raises(ServingError, match="k must be a positive integer"):
        svc.recommend(history=[svc.snapshot.ids[1]], k=0)


def test_dssm_recommends_for_users_and_says_why_not_for_a_history(dssm_run):
    svc = RecommenderService.from_run(dssm_run)
    out = svc.recommend(user=svc.user_ids[3], k=5)
    assert len(out["items"]) == 5 and svc.info()["input"] == "user"
    seen = {svc.snapshot.ids[i] for i in svc.user_sequence(svc.user_ids[3])}
    assert not seen & set(ids_of(out))
    with pytest.raises(ServingError, match="dssm model reads a user id, not a history"):
        svc.recommend(history=[svc.snapshot.ids[1]])


# --- new items ------------------------------------------------------------------------------------

def test_id_model_refuses_new_items_and_says_why(id_run, tmp_path):
    svc = RecommenderService.from_run(id_run)
    assert not svc.can_add_items
    with pytest.raises(CatalogError, match="ID-based model.*only for the items seen in training"):
        svc.add_items([{"id": "x1", "title": "a b"}])
    assert not (id_run / CATALOG_FILE).exists()


def test_fusion_models_cannot_add_items(world):
    cfg = load_config(None, [f"--data={world['data']}", "--model.encoder.kind=text", "--model.encoder.fusion=add"])
    assert "no ID embedding" in cannot_add_reason(cfg)


@pytest.mark.parametrize("mode", ["e2e", "top", "frozen"])
def test_content_encoding_reproduces_the_trained_item_vectors(world, mode):
    """Raw text through ContentEncoder == the item encoder on the stored token arrays, in every mode."""
    extra = {"top": ["--model.encoder.mode=top", "--model.encoder.train_layers=1"],
             "frozen": ["--model.encoder.mode=frozen", "--model.encoder.mlp_layers=1"]}.get(mode, [])
    cfg = load_config(None, [f"--data={world['data']}", "--model.dim=16", "--model.encoder.kind=text",
                             f"--model.encoder.pretrained={world['bert']}", "--model.encoder.pooling=mean",
                             "--model.encoder.batch_size=16", *extra])
    torch.manual_seed(0)
    model = build_model(cfg.model, world["ds"]).eval()
    ds = world["ds"]
    rows = np.arange(0, ds.n_items, 3)
    with torch.no_grad():
        want = model.item_encoder(torch.from_numpy(rows + 1))
    got = ContentEncoder(model.item_encoder, cfg)(ds.items.iloc[rows].reset_index(drop=True))
    assert got.shape == want.shape and torch.allclose(got, want, atol=1e-5)


def test_new_items_from_text_are_recommended_without_retraining(text_run, world, tmp_path):
    run = sf.fresh_copy(text_run, tmp_path / "run")
    svc = RecommenderService.from_run(run)
    assert svc.can_add_items and svc.n_items == 120
    ds = world["ds"]
    history = ds.items["item"].astype(str).tolist()[:5]
    before = svc.recommend(history=history, k=3)
    best = before["items"][0]
    # a new item whose text is the best item's text gets its vector: it ties with it
    new = pd.DataFrame({"id": ["n-twin", "n-novel"], "title": [best["title"], "zzznovel " + best["title"]]})
    svc.add_items(new)
    assert svc.n_items == 122
    after = svc.recommend(history=history, k=3)
    scores = {x["id"]: x["score"] for x in after["items"]}
    assert "n-twin" in scores and scores["n-twin"] == pytest.approx(best["score"], abs=1e-4)
    # new items can be a history too, and survive a reload (stored in the run directory)
    assert svc.recommend(history=["n-novel", "n-twin"], k=2)["history_length"] == 2
    again = RecommenderService.from_run(run)
    assert again.n_items == 122 and again.snapshot.titles[-1] == "zzznovel " + best["title"]
    assert ids_of(again.recommend(history=history, k=3)) == ids_of(after)
    # and the trained items' vectors did not move
    assert torch.equal(again.snapshot.outputs[:121], svc.snapshot.outputs[:121])


def test_new_item_errors(text_run, tmp_path):
    svc = RecommenderService.from_run(sf.fresh_copy(text_run, tmp_path / "run"))
    known = svc.snapshot.ids[1]
    with pytest.raises(DuplicateItemsError, match=f"already in the catalogue: {known}"):
        svc.add_items([{"id": known, "title": "x"}])
    with pytest.raises(DuplicateItemsError, match="repeated among the new items: a"):
        svc.add_items([{"id": "a", "title": "x"}, {"id": "a", "title": "y"}])
    with pytest.raises(CatalogError, match="lack .title.*--map"):
        svc.add_items([{"id": "a", "name": "x"}])
    with pytest.raises(CatalogError, match="no text in title: a"):
        svc.add_items([{"id": "a", "title": "  "}])
    with pytest.raises(CatalogError, match="need an id column"):
        svc.add_items([{"title": "x"}])
    assert svc.n_items == 120  # nothing half-added


def test_added_items_go_stale_when_the_model_is_retrained(text_run, tmp_path):
    from safetensors.torch import load_file, save_file

    run = sf.fresh_copy(text_run, tmp_path / "run")
    RecommenderService.from_run(run).add_items([{"id": "n1", "title": "zzznovel"}])
    weights = load_file(str(run / "model.safetensors"))
    weights = {k: v + 0.01 if v.is_floating_point() else v for k, v in weights.items()}
    save_file(weights, str(run / "model.safetensors"))
    with pytest.raises(ConfigError, match="retrained since"):
        RecommenderService.from_run(run)


# --- export ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["id", "text", "dssm"])
def test_export_recommends_the_same_without_the_training_data(which, id_run, text_run, dssm_run, world, tmp_path):
    run = {"id": id_run, "text": text_run, "dssm": dssm_run}[which]
    if which == "text":
        run = sf.fresh_copy(text_run, tmp_path / "run")
        RecommenderService.from_run(run).add_items([{"id": "n1", "title": "zzznovel"}])
    svc = RecommenderService.from_run(run)
    user = svc.user_ids[11]
    history = [svc.snapshot.ids[i] for i in (3, 9, 27)] + (["n1"] if which == "text" else [])
    want_user = svc.recommend(user=user, k=8)
    want_hist = svc.recommend(history=history, k=8) if svc.uses_history else None
    out = svc.export(tmp_path / "export")
    assert {p.name for p in out.iterdir()} == {"manifest.json", "items.safetensors", "user_encoder.safetensors"}
    # move the training data (and the text model) away: the export alone must answer
    moved = [world["data"], world["bert"]]
    for p in moved:
        p.rename(p.with_name(p.name + ".away"))
    try:
        with pytest.raises(Exception):
            RecommenderService.from_run(run)
        exp = RecommenderService.load(out)
        assert exp.recommend(user=user, k=8) == want_user
        if want_hist is not None:
            assert exp.recommend(history=history, k=8) == want_hist
        assert exp.n_items == svc.n_items and not exp.can_add_items
        with pytest.raises(CatalogError, match="export: it holds item vectors but no item encoder"):
            exp.add_items([{"id": "n2", "title": "x"}])
    finally:
        for p in moved:
            p.with_name(p.name + ".away").rename(p)
    man = json.loads((out / "manifest.json").read_text())
    assert man["format"] == "morec-export" and len(man["items"]) == svc.n_items and man["config"]["model"]["dim"] == 32


# --- the CLI ---------------------------------------------------------------------------------------

def test_cli_recommend_catalog_add_export(text_run, dssm_run, id_run, tmp_path, capsys):
    run = sf.fresh_copy(text_run, tmp_path / "run")
    svc = RecommenderService.from_run(run)
    hist = ",".join(svc.snapshot.ids[1:4])
    assert main(["recommend", str(run), "--history", hist, "--k", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(out["items"]) == 4 and out == svc.recommend(history=hist.split(","), k=4)
    assert main(["recommend", str(run), "--user", svc.user_ids[0], "--k", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[0].split()[0] == "1"

    items = tmp_path / "new.csv"
    pd.DataFrame({"id": ["c1", "c2"], "title": ["zzznovel x", svc.snapshot.titles[1]]}).to_csv(items, index=False)
    assert main(["catalog", "add", str(run), "--items", str(items)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["items"] == 122
    jl = tmp_path / "new.jsonl"
    jl.write_text(json.dumps({"item": 77, "title": "zzznovel"}) + "\n")
    assert main(["catalog", "add", str(run), "--items", str(jl)]) == 0
    assert main(["recommend", str(run), "--history", "c1,77", "--k", "2", "--json"]) == 0
    capsys.readouterr()
    assert main(["catalog", "add", str(run), "--items", str(items)]) == 2
    assert "already in the catalogue: c1, c2" in capsys.readouterr().err

    assert main(["export", str(run), "--out", str(tmp_path / "exp")]) == 0
    capsys.readouterr()
    assert main(["recommend", str(tmp_path / "exp"), "--history", "c1,77", "--k", "5", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["items"]) == 5

    # errors for people, exit code 2
    assert main(["catalog", "add", str(id_run), "--items", str(items)]) == 2
    assert "ID-based model" in capsys.readouterr().err
    assert main(["recommend", str(dssm_run), "--history", hist]) == 2
    assert "reads a user id, not a history" in capsys.readouterr().err
    assert main(["recommend", str(run), "--history", "c1,nope"]) == 2
    assert "unknown item id(s): 'nope'" in capsys.readouterr().err
    assert main(["recommend", str(run)]) == 2
    assert "exactly one of --user" in capsys.readouterr().err
    shutil.rmtree(tmp_path / "exp")


# --- vision MoRec: new items from image files ---------------------------------------------------

@pytest.mark.parametrize("mode", ["e2e", "frozen"])
def test_vision_content_encoding_reproduces_the_trained_item_vectors(tmp_path, mode):
    pytest.importorskip("PIL")
    from transformers import ResNetConfig, ResNetModel

    from morec.data.dataset import PreparedDataset
    from morec.data.formats.registry import read_raw
    from morec.data.prepare import prepare
    from morec.data.synthetic import SynthConfig, write_synthetic

    raw = write_synthetic(SynthConfig(n_users=60, n_items=30, n_topics=3, seq_len_min=5, seq_len_max=8,
                                      image_size=32, seed=2), tmp_path / "raw")
    prepare(read_raw(raw), tmp_path / "prepared", log=sf.QUIET)
    ds = PreparedDataset(tmp_path / "prepared")
    ResNetModel(ResNetConfig(num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
                             layer_type="basic")).save_pretrained(tmp_path / "resnet")
    cfg = load_config(None, [f"--data={tmp_path / 'prepared'}", "--model.dim=16", "--model.encoder.kind=vision",
                             "--model.encoder.vision.image_size=32", f"--model.encoder.pretrained={tmp_path / 'resnet'}",
                             f"--model.encoder.mode={mode}", "--model.encoder.disk_cache=false"])
    torch.manual_seed(0)
    model = build_model(cfg.model, ds).eval()
    rows = np.arange(0, ds.n_items, 4)
    with torch.no_grad():
        want = model.item_encoder(torch.from_numpy(rows + 1))
    root = ds.manifest.get("image_root")
    new = pd.DataFrame({"item": [f"v{i}" for i in rows],
                        "image": [str(Path(root) / p) if root else p for p in ds.items["image"].iloc[rows]]})
    got = ContentEncoder(model.item_encoder, cfg)(new)
    assert torch.allclose(got, want, atol=1e-4)
    with pytest.raises(CatalogError, match="cannot read the image"):
        ContentEncoder(model.item_encoder, cfg)(pd.DataFrame({"item": ["x"], "image": [str(tmp_path / "no.png")]}))
