"""Recommender = ItemEncoder + Backbone (the paper's Figure 1). IDRec and MoRec differ only in the
item encoder; every distinct item in a batch is encoded once and its vector scattered back."""
from __future__ import annotations

import torch
from torch import nn

from .backbones import Backbone, build_backbone
from .config import ModelConfig
from .data.batches import Batch
from .encoders import ItemEncoder, build_item_encoder


class Recommender(nn.Module):
    def __init__(self, item_encoder: ItemEncoder, backbone: Backbone):
        super().__init__()
        self.item_encoder = item_encoder
        self.backbone = backbone
        self.dedup = True  # False encodes every position, padding included (only to measure what dedup saves)

    @property
    def dim(self) -> int:
        return self.item_encoder.dim

    def encode_items(self, *id_tensors: torch.Tensor) -> list[torch.Tensor]:
        """Vectors for each tensor of item indices (shape + (d,)); each distinct item encoded once, 0 -> zeros."""
        flat = torch.cat([t.reshape(-1) for t in id_tensors])
        if self.dedup:
            uniq, inverse = torch.unique(flat, return_inverse=True)
            real = uniq > 0
            vecs = self.item_encoder(uniq[real])  # (U, d)
            table = vecs.new_zeros(len(uniq), vecs.shape[-1])
            table[real] = vecs
            out = table[inverse]
        else:
            out = self.item_encoder(flat) * (flat > 0).unsqueeze(-1)
        sizes = [t.numel() for t in id_tensors]
        return [chunk.view(*t.shape, -1) for chunk, t in zip(out.split(sizes), id_tensors)]

    def forward(self, batch: Batch, *ids: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The training pass: (encoder vectors of each tensor of item indices in ``ids``, the backbone's states
        (B, T, d) aligned with ``batch.targets``). Every distinct item of ``ids`` and of the history is encoded
        once; the backbone reads the batch its own way (``Backbone.batch_states``)."""
        if self.backbone.uses_history:
            *vecs, history = self.encode_items(*ids, batch.history)
            return vecs, self.backbone.batch_states(batch, history)
        return (self.encode_items(*ids) if ids else []), self.backbone.batch_states(batch, None)

    def user_vectors(self, users: torch.Tensor, history: torch.Tensor | None,
                     history_vectors: torch.Tensor | None = None) -> torch.Tensor:
        """Each user's vector for prediction (B, d) from its history (item indices, left-padded) or its id;
        ``history_vectors``: the history's encoder vectors when they are at hand (evaluation encodes every
        item once)."""
        if not self.backbone.uses_history:
            return self.backbone.user_vectors(None, None, users)
        if history_vectors is None:
            (history_vectors,) = self.encode_items(history)
        return self.backbone.user_vectors(history_vectors, history > 0, users)

    def encode_all_items(self, batch_size: int = 4096) -> torch.Tensor:
        """Every item's encoder vector, (n_items + 1, d), row 0 = padding (zeros)."""
        device = next(self.parameters()).device
        ids = torch.arange(1, self.item_encoder.n_items + 1, device=device)
        vecs = torch.cat([self.item_encoder(chunk) for chunk in ids.split(batch_size)])
        return torch.cat([vecs.new_zeros(1, vecs.shape[-1]), vecs])

    def item_table(self, batch_size: int = 4096) -> torch.Tensor:
        """Every item's output vector (what user states are scored against), (n_items + 1, d)."""
        return self.backbone.item_output(self.encode_all_items(batch_size))


def build_model(cfg: ModelConfig, dataset) -> Recommender:
    encoder = build_item_encoder(cfg.encoder, dataset, cfg.dim)
    encoder.n_items = dataset.n_items
    return Recommender(encoder, build_backbone(cfg, dataset))
