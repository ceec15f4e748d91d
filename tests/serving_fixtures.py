"""Tiny trained runs shared by test_recommend.py and test_serve.py (built once per test session)."""
from __future__ import annotations

from pathlib import Path

import torch

QUIET = lambda s: None  # noqa: E731
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_CACHE: dict = {}


def world(tmp_path_factory) -> dict:
    """A small synthetic dataset (titles from topic words) and a tiny random BERT for its words."""
    if "world" in _CACHE:
        return _CACHE["world"]
    from morec.data.dataset import PreparedDataset
    from morec.data.prepare import prepare
    from morec.data.synthetic import SynthConfig, synthesize

    root = tmp_path_factory.mktemp("serving")
    raw, truth = synthesize(SynthConfig(n_users=300, n_items=120, n_topics=4, seq_len_min=6, seq_len_max=14,
                                        image_size=0, seed=5))
    prepare(raw, root / "prepared", log=QUIET)
    ds = PreparedDataset(root / "prepared")
    words = {w for t in ds.items["title"] for w in t.split()} | {"zzznovel"}
    _CACHE["world"] = {"root": root, "data": root / "prepared", "ds": ds, "words": words, "truth": truth,
                       "bert": write_tiny_bert(root / "bert", words)}
    return _CACHE["world"]


def write_tiny_bert(path: Path, words, layers: int = 2, hidden: int = 32) -> Path:
    from transformers import BertConfig, BertModel, BertTokenizer

    path.mkdir(parents=True, exist_ok=True)
    vocab = SPECIALS + sorted(words)
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = BertTokenizer(str(path / "vocab.txt"))
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=len(vocab), pad_token_id=0, hidden_size=hidden, num_hidden_layers=layers,
                                 num_attention_heads=2, intermediate_size=2 * hidden, max_position_embeddings=40))
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def run(tmp_path_factory, name: str, *overrides: str) -> Path:
    """A trained run directory (one epoch or two; tiny), cached by name for the session."""
    if name in _CACHE:
        return _CACHE[name]
    from morec.config import load_config
    from morec.train import train

    w = world(tmp_path_factory)
    out = w["root"] / "runs" / name
    cfg = load_config(None, [f"--data={w['data']}", f"--out={out}", "--model.dim=32", "--model.max_len=12",
                             "--train.progress=false", "--train.batch_size=64", "--train.threads=1",
                             "--train.epochs=2", "--train.checkpoints=false", *overrides])
    before = torch.get_num_threads()
    try:
        train(cfg, log=QUIET)
    finally:
        torch.set_num_threads(before)
    _CACHE[name] = out
    return out


def id_sasrec(tmp_path_factory) -> Path:
    return run(tmp_path_factory, "id-sasrec")


def id_dssm(tmp_path_factory) -> Path:
    return run(tmp_path_factory, "id-dssm", "--model.backbone=dssm")


def text_sasrec(tmp_path_factory) -> Path:
    w = world(tmp_path_factory)
    return run(tmp_path_factory, "text-sasrec", "--model.encoder.kind=text", f"--model.encoder.pretrained={w['bert']}",
               "--model.encoder.pooling=mean", "--model.encoder.lr=1e-3", "--train.epochs=1")


def text_dssm(tmp_path_factory) -> Path:
    w = world(tmp_path_factory)
    return run(tmp_path_factory, "text-dssm", "--model.backbone=dssm", "--model.encoder.kind=text",
               f"--model.encoder.pretrained={w['bert']}", "--model.encoder.mode=frozen", "--train.epochs=1")


def fresh_copy(run_dir: Path, dest: Path) -> Path:
    """A copy of a run directory to add items to, so the shared run stays as trained."""
    import shutil

    shutil.copytree(run_dir, dest)
    return dest
