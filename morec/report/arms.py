"""Arm labels and the runs index.

A table names each arm (a configuration, with its seeds) by a short label such as ``SASRec · ID`` or
``SASRec · MiniLM frozen · MLP 2``, linked to ``runs.md`` beside the table: label, run directories, key
settings. Labels are unique within one report or sweep: arms that share one get the settings that tell them
apart appended (``· lr 0.0001``).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .discovery import _resolved, encoder_label
from .names import BACKBONES, ENCODERS, MODE_WORDS, get_dotted

INDEX = "runs.md"
# settings a reader of a table wants at a glance; each run's config.yaml has them all
KEY_SETTINGS = ("model.encoder.pretrained", "model.encoder.mode", "model.encoder.train_layers", "model.encoder.mlp_layers",
                "model.encoder.fusion", "model.dim", "model.max_len", "train.loss", "train.n_negatives", "train.lr",
                "model.encoder.lr", "train.batch_size", "train.weight_decay", "train.epochs", "train.patience",
                "eval.select_metric")
ENCODER_ONLY = {k for k in KEY_SETTINGS if k.startswith("model.encoder.")}
# where and how fast a run ran, or its seed: never what tells two arms apart
NOT_SETTINGS = {"out", "train.seed", "train.threads", "train.progress", "train.device"}


@dataclass
class Arm:
    label: str
    anchor: str
    dataset: str
    dirs: list[Path]
    seeds: list[int]
    config: dict

    def link(self, index: str = INDEX) -> str:
        return f"[{self.label}]({index}#{self.anchor})"


LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")  # a Markdown link: its text in group 1


def arm_link(r) -> str:
    """A report cell's (RunInfo's) label linked to its row of the runs index; its directory where it has none."""
    return f"[{r.label}]({INDEX}#{r.anchor})" if r.label else str(r.dir)


def base_label(config: dict) -> str:
    """Backbone · encoder and its training · MLP n · fusion with IDs."""
    model = config.get("model") or {}
    enc = model.get("encoder") or {}
    backbone = str(model.get("backbone", "sasrec"))
    parts = [BACKBONES.get(backbone, backbone)]
    if enc.get("kind", "id") == "id":
        parts.append("ID")
    else:
        name = encoder_label(enc)
        mode = enc.get("mode", "e2e")
        word = f"top-{enc.get('train_layers', 0)}" if mode == "top" else MODE_WORDS.get(mode, mode)
        if mode == "lora" and enc.get("train_layers"):
            word += f" top-{enc['train_layers']}"
        parts.append(f"{ENCODERS.get(name.lower(), name)} {word}" + (" from scratch" if enc.get("from_scratch") else ""))
    if int(enc.get("mlp_layers", 0) or 0):
        parts.append(f"MLP {enc['mlp_layers']}")
    if enc.get("fusion", "none") != "none":
        parts.append(f"ID {enc['fusion']}" + (" + MLP" if enc.get("fusion_mlp") else ""))
    return " · ".join(parts)


def _flat(values: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(values, dict):
        return {k: v for key, sub in values.items() for k, v in _flat(sub, f"{prefix}{key}.").items()}
    return {prefix[:-1]: json.dumps(values, sort_keys=True, default=str)}


def _value(text: str) -> str:
    value = json.loads(text)
    return Path(value).name if isinstance(value, str) and "/" in value else f"{value:g}" if isinstance(value, float) \
        else str(value)


def labels(items: list[tuple[dict, str]]) -> list[str]:
    """Unique labels for (config, dataset) pairs: each base label, with the settings that tell apart the arms
    sharing it (first-seen order, at most three), then ``#n`` where that still is not enough."""
    base = [base_label(c) for c, _ in items]
    flat = [{"dataset": json.dumps(d), **{k: v for k, v in _flat(c).items() if k not in NOT_SETTINGS}} for c, d in items]
    out = list(base)
    for label in {b for b in base if base.count(b) > 1}:
        mine = [i for i, b in enumerate(base) if b == label]
        keys = [k for k in dict.fromkeys(k for i in mine for k in flat[i])
                if len({flat[i].get(k) for i in mine}) > 1][:3]
        for i in mine:
            out[i] = " · ".join([label] + [f"{k.split('.')[-1]} {_value(flat[i][k])}" for k in keys if k in flat[i]])
    seen: dict[str, int] = {}
    for i, label in enumerate(out):
        if out.count(label) > 1:
            seen[label] = seen.get(label, 0) + 1
            out[i] = f"{label} #{seen[label]}"
    return out


def anchors(names: list[str]) -> list[str]:
    """HTML ids for labels: lower case, words joined by '-', made unique."""
    out: list[str] = []
    for name in names:
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "arm"
        n, candidate = 1, slug
        while candidate in out:
            n += 1
            candidate = f"{slug}-{n}"
        out.append(candidate)
    return out


def make_arms(items: list[tuple[dict, str, list[Path], list[int]]]) -> list[Arm]:
    """Arms from (config, dataset, run directories, seeds), labelled together so that each label is unique."""
    names = labels([(c, d) for c, d, _, _ in items])
    return [Arm(n, a, d, dirs, seeds, c) for n, a, (c, d, dirs, seeds) in zip(names, anchors(names), items)]


def key_settings(config: dict) -> str:
    is_id = get_dotted(config, "model.encoder.kind") in (None, "id")
    shown = [f"{k.split('.', 1)[1] if k.startswith(('model.', 'train.')) else k} {_value(json.dumps(v, default=str))}"
             for k in KEY_SETTINGS if not (is_id and k in ENCODER_ONLY)
             and (v := get_dotted(config, k)) not in (None, "", [], 0, "none", False)]
    return ", ".join(shown)


def dirs_text(dirs: list[Path], where: Path) -> str:
    """Run directories relative to ``where``: ``runs/name-s{1,2,3}`` for a configuration's seeds in one folder
    (names that differ only in their trailing number: ``-s3``, ``_seed-3``, ``seed-3``)."""
    rel = [Path(os.path.relpath(d, where)) for d in dirs]
    parts = [re.fullmatch(r"(.*?)(\d+)", p.name) for p in rel]
    if len(rel) > 1 and all(parts) and len({m.group(1) for m in parts}) == 1 and len({p.parent for p in rel}) == 1:
        return (rel[0].parent / f"{parts[0].group(1)}{{{','.join(m.group(2) for m in parts)}}}").as_posix()
    return ", ".join(p.as_posix() for p in rel)


def label_groups(groups: list) -> list[Arm]:
    """Label a report's cells (seed groups or single runs, :func:`.discovery.group_seeds`): sets each one's
    ``label`` and ``anchor``; returns their arms for the runs index."""
    arms = make_arms([(_resolved(g.config), g.dataset, [m.dir for m in g.runs], [m.seed for m in g.runs])
                      for g in groups])
    for g, a in zip(groups, arms):
        g.label, g.anchor = a.label, a.anchor
    return arms
