"""A text+image item encoder (``model.encoder.kind=multimodal``): the text and the vision modality encoders fused
inside one item encoder, the natural MoRec for PixelRec / NineRec / MicroLens-style items that have both.

Each part is a full modality encoder with its own model and mode (``model.encoder.text.pretrained / mode /
train_layers`` and ``model.encoder.vision...``; unset = ``model.encoder``'s), its own DT-layer to the
recommender's size and its own caches; the item vector is their sum (``fusion`` with an ID embedding wraps the
whole, as for any modality encoder). A new item needs both its text fields and its image.
"""
from __future__ import annotations

import torch

from ..config import EncoderConfig
from .base import ItemEncoder
from .heads import with_fusion


class MultimodalEncoder(ItemEncoder):
    modality = "text+vision"

    def __init__(self, text: ItemEncoder, vision: ItemEncoder):
        super().__init__()
        if text.dim != vision.dim:
            raise ValueError(f"the text part is {text.dim} wide and the vision part {vision.dim}")
        self.text, self.vision, self.dim = text, vision, text.dim

    def forward(self, items: torch.Tensor) -> torch.Tensor:  # (N,) -> (N, dim)
        return self.text(items) + self.vision(items)

    def encoder_parameters(self) -> list:
        return self.text.encoder_parameters() + self.vision.encoder_parameters()

    def on_epoch_start(self, epoch: int) -> None:
        self.text.on_epoch_start(epoch)
        self.vision.on_epoch_start(epoch)

    def precompute(self, progress: bool = True) -> list[str]:
        return self.text.precompute(progress) + self.vision.precompute(progress)

    def encode_content(self, items, **options) -> torch.Tensor:
        return self.text.encode_content(items, **options) + self.vision.encode_content(items, **options)


def build(cfg: EncoderConfig, dataset, dim: int) -> ItemEncoder:
    from .text import build_text_encoder
    from .vision import build_vision_encoder

    return with_fusion(cfg, dataset.n_items, dim, lambda width: MultimodalEncoder(
        build_text_encoder(cfg.part("text"), dataset, width), build_vision_encoder(cfg.part("vision"), dataset, width)))
