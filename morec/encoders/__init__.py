"""Item encoders. A new encoder is one module with ``build(encoder_cfg, dataset, dim)`` and one line here."""
from __future__ import annotations

import importlib

from ..config import ConfigError, EncoderConfig
from .base import ItemEncoder

# kind -> module defining build(cfg: EncoderConfig, dataset: PreparedDataset, dim: int) -> ItemEncoder
REGISTRY = {
    "id": "morec.encoders.id",
    "text": "morec.encoders.text",
    "vision": "morec.encoders.vision",
    "llm": "morec.encoders.llm",
    "multimodal": "morec.encoders.multimodal",
}


def build_item_encoder(cfg: EncoderConfig, dataset, dim: int) -> ItemEncoder:
    if cfg.kind not in REGISTRY:
        raise ConfigError(f"unknown item encoder {cfg.kind!r}; known: {', '.join(sorted(REGISTRY))}")
    return importlib.import_module(REGISTRY[cfg.kind]).build(cfg, dataset, dim)


__all__ = ["ItemEncoder", "build_item_encoder", "REGISTRY"]
