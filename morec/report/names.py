"""Short names for runs and human labels for arms.

A sweep's run directory is named by what tells its run apart: backbone, item encoder and (for a modality
encoder) its training mode, then only the swept settings that still separate runs and differ from the sweep's
base, then the seed: ``sasrec-id-s1``, ``sasrec-minilm-frozen-mlp2-s3``. Its full settings are in its
``config.yaml``. Tables name an arm by a label (``SASRec · MiniLM frozen · MLP 2``) that links to a runs
index (``runs.md``) giving its directories and key settings.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from ..config import Config, deep_merge, to_dict
from .discovery import encoder_label

# settings the head of a name (backbone, encoder, mode) already says
HEAD_KEYS = {"model.backbone", "model.encoder.kind", "model.encoder.mode", "model.encoder.pretrained"}
ALIASES = {"mlp_layers": "mlp", "batch_size": "bs", "weight_decay": "wd", "train_layers": "layers",
           "n_negatives": "neg", "max_len": "len", "from_scratch": "scratch", "n_layers": "blocks", "lora_rank": "r"}
VALUE_ONLY = {"fusion", "loss", "data"}  # their values read alone: add, ce, ml-100k-warm20
MAX_NAME = 100
BACKBONES = {"sasrec": "SASRec", "dssm": "DSSM", "gru4rec": "GRU4Rec", "nextitnet": "NextItNet",
             "bert4rec": "BERT4Rec"}
ENCODERS = {"minilm": "MiniLM", "idrec": "ID"}
MODE_WORDS = {"frozen": "frozen", "e2e": "E2E", "side": "Side", "lora": "LoRA"}


def get_dotted(values: dict, dotted: str) -> Any:
    node: Any = values
    for p in dotted.split("."):
        if not isinstance(node, dict) or p not in node:
            return None
        node = node[p]
    return node


def nest_dotted(dotted: str, value: Any) -> dict:
    """``{"a": {"b": value}}`` from ``"a.b"``: a sweep or tune key as a config fragment."""
    out: dict = {}
    node = out
    parts = dotted.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return out


def safe_text(value: Any, strip: str = "-.") -> str:
    """A value as directory-safe text: letters, digits, '.', '+' and '-' only (``strip``: cut from both ends;
    the long names of earlier sweeps kept a trailing '.')."""
    if isinstance(value, float):
        value = f"{value:g}"
    elif isinstance(value, list):
        value = "+".join(safe_text(v, strip) for v in value)
    text = re.sub(r"[^A-Za-z0-9.+-]+", "-", str(value)).strip(strip)
    return text or "none"


def _encoder(enc: dict) -> str:
    return "id" if enc.get("kind", "id") == "id" else safe_text(encoder_label(enc).replace(" + ", "+")).lower()


def _mode(enc: dict) -> str:
    """The training mode of a modality encoder as one word (top-2 = its top 2 layers trained); '' for IDs."""
    kind = enc.get("kind", "id")
    if kind == "id":
        return ""
    if kind == "multimodal":
        parts = [_mode({**enc, "kind": s, **{k: v for k, v in (enc.get(s) or {}).items() if v}}) for s in ("text", "vision")]
        return "+".join(dict.fromkeys(parts))
    mode = enc.get("mode", "e2e")
    return f"top{enc.get('train_layers', 0)}" if mode == "top" else mode


def head(config: dict) -> list[str]:
    """backbone, encoder, mode: what every name and label starts with."""
    enc = (config.get("model") or {}).get("encoder") or {}
    return [p for p in (str((config.get("model") or {}).get("backbone", "sasrec")), _encoder(enc), _mode(enc)) if p]


def _alias(key: str, keys: list[str]) -> str:
    """A swept key's short form: its last part (aliased), or its last two parts where two keys share one."""
    short = lambda k: ALIASES.get(k.split(".")[-1], k.split(".")[-1].replace("_", ""))  # noqa: E731
    if sum(short(k) == short(key) for k in keys) > 1:
        return safe_text("".join(key.split(".")[-2:]).replace("_", ""))
    return short(key)


def token(key: str, value: Any, keys: list[str]) -> str:
    """One swept setting in a name: mlp2, lr0.001, add, noscratch, ml-100k-warm20."""
    alias = _alias(key, keys)
    if isinstance(value, bool):
        return alias if value else f"no{alias}"
    if key.split(".")[-1] in VALUE_ONLY:
        return safe_text(Path(str(value)).name if key == "data" else value)
    if isinstance(value, (int, float)):
        return f"{alias}{safe_text(value)}"
    return f"{alias}-{safe_text(value)}"


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def short_names(base: dict, combos: list[dict[str, Any]]) -> list[str]:
    """Unique directory names for a sweep's grid combinations (dotted key -> value each, no seed), in order.

    A swept key is named only where it still separates runs that the name so far does not (a batch size that
    goes with its backbone is left out) and only at a value other than the base's. Names that still clash
    (two pretrained paths with one basename) get a short hash of their settings."""
    defaults = deep_merge(to_dict(Config()), base)
    configs = [_merged(defaults, c) for c in combos]
    keys = [k for k in dict.fromkeys(k for c in combos for k in c) if k not in HEAD_KEYS and k != "train.seed"]
    parts = [head(c) for c in configs]
    so_far = [json.dumps(p) for p in parts]
    for key in keys:
        values = [json.dumps(get_dotted(c, key), sort_keys=True, default=str) for c in configs]
        if all(len({v for v, s in zip(values, so_far) if s == here}) == 1 for here in set(so_far)):
            continue  # follows from what the name already says
        for i, config in enumerate(configs):
            value = get_dotted(config, key)
            if not _same(value, get_dotted(defaults, key)):
                parts[i].append(token(key, value, keys))
        so_far = [f"{s}|{v}" for s, v in zip(so_far, values)]
    for part, combo in zip(parts, combos):  # a seed swept in the grid (tune's seed runs) names like sweep's seeds
        if "train.seed" in combo:
            part.append(f"s{combo['train.seed']}")
    return _unique(["-".join(p) for p in parts], combos)


def _merged(defaults: dict, combo: dict[str, Any]) -> dict:
    out = defaults
    for k, v in combo.items():
        out = deep_merge(out, nest_dotted(k, v))
    return out


def _digest(values: Any) -> str:
    return hashlib.sha1(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:6]


def _unique(names: list[str], combos: list[dict]) -> list[str]:
    """Long names cut with a hash; clashing names each get the hash of their own settings (deterministic)."""
    names = [n if len(n) <= MAX_NAME else f"{n[:MAX_NAME - 8]}-{_digest(c)}" for n, c in zip(names, combos)]
    clash = {n for n in names if names.count(n) > 1}
    return [f"{n}-{_digest(c)}" if n in clash else n for n, c in zip(names, combos)]
