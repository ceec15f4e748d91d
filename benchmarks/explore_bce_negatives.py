"""Why BCE-family losses with many negatives trailed most-popular on small synthetic data.

    python benchmarks/explore_bce_negatives.py LIST.txt >> benchmarks/results/bce_many_negatives_plateau.jsonl

Each line of LIST.txt is ``NAME | overrides | ablations``; every run trains ID SASRec (32-d, lr 3e-3, 25 epochs
unless overridden, seed 42) on the test suite's synthetic data (800 users, 300 items, 6 topics; written to
/tmp/morec-bce-negatives once) and prints one JSON line: test NDCG@10, its ratio to most-popular's, the best
epoch and the validation NDCG@10 every 5 epochs (``traj_every5``). The published runs are listed in
benchmarks/results/bce_many_negatives_plateau_runs.txt, their output in bce_many_negatives_plateau.jsonl.

Ablations (experiment-only changes applied in this process, not library options):
``mean_neg``  the negatives' terms averaged instead of summed (changes the loss: the negatives weigh 1, not K);
``untied``    a separate output item table (gSASRec's default) instead of SASRec's shared one;
``nocollide`` negatives drawn uniformly without rejecting the user's own items (as gSASRec draws them);
``bias``      one learned scalar added to every logit of the binary losses.
"""
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import morec.data.batches as B
import morec.losses as L
import morec.model as M
import morec.train as T
from morec.config import load_config
from morec.data.dataset import PreparedDataset
from morec.data.prepare import prepare
from morec.data.synthetic import SynthConfig, generate
from morec.evaluate import metrics_from_ranks, most_popular_ranks

torch.set_num_threads(1)
ROOT = Path("/tmp/morec-bce-negatives")
if not (ROOT / "prepared").exists():  # the same data as tests/conftest.py's synth_prepared
    raw = generate(SynthConfig(n_users=800, n_items=300, n_topics=6, seq_len_min=8, seq_len_max=20, image_size=0, seed=1))
    prepare(raw, ROOT / "prepared", log=lambda s: None)
ds = PreparedDataset(ROOT / "prepared")
pop = metrics_from_ranks(most_popular_ranks(ds, "test"), [10])["ndcg@10"]
orig_binary, orig_build, orig_forward, orig_table, orig_sample = (
    L.binary_loss, T.build_model, M.Recommender.forward, M.Recommender.item_table, B.NegativeSampler.sample)
BIAS = {}


def mean_neg(pos_logit, neg_logit, beta=1.0, keep=None):
    neg = F.softplus(neg_logit)
    if keep is not None:
        neg = neg * keep
    return (beta * F.softplus(-pos_logit) + neg.mean(-1)).mean()


def bias_binary(pos_logit, neg_logit, beta=1.0, keep=None):
    return orig_binary(pos_logit + BIAS["p"], neg_logit + BIAS["p"], beta, keep)


def bias_build(cfg, dataset):
    m = orig_build(cfg, dataset)
    m.logit_bias = nn.Parameter(torch.zeros(()))
    BIAS["p"] = m.logit_bias
    return m


def untied_build(cfg, dataset):
    m = orig_build(cfg, dataset)
    m.out_emb = nn.Embedding(dataset.n_items + 1, cfg.dim, padding_idx=0)
    nn.init.normal_(m.out_emb.weight, std=cfg.dim ** -0.5)
    n1 = dataset.n_items + 1
    m.backbone.item_output = lambda v: m.out_emb.weight if v.shape[0] == n1 else v  # evaluation's whole table
    return m


def untied_forward(self, batch, *ids):
    if not hasattr(self, "out_emb"):
        return orig_forward(self, batch, *ids)
    (hist,) = self.encode_items(batch.history)
    return [self.out_emb(i) for i in ids], self.backbone.batch_states(batch, hist)


def untied_table(self, batch_size=4096):
    return self.out_emb.weight if hasattr(self, "out_emb") else orig_table(self, batch_size)


def nocollide_sample(self, users, shape, rng):
    return self._draw(shape, rng)


def apply(names):
    L.binary_loss = mean_neg if "mean_neg" in names else bias_binary if "bias" in names else orig_binary
    T.build_model = untied_build if "untied" in names else bias_build if "bias" in names else orig_build
    M.Recommender.forward, M.Recommender.item_table = untied_forward, untied_table  # both fall through without out_emb
    B.NegativeSampler.sample = nocollide_sample if "nocollide" in names else orig_sample


for line in open(sys.argv[1]):
    if not line.strip() or line.startswith("#"):
        continue
    parts = [p.strip() for p in line.split("|")]
    name, extra, ablations = parts[0], parts[1].split(), parts[2].split() if len(parts) > 2 else []
    apply(ablations)
    t = time.time()
    with tempfile.TemporaryDirectory() as d:
        cfg = load_config(None, [f"--data={ROOT / 'prepared'}", f"--out={d}/run", "--model.dim=32", "--train.progress=false",
                                 "--train.epochs=25", "--train.patience=25", "--train.lr=3e-3", "--train.checkpoints=false",
                                 "--train.tensorboard=false", *extra])
        r = T.train(cfg, ds, log=lambda s: None)
        recs = [json.loads(x) for x in open(f"{d}/run/metrics.jsonl")]
    traj = [round(x["valid_ndcg@10"], 3) if "valid_ndcg@10" in x else None for x in recs]
    print(json.dumps({"name": name, "test": round(r["test"]["ndcg@10"], 4), "best_epoch": r.get("best_epoch"),
                      "ratio": round(r["test"]["ndcg@10"] / pop, 2), "s": round(time.time() - t, 1), "args": extra,
                      "traj_every5": traj[4::5], "patch": " ".join(ablations)}), flush=True)
