"""Checkpoints that survive a crash and never unpickle.

A checkpoint is two files in the run directory:

* ``checkpoint-NNNNNNN.safetensors``: every tensor (model weights, optimizer moments, torch RNG states);
* ``checkpoint.json``: everything else (config, epoch and position in the epoch, early-stopping state,
  timers, the metrics log, the optimizer's param groups and an index of its tensors, Python / NumPy RNG
  states) and the name of its tensor file.

Writes are atomic: each file goes to a temporary name in the same directory, is fsynced, then
``os.replace``-d into place, and the directory is fsynced. The tensor file is written first under a
new name and ``checkpoint.json`` (the pointer) last, so a crash at any instant leaves either the
previous checkpoint or the new one complete, never a mix. Older tensor files are removed after the
pointer moves. Loading reads JSON and safetensors only (no pickle, no ``torch.load``).
"""
from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .tempfiles import temp_sibling

FORMAT = "morec-checkpoint"
VERSION = 1
POINTER = "checkpoint.json"


class CheckpointError(ValueError):
    """A checkpoint that is missing, from another format, or inconsistent; the message says what to do."""


# --- atomic files ------------------------------------------------------------------------------

def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some filesystems / platforms cannot open a directory
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# safetensors' save_file creates its file 0600 (whatever file was there); weights get the usual mode
_FILE_MODE = 0o666 & ~_umask()


def _temp_name(path: Path) -> Path:
    # named with our pid (a later run removes those of killed writers), created 0666 less the umask
    return temp_sibling(path)


def _commit(tmp: Path, path: Path) -> None:
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    tmp = _temp_name(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        _commit(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_save_tensors(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None) -> int:
    """safetensors file written atomically; returns its size in bytes."""
    path = Path(path)
    tmp = _temp_name(path)
    try:
        try:
            save_file(_storable(tensors), str(tmp), metadata=metadata)
        except Exception as err:  # noqa: BLE001 - safetensors reports an OS error (a full disk) as its own type
            raise _os_error(err, path) or err
        os.chmod(tmp, _FILE_MODE)
        size = tmp.stat().st_size
        _commit(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return size


def _os_error(err: Exception, path: Path) -> OSError | None:
    """The OSError inside a safetensors error ("I/O error: No space left on device (os error 28)", or in older
    versions "IoError(Os { code: 28, ... })"), naming ``path``; None if none."""
    if isinstance(err, OSError):
        return None
    found = re.search(r"(?:\(os error |Os \{ code: )(\d+)", str(err))
    if found is None:
        return None
    code = int(found.group(1))
    return OSError(code, os.strerror(code), str(path))


def _storable(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU, contiguous, and no two entries sharing memory (safetensors refuses shared storage, e.g. tied weights)."""
    out, seen = {}, set()
    for name, t in tensors.items():
        t = t.detach().cpu().contiguous()
        key = (t.untyped_storage().data_ptr(), t.storage_offset()) if t.numel() else None
        if key in seen:
            t = t.clone()
        elif key is not None:
            seen.add(key)
        out[name] = t
    return out


def read_tensors(path: str | Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """A safetensors file's tensors; a missing, truncated or foreign file is a CheckpointError naming it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} is missing; the run directory is incomplete (train it again, or "
                              "`morec train --resume` it if it has a checkpoint)")
    try:
        return load_file(str(path), device=str(device))
    except Exception as err:  # noqa: BLE001 - safetensors' own error types differ between versions
        raise CheckpointError(f"{path} is not a readable safetensors file ({type(err).__name__}: {err}); it is "
                              "truncated or was replaced. Restore it, or train the run again") from None


# --- state pieces ------------------------------------------------------------------------------

def flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """``optimizer.state_dict()`` -> (tensors named ``optim.<param>.<key>``, a JSON index of the rest)."""
    tensors, index = {}, {"param_groups": _jsonable(state["param_groups"]), "state": {}}
    for param, entries in state["state"].items():
        kept = {}
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                name = f"optim.{param}.{key}"
                tensors[name] = value
                kept[key] = {"tensor": name}
            else:
                kept[key] = {"value": _jsonable(value)}
        index["state"][str(param)] = kept
    return tensors, index


def unflatten_optimizer(tensors: dict[str, torch.Tensor], index: dict) -> dict:
    state = {}
    for param, entries in index["state"].items():
        state[int(param)] = {key: tensors[e["tensor"]] if "tensor" in e else e["value"] for key, e in entries.items()}
    return {"state": state, "param_groups": index["param_groups"]}


def rng_state(prefix: str = "rng") -> tuple[dict[str, torch.Tensor], dict]:
    """(torch generator states as tensors, Python and NumPy global states as JSON)."""
    tensors = {f"{prefix}.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"{prefix}.cuda.{i}"] = s
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    info = {"python": [version, list(internal), gauss],
            "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)]}
    return tensors, info


def set_rng_state(tensors: dict[str, torch.Tensor], info: dict, prefix: str = "rng") -> None:
    torch.set_rng_state(tensors[f"{prefix}.torch"].to(torch.uint8))
    cuda = [tensors[f"{prefix}.cuda.{i}"] for i in range(torch.cuda.device_count()) if f"{prefix}.cuda.{i}" in tensors]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    version, internal, gauss = info["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = info["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


def _jsonable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


# --- whole checkpoints -------------------------------------------------------------------------

def save_checkpoint(run_dir: str | Path, tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    """Write a checkpoint atomically; ``meta`` must be JSON-serializable. Returns {file, bytes, pointer}."""
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    previous = _pointed_file(run)
    serial = int(meta.get("serial", 0))
    name = f"checkpoint-{serial:07d}.safetensors"
    if name == previous:  # never overwrite the file the current pointer names
        name = f"checkpoint-{serial:07d}b.safetensors"
    size = atomic_save_tensors(tensors, run / name, {"format": FORMAT})
    pointer = {"format": FORMAT, "version": VERSION, "tensors": name, "tensor_bytes": size, **meta}
    atomic_write_text(run / POINTER, json.dumps(pointer, indent=1))
    for old in run.glob("checkpoint-*.safetensors"):  # superseded tensor files (and any orphan of a crash)
        if old.name != name:
            old.unlink(missing_ok=True)
    return {"file": name, "bytes": size + (run / POINTER).stat().st_size}


def _pointed_file(run: Path) -> str | None:
    try:
        return json.loads((run / POINTER).read_text(encoding="utf-8")).get("tensors")
    except (OSError, ValueError, AttributeError):
        return None


def has_checkpoint(run_dir: str | Path) -> bool:
    return (Path(run_dir) / POINTER).exists()


def read_checkpoint_meta(run_dir: str | Path) -> dict:
    """The JSON part of the run's latest checkpoint (config, state, index), without reading tensors."""
    run = Path(run_dir)
    pointer = run / POINTER
    if not pointer.exists():
        raise CheckpointError(f"{run} has no checkpoint ({POINTER}); `morec train` writes one every epoch "
                              f"(unless train.checkpoints=false). Start a new run instead of resuming this one")
    try:
        meta = json.loads(pointer.read_text(encoding="utf-8"))
    except ValueError as err:
        raise CheckpointError(f"{pointer} is not valid JSON ({err}); the checkpoint is damaged, start a new run") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{pointer} is not a morec checkpoint (format {meta.get('format') if isinstance(meta, dict) else None!r})")
    if meta.get("version", 0) > VERSION:
        raise CheckpointError(f"{pointer} has checkpoint version {meta['version']}; this morec reads up to {VERSION}, upgrade morec")
    return meta


def load_checkpoint_tensors(run_dir: str | Path, meta: dict, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    tensor_file = Path(run_dir) / meta["tensors"]
    if not tensor_file.exists():
        raise CheckpointError(f"{Path(run_dir) / POINTER} names {tensor_file.name}, which is missing; the run directory was altered")
    return read_tensors(tensor_file, device)


def load_checkpoint(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[dict, dict[str, torch.Tensor]]:
    """(meta, tensors) of the run's latest checkpoint. Reads JSON and safetensors only."""
    meta = read_checkpoint_meta(run_dir)
    return meta, load_checkpoint_tensors(run_dir, meta, device)


def remove_checkpoint(run_dir: str | Path) -> None:
    """Forget a previous run's checkpoint (a fresh run in the same directory must not resume it)."""
    run = Path(run_dir)
    (run / POINTER).unlink(missing_ok=True)
    for old in run.glob("checkpoint-*.safetensors"):
        old.unlink(missing_ok=True)
