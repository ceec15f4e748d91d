"""Configs read and written: a YAML file and ``--section.key=value`` overrides into the typed dataclasses
(an unknown key or a wrong type is an error naming it), and earlier versions' layouts read as today's."""
from __future__ import annotations

import dataclasses
import datetime
import sys
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from ..yamlfile import load_yaml_file, parse_yaml, shown
from .errors import ConfigError
from .run import Config


# --- configs saved by earlier versions ---------------------------------------------------------

# model.encoder keys that earlier versions kept flat, and the section.key they are now
MOVED_ENCODER_KEYS = {
    "text_fields": ("text", "fields"), "max_tokens": ("text", "max_tokens"),
    "image_size": ("vision", "image_size"), "arch": ("vision", "arch"), "channels_last": ("vision", "channels_last"),
    "grad_checkpointing": ("vision", "grad_checkpointing"), "image_missing": ("vision", "image_missing"),
    "image_workers": ("vision", "image_workers"),
}
# keys that no longer do anything: (section, key) -> why
RETIRED_KEYS = {("eval", "item_chunk"): "evaluation never read it"}
_NOTED: set[str] = set()


def note_once(text: str) -> None:
    """A one-line "morec: note:" on stderr, once per process: a report reads many runs with the same story."""
    if text not in _NOTED:
        _NOTED.add(text)
        print(f"morec: note: {text}", file=sys.stderr)


def migrate(values: dict[str, Any], where: str = "a config") -> dict[str, Any]:
    """Config values in an earlier version's layout (run directories' config.yaml, sweep files, checkpoints)
    -> today's layout, as a new dict; today's layout passes unchanged. A flat ``model.encoder.max_tokens`` becomes
    ``model.encoder.text.max_tokens`` (a value already in the section wins), a retired key is dropped. Says so
    once per process on stderr."""
    if not isinstance(values, dict):
        return values
    out, changes = dict(values), []
    model = out.get("model")
    enc = model.get("encoder") if isinstance(model, dict) else None
    if isinstance(enc, dict) and any(k in enc for k in MOVED_ENCODER_KEYS):
        enc = dict(enc)
        for old, (section, key) in MOVED_ENCODER_KEYS.items():
            if old in enc:
                value = enc.pop(old)
                part = dict(enc.get(section) or {})
                part.setdefault(key, value)
                enc[section] = part
                changes.append(f"model.encoder.{old} -> model.encoder.{section}.{key}")
        out["model"] = {**model, "encoder": enc}
    for (section, key), why in RETIRED_KEYS.items():
        part = out.get(section)
        if isinstance(part, dict) and key in part:
            out[section] = {k: v for k, v in part.items() if k != key}
            changes.append(f"{section}.{key} dropped ({why})")
    if changes:
        note_once(f"{where} uses an earlier config layout, read as today's: {'; '.join(changes)}")
    return out


# --- generic dataclass <-> dict -------------------------------------------------------------

def to_dict(obj: Any) -> Any:
    return dataclasses.asdict(obj)


def from_dict(cls: type, values: dict[str, Any] | None, where: str = "") -> Any:
    """Build dataclass ``cls`` from nested dicts, refusing unknown keys and wrong types. A whole
    :class:`Config` is read through :func:`migrate` first, so earlier versions' configs load."""
    values = values or {}
    if cls is Config and not where:
        values = migrate(values)
    if not isinstance(values, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {shown(values)}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in values:
        if key not in names:
            raise ConfigError(f"unknown config key {shown(where + str(key))}; known keys here: {', '.join(sorted(names))}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in values:
            kwargs[f.name] = _coerce(hints[f.name], values[f.name], where + f.name)
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where + ".")
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        for arg in args[:-1]:  # the first type that takes the value (a cut time: a number, else a date)
            try:
                return None if value is None else _coerce(arg, value, where)
            except ConfigError:
                pass
        return None if value is None else _coerce(args[-1], value, where)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {shown(value)}")
        return [_coerce(item_tp, v, where) for v in value]
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{where}: expected true or false, got {shown(value)}")
    if tp is int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.lstrip("-").isdigit())):
            raise ConfigError(f"{where}: expected an integer, got {shown(value)}")
        return int(value)
    if tp is float:
        try:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {shown(value)}") from None
    if tp is str:
        if isinstance(value, (datetime.date, datetime.datetime)):  # YAML reads 2024-05-15 as a date
            return value.isoformat()
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where}: expected a string, got {shown(value)}")
        return str(value)
    return value


def parse_overrides(args: list[str]) -> dict[str, Any]:
    """``["--train.lr=1e-3", "--model.encoder.kind", "text"]`` -> nested dict (YAML-typed values)."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise ConfigError(f"unexpected argument {arg!r}; overrides look like --section.key=value")
        key, eq, raw = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(args):
                raise ConfigError(f"override {arg!r} has no value")
            raw = args[i + 1]
            i += 1
        i += 1
        try:
            value = parse_yaml(raw) if raw != "" else ""
        except yaml.YAMLError:  # not a YAML value: the text itself (a prompt such as "Movie: {text}. Genre:")
            value = raw
        node = out
        parts = key.replace("-", "_").split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for k, v in extra.items():
        merged[k] = deep_merge(merged[k], v) if isinstance(v, dict) and isinstance(merged.get(k), dict) else v
    return merged


def load_config(path: str | Path | None = None, overrides: list[str] | dict | None = None, cls: type = Config) -> Any:
    values: dict[str, Any] = {}
    if path:
        path = Path(path)
        values = load_yaml_file(path, "config YAML file") or {}
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: expected a YAML mapping at the top level")
    if cls is Config:  # each side in today's layout before they are merged, so an override wins however written
        values = migrate(values, str(path) if path else "a config")
    if overrides:
        extra = parse_overrides(overrides) if isinstance(overrides, list) else overrides
        values = deep_merge(values, migrate(extra, "the overrides") if cls is Config else extra)
    cfg = from_dict(cls, values)
    return cfg.validate() if hasattr(cfg, "validate") and cls is Config else cfg


def save_config(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False), encoding="utf-8")
