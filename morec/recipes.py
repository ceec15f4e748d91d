"""Training recipes: how an arm trains, apart from what its items are (``model.encoder``).

``fast`` is what `morec study` trains every arm with, and what ``configs/*_fast.yaml`` hold:

- the architecture of RePlay's SASRec (64-d, 2 blocks x 2 heads, max length 50, FFN width 64), fused attention;
- full softmax (CE) over every position of half of each user's training windows, drawn afresh every epoch
  (``windows: sample``): the latest window alone gives too few targets, every window costs twice as much per epoch
  for little more;
- Adam betas (0.9, 0.98), weight decay 0.1, batch 32, peak learning rate 3e-3 after a 10% warm-up, cosine decay
  to zero at epoch 20; validation (NDCG@10 selects) from epoch 8, patience 10.

Chosen on validation NDCG@10 of seeds 1-2 among short configurations of ID SASRec on MovieLens-100K, and measured
against each arm's default and against RePlay by ``benchmarks/bench_recipes.py`` (figures in benchmarks/README.md).
One recipe for every arm, so a comparison between arms is at equal budget (epochs, patience, learning rates,
selection rule): what differs between two arms of a study is only how items are represented.

Other backbones have no measured fast recipe yet: they keep the library defaults with a 100-epoch cap.
"""
from __future__ import annotations

SASREC_FAST = ["--model.dim=64", "--model.n_layers=2", "--model.n_heads=2", "--model.max_len=50", "--model.ffn_mult=1",
               "--model.attention=fused", "--train.loss=ce", "--train.windows=sample", "--train.window_fraction=0.5",
               "--train.lr=0.003", "--train.betas=[0.9,0.98]", "--train.schedule=cosine", "--train.warmup=0.1",
               "--train.weight_decay=0.1", "--train.batch_size=32", "--train.epochs=20", "--train.patience=10",
               "--eval.valid_from=8", "--eval.select_metric=ndcg@10"]
CAPPED_DEFAULT = ["--train.epochs=100", "--train.patience=10", "--eval.select_metric=ndcg@10"]


def fast(backbone: str) -> list[str]:
    """The fast recipe of a backbone as `--section.key=value` overrides (the backbone itself included)."""
    return [f"--model.backbone={backbone}", *(SASREC_FAST if backbone == "sasrec" else CAPPED_DEFAULT)]
