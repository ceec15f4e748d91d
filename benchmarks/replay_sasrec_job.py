"""RePlay 0.22's SASRec trained on a split exported by ``replay_peer.export_split``; runs inside RePlay's own
virtual environment (it does not import morec).

    python replay_sasrec_job.py SPLIT_DIR OUT_DIR --seed 1 --threads 2 [--patience 10] [--max-epochs 200]

RePlay's own pieces do the work: its SASRec Lightning module (``replay.models.nn.sequential.SasRec``: 64-d, 2
blocks, 2 heads, max length 50, FFN width = hidden size, dropout at its default, full-softmax CE), its
optimizer factory's defaults (Adam lr 1e-3, betas (0.9, 0.98)), its training dataset (one window per user: the
latest 51 training items, inputs and next-item labels), its prediction dataset, and Lightning's trainer. What is
morec's here is the protocol around it: after every training epoch every user is scored on every item (history
= the training sequence), the user's history items are masked, the valid target is ranked (rank = 1 + the
other unmasked items scoring >= it), training stops after ``patience`` epochs without a better valid NDCG@10,
and the test target is ranked once, with the best epoch's weights (history = training sequence + valid target).

Writes to OUT_DIR: ``epochs.jsonl`` (one line per epoch), ``ranks_valid.npy`` / ``ranks_test.npy`` (the best
epoch's rank of each user, user index order) and ``job.json`` (best epoch, epochs run, timings, versions).
Items are morec's indices 1..n_items, encoded here as index - 1 (RePlay's padding is n_items).
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import time
import warnings
from pathlib import Path

import lightning
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from replay.data import FeatureHint, FeatureSource, FeatureType
from replay.data.nn import PandasSequentialDataset, TensorFeatureInfo, TensorFeatureSource, TensorSchema
from replay.models.nn.optimizer_utils import FatOptimizerFactory
from replay.models.nn.sequential import SasRec
from replay.models.nn.sequential.sasrec import SasRecPredictionDataset, SasRecTrainingDataset

ITEM, USER = "item_id", "user_id"
HIDDEN, BLOCKS, HEADS, MAX_LEN, BATCH = 64, 2, 2, 50, 128
SCORE_BATCH = 256  # users scored per forward pass at validation / test


def load_split(split_dir: Path) -> dict:
    with np.load(split_dir / "split.npz") as z:
        return {k: z[k] for k in z.files}


def sequences(split: dict, with_valid: bool) -> list[np.ndarray]:
    """Each user's encoded history: the training sequence, plus the valid target when ``with_valid``."""
    offsets, items = split["train_offsets"], split["train_items"] - 1
    out = [items[offsets[u]:offsets[u + 1]] for u in range(len(offsets) - 1)]
    if with_valid:
        out = [np.append(seq, split["valid"][u] - 1) for u, seq in enumerate(out)]
    return out


def tensor_schema(n_items: int) -> TensorSchema:
    return TensorSchema([TensorFeatureInfo(
        name=ITEM, feature_type=FeatureType.CATEGORICAL, is_seq=True, feature_hint=FeatureHint.ITEM_ID,
        feature_sources=[TensorFeatureSource(FeatureSource.INTERACTIONS, ITEM)], cardinality=n_items,
        padding_value=n_items, embedding_dim=HIDDEN)])


def sequential(schema: TensorSchema, seqs: list[np.ndarray]) -> PandasSequentialDataset:
    frame = pd.DataFrame({USER: np.arange(len(seqs)), ITEM: [np.asarray(s, dtype=np.int64) for s in seqs]})
    return PandasSequentialDataset(tensor_schema=schema, query_id_column=USER, item_id_column=ITEM, sequences=frame)


def rank_targets(scores: torch.Tensor, targets: torch.Tensor, histories: list[np.ndarray]) -> torch.Tensor:
    """morec's rank: history items (never the target) leave the candidates; rank = 1 + the other candidates
    scoring >= the target (ties and NaN competitors count against it); a NaN target ranks last."""
    scores = scores.float().clone()
    for row, hist in enumerate(histories):
        hist = torch.from_numpy(np.asarray(hist, dtype=np.int64))
        scores[row, hist[hist != targets[row]]] = float("-inf")
    target_scores = scores.gather(1, targets[:, None])
    below = (scores < target_scores).sum(1)
    ranks = scores.shape[1] - below
    return torch.where(target_scores[:, 0].isnan(), scores.shape[1], ranks)


@torch.no_grad()
def rank_users(module: SasRec, data: SasRecPredictionDataset, targets: np.ndarray,
               histories: list[np.ndarray]) -> np.ndarray:
    """Each user's rank of ``targets[user]`` (encoded) given the history in ``data``; RePlay's predict."""
    was_training = module.training
    module.eval()
    ranks = np.zeros(len(targets), dtype=np.int64)
    for batch in DataLoader(data, batch_size=SCORE_BATCH, shuffle=False):
        users = batch["query_id"].flatten().numpy()
        scores = module.predict(batch)  # (b, n_items): every item, in encoded order
        t = torch.from_numpy(targets[users])
        ranks[users] = rank_targets(scores, t, [histories[u] for u in users]).numpy()
    module.train(was_training)
    return ranks


def ndcg_at(ranks: np.ndarray, k: int = 10) -> float:
    return float(np.where(ranks <= k, 1.0 / np.log2(ranks + 1.0), 0.0).mean())


class FullRankingStopper(lightning.Callback):
    """After every training epoch: the valid ranks of every user, the best epoch's weights and ranks kept, the
    epoch's timings logged, and training stopped after ``patience`` epochs without a better valid NDCG@10."""

    def __init__(self, valid_data, targets: np.ndarray, histories, patience: int, out: Path):
        self.valid_data, self.targets, self.histories = valid_data, targets, histories
        self.patience, self.epoch_log = patience, (out / "epochs.jsonl").open("w")
        self.best = {"score": -math.inf, "epoch": -1, "state": None, "ranks": None, "seconds_to_best": None}
        self.bad_epochs, self.train_seconds, self.epochs, self.start, self.stop_reason = 0, 0.0, 0, None, "epochs"

    def on_train_epoch_start(self, trainer, module):
        self.epoch_start, self.losses = time.perf_counter(), []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.losses.append(outputs["loss"].detach() if isinstance(outputs, dict) else outputs.detach())

    def on_train_epoch_end(self, trainer, module):
        trained = time.perf_counter() - self.epoch_start
        self.train_seconds += trained
        epoch, self.epochs = self.epochs, self.epochs + 1
        ranks = rank_users(module, self.valid_data, self.targets, self.histories)
        score = ndcg_at(ranks)
        improved = score > self.best["score"]
        if improved:
            self.best.update(score=score, epoch=epoch, state=copy.deepcopy(module.state_dict()), ranks=ranks,
                             seconds_to_best=time.perf_counter() - self.start)
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
        row = {"epoch": epoch, "train_seconds": trained, "valid_seconds": time.perf_counter() - self.epoch_start - trained,
               "loss": float(torch.stack(self.losses).mean()), "valid_ndcg@10": score,
               "elapsed": time.perf_counter() - self.start}
        self.epoch_log.write(json.dumps(row) + "\n")
        self.epoch_log.flush()
        print(f"epoch {epoch:3d}  train {trained:.2f} s  valid {row['valid_seconds']:.2f} s  loss {row['loss']:.4f}  "
              f"valid ndcg@10 {score:.4f}{'  *' if improved else ''}", flush=True)
        if self.bad_epochs >= self.patience:
            self.stop_reason, trainer.should_stop = "patience", True


def train(split: dict, args, out: Path) -> dict:
    n_items = int(split["n_items"])
    schema = tensor_schema(n_items)
    train_seqs, test_hist = sequences(split, False), sequences(split, True)
    train_data = SasRecTrainingDataset(sequential(schema, train_seqs), max_sequence_length=MAX_LEN)
    loader = DataLoader(train_data, batch_size=BATCH, shuffle=True, generator=torch.Generator().manual_seed(args.seed))
    valid_data = SasRecPredictionDataset(sequential(schema, train_seqs), max_sequence_length=MAX_LEN)
    test_data = SasRecPredictionDataset(sequential(schema, test_hist), max_sequence_length=MAX_LEN)
    module = SasRec(schema, block_count=BLOCKS, head_count=HEADS, hidden_size=HIDDEN, max_seq_len=MAX_LEN,
                    loss_type="CE", optimizer_factory=FatOptimizerFactory())
    stopper = FullRankingStopper(valid_data, split["valid"] - 1, train_seqs, args.patience, out)
    trainer = lightning.Trainer(max_epochs=args.max_epochs, accelerator="cpu", devices=1, logger=False,
                                enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                                callbacks=[stopper])
    stopper.start = time.perf_counter()
    trainer.fit(module, train_dataloaders=loader)
    best = stopper.best
    module.load_state_dict(best["state"])
    test_ranks = rank_users(module, test_data, split["test"] - 1, test_hist)  # the only read of the test split
    np.save(out / "ranks_valid.npy", best["ranks"])
    np.save(out / "ranks_test.npy", test_ranks)
    return {"best_epoch": best["epoch"], "epochs_run": stopper.epochs, "stop_reason": stopper.stop_reason,
            "selection_score": best["score"], "seconds_per_epoch": stopper.train_seconds / max(stopper.epochs, 1),
            "seconds_to_best": best["seconds_to_best"], "seconds_total": time.perf_counter() - stopper.start,
            "trainable_parameters": sum(p.numel() for p in module.parameters() if p.requires_grad)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("split_dir", type=Path)
    p.add_argument("out_dir", type=Path)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--patience", type=int, default=10)
    p.add_argument("--max-epochs", type=int, default=200)
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # RePlay marks this SASRec API deprecated
    torch.set_num_threads(args.threads)
    lightning.seed_everything(args.seed, workers=True, verbose=False)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    import replay
    job = {**train(load_split(args.split_dir), args, args.out_dir), "seed": args.seed, "threads": args.threads,
           "patience": args.patience, "max_epochs": args.max_epochs, "replay": replay.__version__,
           "torch": torch.__version__, "lightning": lightning.__version__}
    (args.out_dir / "job.json").write_text(json.dumps(job, indent=2))
    print(f"best epoch {job['best_epoch']} of {job['epochs_run']}, {job['seconds_per_epoch']:.2f} s per training "
          f"epoch, {job['seconds_to_best']:.1f} s to best", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
