"""A trained run directory read back, and the device it runs on: what training, serving (recommend, serve,
catalog, api), evaluation and pre-training share, so none of them needs the training loop to load a model."""
from __future__ import annotations

from pathlib import Path

import torch

from .checkpoint import read_tensors
from .config import Config, ConfigError, load_config
from .data.dataset import PreparedDataset
from .model import Recommender, build_model


def check_device(name: str, option: str = "train.device") -> None:
    """A device this machine has, or a ConfigError saying which to use instead."""
    if name == "auto":
        return
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"{option}={name!r} is not a device name; use cpu, cuda, cuda:N, mps or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{option}={name}: this machine has no usable CUDA GPU (or this PyTorch build has no CUDA); "
                          "use cpu, or auto to take a GPU only when there is one")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"{option}={name}: there are only {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError(f"{option}={name}: MPS is not available here; use cpu or auto")


def resolve_device(name: str) -> torch.device:
    """``auto``: a CUDA GPU when there is one, else the CPU; any other name as torch spells it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_run(run_dir: str | Path, device: str = "cpu") -> tuple[Config, Recommender, PreparedDataset]:
    """Rebuild the model of a run directory from its config and best weights alone (evaluation mode)."""
    run = Path(run_dir)
    if not (run / "config.yaml").exists():
        raise FileNotFoundError(f"{run} is not a run directory (no config.yaml); `morec train` writes one")
    cfg = load_config(run / "config.yaml")
    check_device(device, "--device")
    dataset = PreparedDataset(cfg.data)
    model = build_model(cfg.model, dataset)
    weights = read_tensors(run / "model.safetensors", device)
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[1:2] or [str(err)]
        raise ConfigError(f"{run / 'model.safetensors'} does not fit the model that {run / 'config.yaml'} describes "
                          f"({first[0].strip()}); the config was edited after training. Restore the config the run was "
                          "trained with, or train again") from None
    return cfg, model.to(device).eval(), dataset
