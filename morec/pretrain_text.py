"""Extra masked-language-model pre-training of a text encoder on a dataset's own item texts (the
paper's Table 8): the saved model directory is then given to ``model.encoder.pretrained``.

A held-out share of the items is never trained on; its MLM loss, with the same masks each time, is
measured before and after, so the log says whether the extra pre-training did anything.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .config import ConfigError, _check
from .data.content import ItemTokens, item_tokens
from .data.dataset import PreparedDataset
from .encoders.hf import quiet_transformers
from .encoders.text import resolve_pretrained
from .extras import need
from .pretraining import record_epoch, run_cli, start_run, write_result


@dataclass
class PretrainTextConfig:
    data: str = ""  # prepared dataset directory whose item texts are the corpus
    pretrained: str = "minilm"  # local model directory, hub name or 'minilm'
    out: str = "runs/pretrain-text"  # the model directory written (loadable by the text encoder)
    text_fields: list[str] = field(default_factory=lambda: ["title"])
    max_tokens: int = 30
    epochs: int = 3
    batch_size: int = 64
    lr: float = 5e-5
    weight_decay: float = 0.01
    mask_prob: float = 0.15  # BERT's recipe: 15% of tokens; of those 80% [MASK], 10% random, 10% kept
    holdout: float = 0.1  # share of items kept out of training to measure the MLM loss on
    seed: int = 42
    device: str = "auto"
    threads: int = 0

    def validate(self) -> "PretrainTextConfig":
        _check(bool(self.data), "data: the prepared dataset directory must be set")
        _check(self.epochs > 0 and self.batch_size > 0 and self.max_tokens > 0, "epochs, batch_size and max_tokens must be > 0")
        _check(self.lr > 0 and self.weight_decay >= 0, "lr must be > 0 and weight_decay >= 0")
        _check(0 < self.mask_prob < 1, "mask_prob must be in (0, 1)")
        _check(0 < self.holdout < 1, "holdout must be in (0, 1)")
        return self


def mask_tokens(ids: torch.Tensor, lengths: torch.Tensor, special_ids: torch.Tensor, mask_id: int, vocab_size: int,
                prob: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, labels) for MLM: labels are -100 except at chosen positions (never padding or a
    special token); chosen inputs become [MASK] (80%), a random token (10%) or stay (10%)."""
    t = ids.shape[1]
    real = (torch.arange(t)[None, :] < lengths[:, None]) & ~torch.isin(ids, special_ids)
    chosen = real & (torch.rand(ids.shape, generator=gen) < prob)
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    r = torch.rand(ids.shape, generator=gen)
    inputs = ids.clone()
    inputs[chosen & (r < 0.8)] = mask_id
    swap = chosen & (r >= 0.8) & (r < 0.9)
    inputs[swap] = torch.randint(vocab_size, (int(swap.sum()),), generator=gen)
    return inputs, labels


class _Corpus:
    """Token arrays of a set of items, served in trimmed batches."""

    def __init__(self, tokens: ItemTokens, items: np.ndarray):
        self.ids = torch.from_numpy(tokens.ids[items].astype(np.int64))
        self.lengths = torch.from_numpy(tokens.lengths[items].astype(np.int64))

    def __len__(self) -> int:
        return len(self.ids)

    def batches(self, size: int, order: np.ndarray | None = None):
        order = np.arange(len(self)) if order is None else order
        for start in range(0, len(order), size):
            rows = torch.from_numpy(order[start:start + size])
            t = int(self.lengths[rows].max())
            yield self.ids[rows, :t], self.lengths[rows]


class MaskedLM:
    """The model, tokenizer facts and masking needed to train and score MLM."""

    def __init__(self, model, tokenizer, mask_prob: float, device: torch.device):
        if tokenizer.mask_token_id is None:
            raise ConfigError("pretrain-text needs a tokenizer with a mask token (a BERT-family encoder)")
        self.model, self.device, self.prob = model.to(device), device, mask_prob
        self.mask_id, self.vocab = tokenizer.mask_token_id, model.config.vocab_size
        self.special = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)

    def loss(self, ids: torch.Tensor, lengths: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, int]:
        """(mean loss over the masked tokens, how many were masked)."""
        inputs, labels = mask_tokens(ids, lengths, self.special, self.mask_id, self.vocab, self.prob, gen)
        n = int((labels != -100).sum())
        if n == 0:
            return torch.zeros((), device=self.device), 0
        mask = torch.arange(ids.shape[1])[None, :] < lengths[:, None]
        out = self.model(input_ids=inputs.to(self.device), attention_mask=mask.to(self.device), labels=labels.to(self.device))
        return out.loss, n

    @torch.no_grad()
    def heldout_loss(self, corpus: _Corpus, batch_size: int, seed: int) -> float:
        """Token-weighted MLM loss with masks fixed by ``seed``: comparable before and after training."""
        was = self.model.training
        self.model.eval()
        gen = torch.Generator().manual_seed(seed)
        total, count = 0.0, 0
        for ids, lengths in corpus.batches(batch_size):
            loss, n = self.loss(ids, lengths, gen)
            total, count = total + float(loss) * n, count + n
        self.model.train(was)
        return total / max(count, 1)


def pretrain_text(cfg: PretrainTextConfig, dataset: PreparedDataset | None = None, log=print) -> dict:
    """Continue MLM training on the dataset's item texts; save the model directory to ``cfg.out``."""
    need("transformers", "pretrain-text")
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    device = start_run(cfg)
    dataset = dataset or PreparedDataset(cfg.data)
    source, local = resolve_pretrained(cfg.pretrained)
    kw = {"local_files_only": True} if local else {}
    try:
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(source, **kw)
            model, info = AutoModelForMaskedLM.from_pretrained(source, output_loading_info=True, **kw)
    except (OSError, ValueError) as e:
        raise ConfigError(f"pretrain-text: could not load {cfg.pretrained!r} as a masked language model: {e}") from None
    if info.get("missing_keys"):
        # e.g. sentence-transformers checkpoints ship the encoder without its MLM head
        log(f"note: {len(info['missing_keys'])} MLM-head weights not in the checkpoint; they start random")
    tokens = item_tokens(dataset, tokenizer, cfg.text_fields, cfg.max_tokens, log=log)

    rng = np.random.default_rng(cfg.seed)
    items = rng.permutation(np.arange(1, dataset.n_items + 1))
    n_held = max(1, int(round(cfg.holdout * len(items))))
    held, train_corpus = _Corpus(tokens, items[:n_held]), _Corpus(tokens, items[n_held:])
    mlm = MaskedLM(model, tokenizer, cfg.mask_prob, device)
    before = mlm.heldout_loss(held, cfg.batch_size, cfg.seed)
    log(f"pretrain-text: {len(train_corpus):,} training texts, {len(held):,} held out; held-out MLM loss {before:.4f}")

    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    model.train()
    history = []
    start = time.perf_counter()
    for epoch in range(cfg.epochs):
        total, steps = 0.0, 0
        for ids, lengths in train_corpus.batches(cfg.batch_size, rng.permutation(len(train_corpus))):
            loss, n = mlm.loss(ids, lengths, gen)
            if n == 0:
                continue
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, steps = total + loss.item(), steps + 1
        record_epoch(history, epoch, total, steps, mlm.heldout_loss(held, cfg.batch_size, cfg.seed), "MLM", cfg.lr, log)

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return write_result(out, before, history, start, cfg, log, "--model.encoder.pretrained")


def main(argv: list[str] | None = None) -> int:
    """``morec pretrain-text [--config FILE] --data DIR --out DIR [--KEY=VALUE ...]``."""
    return run_cli(argv, "morec pretrain-text", __doc__.split("\n\n")[0], PretrainTextConfig, pretrain_text)
