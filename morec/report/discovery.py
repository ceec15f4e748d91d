"""Finding runs: run directories read back as :class:`RunInfo`, seed groups, comparison arms, and the labels
every table and figure gives a run (dataset setting, item encoder, training)."""
from __future__ import annotations

import glob
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import Config, ConfigError, from_dict, note_once, to_dict
from ..ranks import load_ranks
from ..runlog import capped
from ..stats.seeds import mean_std
from ..yamlfile import load_yaml_file


@dataclass
class RunInfo:
    """One finished run directory, as the report reads it."""

    dir: Path
    results: dict
    config: dict
    prepare: dict = field(default_factory=dict)  # the dataset manifest's prepare settings ({} if unknown)
    dataset: str = ""
    log: list = field(default_factory=list)  # metrics.jsonl records
    members: list = field(default_factory=list)  # a seed group's runs; [] for a single run
    label: str = ""  # the arm's label in tables (report.arms.label_groups); "" until labelled
    anchor: str = ""  # its id in the runs index

    def ranks(self, split: str = "test"):
        """This run's per-user ranks on ``split`` (ranks.npz), None where it kept none."""
        if not hasattr(self, "_ranks"):
            self._ranks = load_ranks(self.dir)
        return (self._ranks or {}).get(split)

    @property
    def runs(self) -> list["RunInfo"]:
        """The runs behind this cell: the seed group's, or this run."""
        return self.members or [self]

    @property
    def seeds(self) -> int:
        """Usable runs behind the cell (seeds averaged)."""
        return sum(r.usable for r in self.runs)

    def spread(self, split: str, metric: str) -> float | None:
        """Sample standard deviation over the usable seeds (None for one seed)."""
        values = [float(r.results[split][metric]) for r in self.runs if r.usable and metric in r.results[split]]
        return mean_std(values)[1] if len(values) > 1 else None

    @property
    def capped(self) -> int:
        return sum(capped(r.results) for r in self.runs)  # hit the cap while validation was still rising

    @property
    def n_collapsed(self) -> int:
        return sum(r.collapsed for r in self.runs)

    @property
    def enc(self) -> dict:
        return self.config.get("model", {}).get("encoder", {})

    @property
    def backbone(self) -> str:
        return self.config.get("model", {}).get("backbone", "sasrec")

    @property
    def is_id(self) -> bool:
        return self.enc.get("kind", "id") == "id"

    @property
    def collapsed(self) -> bool:
        return self.results.get("stop_reason") == "collapsed"

    @property
    def usable(self) -> bool:
        return not self.collapsed and bool(self.results.get("valid")) and bool(self.results.get("test"))

    @property
    def select_metric(self) -> str:
        return self.config.get("eval", {}).get("select_metric", "ndcg@10")

    @property
    def valid_score(self) -> float:
        return float(self.results["valid"].get(self.select_metric, -math.inf))

    @property
    def warm(self) -> int:
        return int(self.prepare.get("min_item_interactions", 0) or 0)

    @property
    def n_users(self) -> int:
        return int(self.prepare.get("n_users", 0) or 0)

    @property
    def new_items(self) -> float:
        return float(self.prepare.get("new_items", 0) or 0)

    @property
    def regular(self) -> bool:
        return self.warm == 0 and self.n_users == 0 and self.new_items == 0

    @property
    def fusion(self) -> str:
        return self.enc.get("fusion", "none")

    @property
    def seed(self) -> int:
        return int(self.config.get("train", {}).get("seed", 0))

    @property
    def lrs(self) -> tuple[float, float]:
        return float(self.config.get("train", {}).get("lr", 0)), float(self.enc.get("lr", 0))


def setting_label(r: RunInfo) -> str:
    """Regular, Warm-N, N users (subsample), new items held out: the dataset's prepare settings."""
    parts = ([f"Warm-{r.warm}"] if r.warm else []) + ([f"{r.n_users:,} users"] if r.n_users else []) \
        + ([f"new items {r.new_items:g}"] if r.new_items else [])
    return ", ".join(parts) or "Regular"


def _parts(enc: dict) -> list[dict]:
    """A text+image encoder's two parts as encoder dicts (each section's pretrained / mode / train_layers where
    set); saved configs are read as saved (raw dicts, either config layout)."""
    parts = []
    for section in ("text", "vision"):
        own = enc.get(section) or {}
        parts.append({**enc, "kind": section, **{k: own[k] for k in ("pretrained", "mode", "train_layers") if own.get(k)},
                      "arch": own.get("arch", "") if section == "vision" else ""})
    return parts


def encoder_label(enc: dict) -> str:
    """IDRec for ID embeddings; otherwise the item encoder's name (pretrained model or arch)."""
    if enc.get("kind", "id") == "id":
        return "IDRec"
    if enc.get("kind") == "multimodal":
        return " + ".join(encoder_label(p) for p in _parts(enc))
    arch = enc.get("arch") or (enc.get("vision") or {}).get("arch")  # flat in configs saved before the sections
    if arch:
        return arch
    name = str(enc.get("pretrained") or enc.get("kind"))
    if name.startswith("timm:"):
        name = name[len("timm:"):]
    return Path(name.rstrip("/")).name or name


def training_label(enc: dict) -> str:
    """TS (frozen features), TS-DNN n (frozen + n MLP layers), Side (side network over cached per-layer states),
    LoRA top-n, E2E (whole encoder trained) or E2E top-n."""
    if enc.get("kind", "id") == "id":
        return "ID"
    if enc.get("kind") == "multimodal":
        return " + ".join(training_label(p) for p in _parts(enc))
    mlp = int(enc.get("mlp_layers", 0) or 0)
    mode = enc.get("mode", "e2e")
    if mode == "frozen":
        return "TS" if mlp == 0 else f"TS-DNN {mlp}"
    base = {"e2e": "E2E", "side": "Side", "lora": f"LoRA top-{enc.get('train_layers', 0)} r{enc.get('lora_rank', 8)}"}.get(
        mode, f"E2E top-{enc.get('train_layers', 0)}")
    return base if mlp == 0 else f"{base} + DNN {mlp}"


def training_order(r: RunInfo) -> tuple:
    """ID, TS, TS-DNN (by layers), Side, LoRA top-n, E2E top-n (by n), E2E: the order of the paper's tables."""
    enc = r.enc
    mode, mlp = enc.get("mode", "e2e"), int(enc.get("mlp_layers", 0) or 0)
    if r.is_id:
        return (0, 0, 0)
    if mode == "frozen":
        return (1 if mlp == 0 else 2, mlp, 0)
    return ({"side": 3, "lora": 4, "top": 5}.get(mode, 6), int(enc.get("train_layers", 0) or 0), mlp)


def resolve_data(data: str, run_dir: Path) -> Path | None:
    if not data:
        return None
    p = Path(data)
    for cand in ([p] if p.is_absolute() else [p, run_dir / p]):
        if (cand / "manifest.json").exists():
            return cand
    return None


def preset_label(name: str, preset: dict | None) -> str:
    """A dataset prepared with a preset, as tables name it: 'MIND (paper preset)' when its name is the preset's
    dataset, else 'mind-50k (MIND (paper preset))'; a changed preset says what changed."""
    label = (preset or {}).get("label")
    if not label:
        return name
    title = label.split(" (", 1)[0]
    return label if name.strip().lower() == title.lower() else f"{name} ({label})"


def load_run_info(run_dir: str | Path) -> RunInfo:
    run = Path(run_dir)
    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    config = results.get("config")
    if not config and (run / "config.yaml").exists():
        config = load_yaml_file(run / "config.yaml", "run config")
    config = config or {}
    data = resolve_data(str(config.get("data", "")), run)
    manifest = json.loads((data / "manifest.json").read_text(encoding="utf-8")) if data else {}
    log = []
    if (run / "metrics.jsonl").exists():
        for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
            if line.strip():
                log.append(json.loads(line))
    # a run copied without its data (committed summaries) still knows its dataset from results.json
    recorded = results.get("dataset") or {}
    prepare = manifest.get("prepare") or recorded.get("prepare") or {}
    dataset = manifest.get("name") or recorded.get("name") or (Path(str(config.get("data", ""))).name or "dataset")
    dataset = preset_label(dataset, manifest.get("preset") or recorded.get("preset"))
    if prepare.get("split") == "time":  # another protocol: never in one cell with leave-one-out
        dataset += " (time split)"
    return RunInfo(run, results, config, prepare, dataset, log)


def find_runs(paths: list[str | Path]) -> list[RunInfo]:
    """Run directories (results.json) given directly, or found under the given folders (e.g. a sweep's out)."""
    dirs: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise FileNotFoundError(f"{p} does not exist; morec report takes run directories or folders holding them")
        if (p / "results.json").exists():
            dirs.append(p)
        else:
            found = sorted(f.parent for f in p.rglob("results.json"))
            if not found:
                raise FileNotFoundError(f"{p} holds no run directory (no results.json under it)")
            dirs.extend(found)
    seen, runs = set(), []
    for d in dirs:
        key = d.resolve()
        if key not in seen:
            seen.add(key)
            runs.append(load_run_info(d))
    return runs


# keys of a saved config that say where or how fast a run ran, not what it is
_NOT_CONFIG = {("out",), ("train", "seed"), ("train", "threads"), ("train", "progress"), ("train", "device")}


def _config_key(r: RunInfo) -> str:
    def strip(values, path=()):
        if isinstance(values, dict):
            return {k: strip(v, path + (k,)) for k, v in values.items() if path + (k,) not in _NOT_CONFIG}
        return values

    return json.dumps([r.dataset, strip(_resolved(r.config))], sort_keys=True, default=str)


def _resolved(config: dict) -> dict:
    """A saved config with every setting a later version added at its default (which keeps the old behaviour),
    so that seeds run before and after a new setting existed still group; as saved when it no longer loads."""
    try:
        return to_dict(from_dict(Config, config))
    except (ConfigError, TypeError, ValueError):
        return config


SEED_SUFFIX = re.compile(r"(?P<config>.+)(?P<sep>_seed-|-s)(?P<seed>-?\d+)")


def split_seed(name: str) -> tuple[str, str, str] | None:
    """(configuration name, separator, seed) of a seed run's directory name: a sweep's ``sasrec-id-s3``, or
    ``..._seed-3`` as sweeps named them before short names."""
    m = SEED_SUFFIX.fullmatch(name)
    return (m.group("config"), m.group("sep"), m.group("seed")) if m else None


def _group_dir(runs: list[RunInfo]) -> Path:
    """``sweep/name-s{1,2,3}`` (or ``sweep/name_seed-{1,2,3}``) for a sweep's seed runs; otherwise the run
    directories joined with '+'."""
    parts = [split_seed(r.dir.name) for r in runs]
    if all(parts) and len({p[:2] for p in parts}) == 1 and len({r.dir.parent for r in runs}) == 1:
        config, sep, _ = parts[0]
        return runs[0].dir.parent / f"{config}{sep}{{{','.join(p[2] for p in parts)}}}"
    return Path(" + ".join(str(r.dir) for r in runs))


def _mean_split(runs: list[RunInfo], split: str) -> dict | None:
    values = [r.results[split] for r in runs if r.results.get(split)]
    if not values:
        return None
    return {m: float(np.mean([v[m] for v in values])) for m in values[0] if all(m in v for v in values)}


def _one_run_per_seed(members: list[RunInfo]) -> list[RunInfo]:
    """A configuration's runs with each seed once: a copy of a run (a report over both ``runs/`` and the committed
    summaries) or a rerun of one seed would otherwise count twice and narrow every interval."""
    kept: dict = {}
    for r in members:
        seed = r.seed
        if seed in kept:
            note_once(f"{r.dir} repeats seed {seed} of {kept[seed].dir} (same configuration); the cell counts "
                      f"that seed once, from {kept[seed].dir}")
            continue
        kept[seed] = r
    return list(kept.values())


def group_seeds(runs: list[RunInfo]) -> list[RunInfo]:
    """Runs whose configs differ only in train.seed (and where / how fast they ran) become one seed group: a
    RunInfo whose results are the means over its usable runs, with the runs in ``members``. A configuration
    with one run stays that run."""
    groups: dict[str, list[RunInfo]] = {}
    for r in runs:
        groups.setdefault(_config_key(r), []).append(r)
    out = []
    for members in groups.values():
        members = _one_run_per_seed(sorted(members, key=lambda r: (r.seed, str(r.dir))))
        if len(members) == 1:
            out.append(members[0])
            continue
        usable = [r for r in members if r.usable]
        first = (usable or members)[0]
        results = dict(first.results)
        results.update({"valid": _mean_split(usable, "valid"), "test": _mean_split(usable, "test"),
                         "stop_reason": first.results.get("stop_reason") if usable else "collapsed"})
        subsets = [r.results.get("test_subsets") for r in usable]
        if subsets and all(subsets):
            results["test_subsets"] = {name: {"users": s0.get("users", 0), **{m: float(np.mean([s[name][m] for s in subsets]))
                                                                               for m in s0 if m != "users"}}
                                       for name, s0 in subsets[0].items()}
        for key in ("seconds_per_epoch", "seconds_to_best"):
            values = [r.results[key] for r in usable if r.results.get(key) is not None]
            if values:
                results[key] = float(np.mean(values))
        peaks = [r.results["peak_memory_bytes"] for r in usable if r.results.get("peak_memory_bytes")]
        if peaks:
            results["peak_memory_bytes"] = max(peaks)
        out.append(RunInfo(_group_dir(members), results, first.config, first.prepare, first.dataset, first.log, members))
    return out


def load_arm(path: str | Path | list) -> RunInfo:
    """One arm of a comparison: a run directory, a folder holding the runs of one configuration (its seeds),
    a sweep's configuration name without its seed suffix (``runs/sweep/NAME`` for ``NAME-s1``, ``NAME-s2``, ...,
    or ``NAME_seed-1``, ... as sweeps named them before),
    or a list of run directories of one configuration."""
    if isinstance(path, (list, tuple)):
        runs = find_runs(list(path))
        path = Path(" + ".join(map(str, path)))
    elif not Path(path).exists():
        path = Path(path)
        seeds = sorted(p for p in path.parent.glob(f"{glob_escape(path.name)}*")
                       if (split_seed(p.name) or ("",))[0] == path.name and (p / "results.json").exists())
        if not seeds:
            raise FileNotFoundError(f"{path} is not a run directory, a folder of runs, or a sweep configuration with "
                                    "-sN (or _seed-N) runs")
        runs = find_runs(seeds)
    else:
        path = Path(path)
        runs = find_runs([path])
    groups = group_seeds(runs)
    if len(groups) > 1:
        raise FileNotFoundError(f"{path} holds runs of {len(groups)} configurations (not only seeds apart): "
                                + ", ".join(str(g.dir) for g in groups[:4]) + "; give one of them")
    return groups[0]


def glob_escape(name: str) -> str:
    return glob.escape(name)


def best_on_valid(runs: list[RunInfo]) -> RunInfo | None:
    """The usable run with the highest validation score; ties go to the first directory name."""
    ok = sorted((r for r in runs if r.usable), key=lambda r: str(r.dir))
    return max(ok, key=lambda r: r.valid_score) if ok else None
