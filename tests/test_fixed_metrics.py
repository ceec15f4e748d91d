"""No behaviour change: with a fixed seed, IDRec SASRec, text top-k, text two-stage (frozen + TS-DNN) and vision
end-to-end on small synthetic data reach exactly the metrics recorded before the modality-encoder refactor.
The expected values were recorded on main before the refactor (commit c30eaa1); a
change in any encoder's forward, its caches, the heads' initialisation order or the training loop moves them.

Only the tiny models written here are used (no download); two epochs each on one thread.
"""
import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("timm")
from serving_fixtures import write_tiny_bert  # noqa: E402
from transformers import ResNetConfig, ResNetModel  # noqa: E402

from morec.config import load_config  # noqa: E402
from morec.data.dataset import PreparedDataset  # noqa: E402
from morec.data.formats.registry import read_raw  # noqa: E402
from morec.data.prepare import prepare  # noqa: E402
from morec.data.synthetic import SynthConfig, write_synthetic  # noqa: E402
from morec.train import Trainer  # noqa: E402

QUIET = lambda s: None  # noqa: E731

# metric -> value, recorded on main at c30eaa1 (before the refactor) with this file's settings
EXPECTED = {
    "id": {'valid_hr@10': 0.18125, 'valid_ndcg@10': 0.07529294862920186, 'test_hr@10': 0.23125, 'test_ndcg@10': 0.1040652333839653},
    "text-top": {'valid_hr@10': 0.1, 'valid_ndcg@10': 0.04676338592181764, 'test_hr@10': 0.16875, 'test_ndcg@10': 0.0729050896715169},
    "text-frozen": {'valid_hr@10': 0.19375, 'valid_ndcg@10': 0.08155690513521435, 'test_hr@10': 0.18125, 'test_ndcg@10': 0.07915634464739958},
    "vision-e2e": {'valid_hr@10': 0.50625, 'valid_ndcg@10': 0.23959895102952472, 'test_hr@10': 0.5, 'test_ndcg@10': 0.23737785429422303},
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("fixed")
    raw_dir = write_synthetic(SynthConfig(n_users=160, n_items=60, n_topics=4, seq_len_min=6, seq_len_max=12,
                                          image_size=24, seed=5), root / "raw")
    prepare(read_raw(raw_dir), root / "prepared", log=QUIET)
    ds = PreparedDataset(root / "prepared")
    words = sorted({w for t in ds.items["title"] for w in t.split()})
    bert = write_tiny_bert(root / "bert", words, layers=3)
    resnet = root / "resnet"
    torch.manual_seed(0)
    ResNetModel(ResNetConfig(num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
                             layer_type="basic")).save_pretrained(resnet)
    return {"root": root, "ds": ds, "bert": bert, "resnet": resnet}


ARMS = {
    "id": ["--model.encoder.kind=id"],
    "text-top": ["--model.encoder.kind=text", "--model.encoder.mode=top", "--model.encoder.train_layers=1",
                 "--model.encoder.pretrained={bert}", "--model.encoder.text.max_tokens=8", "--model.encoder.lr=1e-3"],
    "text-frozen": ["--model.encoder.kind=text", "--model.encoder.mode=frozen", "--model.encoder.mlp_layers=1",
                    "--model.encoder.pooling=mean", "--model.encoder.pretrained={bert}", "--model.encoder.text.max_tokens=8"],
    "vision-e2e": ["--model.encoder.kind=vision", "--model.encoder.mode=e2e", "--model.encoder.pretrained={resnet}",
                   "--model.encoder.vision.image_size=24", "--model.encoder.lr=1e-3"],
}


def run_arm(world, name):
    extra = [a.format(bert=world["bert"], resnet=world["resnet"]) for a in ARMS[name]]
    cfg = load_config(None, [f"--data={world['root'] / 'prepared'}", f"--out={world['root'] / name}",
                             "--model.dim=16", "--model.max_len=10", "--train.progress=false", "--train.batch_size=32",
                             "--train.epochs=2", "--train.seed=7", "--train.threads=1", "--train.tensorboard=false",
                             "--train.checkpoints=false", "--model.encoder.disk_cache=false", *extra])
    results = Trainer(cfg, world["ds"], log=QUIET).fit()
    return {f"{split}_{m}": results[split][m] for split in ("valid", "test") for m in ("hr@10", "ndcg@10")}


@pytest.mark.parametrize("name", list(ARMS))
def test_metrics_unchanged_by_the_refactor(world, name):
    got = run_arm(world, name)
    assert got == pytest.approx(EXPECTED[name], abs=1e-6), got
