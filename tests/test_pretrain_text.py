"""MLM extra pre-training on a dataset's item texts: the held-out masked-LM loss goes down, and the
saved directory is a model the text encoder loads."""
import json

import pytest
import torch

pytest.importorskip("transformers")
from transformers import BertConfig, BertForMaskedLM, BertTokenizer  # noqa: E402

from morec.config import ConfigError, EncoderConfig  # noqa: E402
from morec.data.dataset import PreparedDataset  # noqa: E402
from morec.data.prepare import prepare  # noqa: E402
from morec.data.synthetic import SynthConfig, generate  # noqa: E402
from morec.encoders import build_item_encoder  # noqa: E402
from morec.pretrain_text import PretrainTextConfig, main, mask_tokens, pretrain_text  # noqa: E402


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlm")
    raw = generate(SynthConfig(n_users=150, n_items=1500, n_topics=2, image_size=0, seed=5))
    prepare(raw, root / "prepared", log=lambda s: None)
    ds = PreparedDataset(root / "prepared")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted({w for t in ds.items["title"] for w in t.split()})
    (root / "vocab.txt").write_text("\n".join(vocab) + "\n")
    model_dir = root / "tiny-mlm"
    BertForMaskedLM(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=64, max_position_embeddings=32)).save_pretrained(model_dir)
    BertTokenizer(str(root / "vocab.txt")).save_pretrained(model_dir)
    return root, ds, model_dir


def test_masking_never_touches_padding_or_special_tokens():
    ids = torch.tensor([[2, 10, 11, 12, 3, 0], [2, 13, 3, 0, 0, 0]])
    lengths = torch.tensor([5, 3])
    inputs, labels = mask_tokens(ids, lengths, torch.tensor([0, 1, 2, 3, 4]), mask_id=4, vocab_size=20, prob=0.99,
                                 gen=torch.Generator().manual_seed(0))
    chosen = labels != -100
    assert chosen[0, 1:4].all() and chosen[1, 1] and not chosen[:, 0].any()
    assert not chosen[0, 4:].any() and not chosen[1, 2:].any()
    assert torch.equal(labels[chosen], ids[chosen]) and torch.equal(inputs[~chosen], ids[~chosen])


def test_mlm_pretraining_lowers_heldout_loss_and_saves_a_loadable_model(corpus, tmp_path):
    root, ds, model_dir = corpus
    out = tmp_path / "adapted"
    cfg = PretrainTextConfig(data=str(root / "prepared"), pretrained=str(model_dir), out=str(out), epochs=20,
                             batch_size=32, lr=3e-3, holdout=0.2, threads=1)
    result = pretrain_text(cfg, ds, log=lambda s: None)
    # the held-out items were never trained on: a lower loss there means the encoder learned the texts' language
    # (a random tiny BERT needs ~10 epochs to start using context; then the loss falls well below unigram level)
    assert result["heldout_loss_after"] < result["heldout_loss_before"] - 0.15, result
    assert json.loads((out / "morec_pretrain.json").read_text())["heldout_loss_after"] == result["heldout_loss_after"]
    enc = build_item_encoder(EncoderConfig(kind="text", pretrained=str(out)), ds, 16)
    assert enc(torch.tensor([1, 2])).shape == (2, 16)


def test_command_line_and_errors(corpus, tmp_path):
    root, _, model_dir = corpus
    out = tmp_path / "cli"
    assert main([f"--data={root / 'prepared'}", f"--pretrained={model_dir}", f"--out={out}", "--epochs=1", "--threads=1"]) == 0
    assert (out / "config.json").is_file() and (out / "morec_pretrain.json").is_file()
    with pytest.raises(ConfigError, match="not found"):
        pretrain_text(PretrainTextConfig(data=str(root / "prepared"), pretrained=str(tmp_path / "missing")))
    with pytest.raises(ConfigError, match="mask_prob"):
        PretrainTextConfig(data="x", mask_prob=1.5).validate()


def test_an_epoch_record_and_a_diverged_epoch():
    from morec.pretraining import record_epoch

    history, lines = [], []
    record_epoch(history, 0, 3.0, 2, 1.25, "MLM", 1e-4, lines.append)
    assert history == [{"epoch": 0, "train_loss": 1.5, "heldout_loss": 1.25}] and lines == [
        "epoch 0: train MLM loss 1.5000  held-out 1.2500"]
    with pytest.raises(RuntimeError, match=r"MLM pre-training diverged at epoch 1; lower lr \(now 0.5\)"):
        record_epoch(history, 1, 3.0, 2, float("nan"), "MLM", 0.5, lines.append)
    assert len(history) == 1
