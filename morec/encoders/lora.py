"""``mode=lora``: low-rank updates (LoRA) on the trained part of a pretrained encoder, through Hugging
Face's ``peft``.

The encoder is split as in ``mode=top`` (morec.encoders.modality): the frozen lower layers' outputs are cached once, and only
the top ``train_layers`` layers run per step; here their own weights stay frozen too and only the
injected rank-``lora_rank`` matrices (scaled by ``lora_alpha / lora_rank``) are trained, on the
modules named by ``lora_targets`` (default: peft's choice for the architecture, e.g. BERT's query and
value projections). ``train_layers`` equal to the model's depth adapts every layer (only the
embedding output is cached then).
"""
from __future__ import annotations

from torch import nn

from ..config import ConfigError, EncoderConfig
from ..extras import need


def default_targets(model_type: str) -> list[str]:
    defaults = need("peft.utils.constants", "model.encoder.mode=lora").TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING
    return list(defaults.get(model_type, []))


def add_lora(part: nn.Module, cfg: EncoderConfig, model_type: str = "") -> None:
    """Inject LoRA in place into the modules of ``part`` that ``mode=top`` would train (those whose parameters
    require grad) and match ``lora_targets``; then every weight of ``part`` is frozen but the low-rank matrices."""
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError:
        raise ConfigError("model.encoder.mode=lora needs the peft library: pip install 'morec[lora]'") from None
    targets = list(cfg.lora_targets) or default_targets(model_type)
    if not targets:
        raise ConfigError(f"model.encoder.mode=lora: peft has no default target modules for {model_type or 'this model'}; "
                          "name them with model.encoder.lora_targets (e.g. [qkv] for a timm ViT, [query, value] for BERT)")
    # the exact names of the matching modules in the trained layers: the frozen lower layers get no updates
    names = [n for n, m in part.named_modules()
             if any(n == t or n.endswith("." + t) for t in targets)
             and any(True for _ in m.parameters(recurse=False)) and all(p.requires_grad for p in m.parameters())]
    if not names:
        raise ConfigError(f"model.encoder.lora_targets={targets} matched no module of the trained layers")
    part.requires_grad_(False)
    config = LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                        target_modules=names)
    inject_adapter_in_model(config, part)
