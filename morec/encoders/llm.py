"""A decoder-LLM item encoder (the HLLM line of work): any Hugging Face causal language model reads a prompt
around each item's text, and the hidden state of the last token (or the mean over all tokens) is the item's
vector, through the paper's DT-layer. Every mode of the modality base works: e2e, top (the lower layers' outputs
cached), frozen two-stage + TS-DNN, from scratch, fusion with IDs, ``catalog add``.

Settings: ``model.encoder.pretrained`` (a local model directory or hub name), ``model.encoder.pooling``
(``last`` or ``mean``; ``cls`` would read the first token, which in a decoder has seen only itself), and
``model.encoder.text`` (``fields``, ``max_tokens``, ``prompt``, e.g. ``"Movie: {text}. In one word:"``).

It is the text encoder with a decoder's split: the lower part stops before the final norm, and the top part
starts from hidden states (no second position embedding), so ``top(lower(x)) == model(x)`` (checked once).
"""
from __future__ import annotations

import torch
from torch import nn

from ..config import ConfigError, EncoderConfig
from .base import ItemEncoder
from .heads import with_fusion
from .text import TextEncoder, build_text_encoder, find_layers, with_submodule

FINAL_NORMS = ("ln_f", "norm", "final_layer_norm", "decoder.final_layer_norm")  # GPT-2, Llama / Qwen / Mistral, OPT
ADDED_POSITIONS = ("wpe",)  # learned positions added to the input embeddings (GPT-2); rotary models add none


class _NoPositions(nn.Module):
    """Stands in for learned position embeddings in the top part: its input already carries them."""

    def forward(self, position_ids: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return torch.zeros((), device=position_ids.device)


def _submodule(model: nn.Module, path: str) -> nn.Module | None:
    for part in path.split("."):
        model = getattr(model, part, None)
        if model is None:
            return None
    return model


def split_decoder(model: nn.Module, n_top: int) -> tuple[nn.Module, nn.Module]:
    """(lower, top) of a decoder: lower = embeddings + the lower layers, without the final norm; top = the top
    layers and the final norm, taking hidden states as ``inputs_embeds``. ``model`` itself is left intact."""
    path, layers = find_layers(model)
    if not 0 < n_top <= len(layers):
        raise ConfigError(f"model.encoder.train_layers={n_top}, but the language model has {len(layers)} layers")
    cut = len(layers) - n_top
    lower = with_submodule(model, path, nn.ModuleList(layers[:cut]))
    norm = next((p for p in FINAL_NORMS if isinstance(_submodule(model, p), nn.Module)), None)
    if norm is None:
        raise ConfigError(f"cannot find the final norm of {type(model).__name__} (looked for {', '.join(FINAL_NORMS)}); "
                          "set model.encoder.cache_lower=false")
    lower = with_submodule(lower, norm, nn.Identity())
    top = with_submodule(model, path, nn.ModuleList(layers[cut:]))
    for positions in ADDED_POSITIONS:
        if _submodule(model, positions) is not None:
            top = with_submodule(top, positions, _NoPositions())
    return lower, top


class LLMEncoder(TextEncoder):
    def use_top(self, model: nn.Module, cfg: EncoderConfig) -> None:
        lower, top = split_decoder(model, cfg.train_layers)
        lower.requires_grad_(False)
        self.transformer = top
        self._frozen = {"lower": lower.eval(), "full": model}


def build(cfg: EncoderConfig, dataset, dim: int) -> ItemEncoder:
    if cfg.pooling == "cls":
        raise ConfigError("model.encoder.kind=llm: pooling=cls reads the first token, which in a decoder has seen only "
                          "itself; set model.encoder.pooling=last (or mean)")
    return with_fusion(cfg, dataset.n_items, dim,
                       lambda width: build_text_encoder(cfg, dataset, width, encoder_class=LLMEncoder))
