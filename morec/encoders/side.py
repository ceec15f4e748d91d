"""The side network of ``mode=side`` (in the spirit of IISAN, SIGIR'24): a small trainable network over the
cached per-layer states of a frozen encoder.

The frozen encoder runs once over every item; the pooled state after each of its layers (text: the [CLS] /
mean state of the embeddings and of every transformer layer; images: every stage's pooled feature map and the
model's own pooled feature) is cached next to the prepared data, like the two-stage features. Training never
backpropagates through the encoder, so a step costs a gather from the cache plus this network, about what a
two-stage step costs (see morec.encoders.modality for the mode itself).

A gated ladder that starts at the top: the last layer's state, normalised and projected to ``width``, is the
side state; walking down the layers, each lower layer's projection is mixed in through a gated residual block
whose gate starts nearly closed (sigmoid(-3) = 0.05). So training starts from what two-stage sees and opens a
lower layer only where it helps (measured on synthetic titles with MiniLM: starting from the embeddings with
open gates, the lower layers' states drowned the top one and the model fell below two-stage).
Its output goes through the encoder's head (DT-layer + optional TS-DNN layers) like any pooled output.
"""
from __future__ import annotations

import torch
from torch import nn


class SideNetwork(nn.Module):
    """(N, sum(widths)) concatenated per-layer states, lowest layer first -> (N, width)."""

    def __init__(self, widths: list[int], width: int, dropout: float = 0.0):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.widths = [int(w) for w in widths]
        self.norms = nn.ModuleList(nn.LayerNorm(w) for w in self.widths)
        self.down = nn.ModuleList(nn.Linear(w, width) for w in self.widths)
        # below the top layer: a mixing block and a gate logit per layer, the gates nearly closed at the start
        self.mix = nn.ModuleList(nn.Linear(width, width) for _ in self.widths[:-1])
        self.gates = nn.Parameter(torch.full((len(self.widths) - 1,), -3.0))

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        parts = states.split(self.widths, dim=-1)
        gates = torch.sigmoid(self.gates)
        side = self.drop(self.down[-1](self.norms[-1](parts[-1])))
        for i in range(len(parts) - 2, -1, -1):
            z = self.drop(self.down[i](self.norms[i](parts[i])))
            side = side + gates[i] * nn.functional.gelu(self.mix[i](z + side))
        return side


def pool_feature_map(h: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """One stage's output -> (N, C): mean over space (NCHW / NHWC maps) or tokens ((N, T, C))."""
    if h.dim() == 4:
        return h.mean(dim=(1, 2) if channels_last else (2, 3))
    if h.dim() == 3:
        return h.mean(dim=1)
    return h
