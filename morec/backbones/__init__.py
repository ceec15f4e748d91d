"""User backbones. A new backbone is one module with ``build(model_cfg, dataset)`` and one line here."""
from __future__ import annotations

import importlib

from ..config import ConfigError, ModelConfig
from .base import Backbone

REGISTRY = {
    "sasrec": "morec.backbones.sasrec",
    "dssm": "morec.backbones.dssm",
    "gru4rec": "morec.backbones.gru4rec",
    "nextitnet": "morec.backbones.nextitnet",
    "bert4rec": "morec.backbones.bert4rec",
}


def build_backbone(cfg: ModelConfig, dataset) -> Backbone:
    if cfg.backbone not in REGISTRY:
        raise ConfigError(f"unknown backbone {cfg.backbone!r}; known: {', '.join(sorted(REGISTRY))}")
    return importlib.import_module(REGISTRY[cfg.backbone]).build(cfg, dataset)


__all__ = ["Backbone", "build_backbone", "REGISTRY"]
