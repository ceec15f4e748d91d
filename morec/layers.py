"""Small building blocks shared by backbones and encoders."""
from __future__ import annotations

import torch
from torch import nn


def _random_bytes(n: int, device: torch.device) -> torch.Tensor:
    """``n`` uniform random bytes. int64 ``random_`` fills [0, 2**63), so the top byte is dropped."""
    words = torch.empty((n + 6) // 7, dtype=torch.int64, device=device).random_()
    return words.view(torch.uint8).view(-1, 8)[:, :7].reshape(-1)[:n]


class FastDropout(nn.Module):
    """Dropout whose mask comes from random bytes instead of one Bernoulli draw per element.

    On CPU, drawing the mask dominates a small transformer's step (measured on 2 cores: F.dropout
    12.7 ms vs 5.6 ms here for a (128, 50, 256) activation). The drop rate is rounded to a multiple
    of 1/256 (0.1 -> 0.1016). On GPU the regular kernel is already fast and is used.
    """

    def __init__(self, p: float):
        super().__init__()
        self.p = p
        self.threshold = round(p * 256)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.threshold == 0:
            return x
        if x.is_cuda:
            return nn.functional.dropout(x, self.p, True)
        keep = (_random_bytes(x.numel(), x.device).view(x.shape) >= self.threshold).to(x.dtype)
        return x * keep * (256.0 / (256 - self.threshold))
