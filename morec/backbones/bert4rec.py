"""BERT4Rec (Sun et al. 2019): a bidirectional transformer trained by masked item prediction.

Training (``batch_kind = "masked"``, see morec.data.batches.MaskedBatches): a fraction of the input
items is replaced by a learned [MASK] vector, a parameter of this backbone, so no item encoder needs
a special token; the states at masked positions predict the original items (the batch's targets are
the original items there and 0 elsewhere); the latest item is masked in a ``mask_last`` share of the
windows, which is the prediction task. Prediction: a [MASK] is appended after the history and
its state is the user vector, ``states[:, -1]``.
"""
from __future__ import annotations

import torch
from torch import nn

from .sasrec import SASRec


class BERT4Rec(SASRec):
    causal = False
    batch_kind = "masked"

    def __init__(self, dim: int, max_len: int, n_layers: int = 2, n_heads: int = 2, dropout: float = 0.1,
                 ffn_mult: int = 4, mask_prob: float = 0.2, mask_last: float = 1.0):
        super().__init__(dim, max_len, n_layers, n_heads, dropout, ffn_mult)
        self.mask_prob, self.mask_last = mask_prob, mask_last  # read by the batch builder
        self.mask_vector = nn.Parameter(torch.randn(dim) * dim ** -0.5)

    def forward(self, history: torch.Tensor, mask: torch.Tensor, users: torch.Tensor | None = None,
                masked: torch.Tensor | None = None) -> torch.Tensor:
        """history: (B, L, d) item vectors, left-padded; mask: (B, L) True where a real item stands.

        ``masked`` (B, L) bool: training, those inputs become [MASK]; returns (B, L, d).
        None: prediction, [MASK] appended (the oldest item dropped if the window is full); returns
        (B, L', d) whose last state is the user vector.
        """
        B, L, d = history.shape
        if masked is None:
            if L >= self.max_len:
                history, mask = history[:, L - self.max_len + 1:], mask[:, L - self.max_len + 1:]
            history = torch.cat([history, history.new_zeros(B, 1, d)], 1)
            mask = torch.cat([mask, mask.new_ones(B, 1)], 1)
            masked = torch.zeros_like(mask)
            masked[:, -1] = True
        x = torch.where(masked[..., None], self.mask_vector.to(history.dtype), history)
        return self.encode(x, mask)  # every position sees every real item, in both directions


def build(cfg, dataset) -> BERT4Rec:
    return BERT4Rec(cfg.dim, cfg.max_len, cfg.n_layers, cfg.n_heads, cfg.dropout, cfg.ffn_mult, cfg.mask_prob, cfg.mask_last)
