"""Training losses. Each takes the model's states and item vectors; padded targets (0) carry no loss."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def bce(states: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The paper's equation 1: -log s(y_ui) - log(1 - s(y_uj)) per positive, with K sampled negatives."""
    valid = targets > 0  # (B, T)
    pos_logit = (states * pos).sum(-1)  # (B, T)
    neg_logit = torch.einsum("btd,btkd->btk", states, neg)  # (B, T, K)
    loss = F.softplus(-pos_logit) + F.softplus(neg_logit).sum(-1)
    return loss[valid].mean()


def full_softmax(states: torch.Tensor, item_table: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over every item; ``item_table`` is (n_items + 1, d) with row 0 = padding."""
    valid = targets > 0
    logits = states[valid] @ item_table.T  # (N, n_items + 1)
    logits[:, 0] = float("-inf")
    return F.cross_entropy(logits, targets[valid])


LOSSES = ("bce", "ce")


def compute_loss(model, batch, loss_name: str) -> torch.Tensor:
    """The training loss of ``model`` on ``batch`` (a morec.model.Batch already on the model's device)."""
    if loss_name == "ce":
        states = model.user_states(batch.users, batch.history)
        return full_softmax(states, model.item_table(), batch.targets)
    states, pos, neg = model(batch)
    return bce(states, pos, neg, batch.targets)
