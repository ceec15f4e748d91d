"""Optional dependencies, each installed by one extra of the package: an import of one that is missing is a
one-line error naming the command to run, never a traceback."""
from __future__ import annotations

import importlib

from .config import ConfigError

# top-level module -> (the PyPI package, the extra that installs it)
EXTRAS = {
    "optuna": ("optuna", "tune"), "transformers": ("transformers", "text"), "tokenizers": ("tokenizers", "text"),
    "timm": ("timm", "vision"), "PIL": ("pillow", "vision"), "lmdb": ("lmdb", "vision"),
    "torchvision": ("torchvision", "vision"), "peft": ("peft", "lora"), "fastapi": ("fastapi", "serve"),
    "uvicorn": ("uvicorn", "serve"), "httpx": ("httpx", "serve"), "tensorboard": ("tensorboard", "tensorboard"),
}


class MissingExtra(ConfigError):
    """An optional package that is not installed; the message says which extra installs it."""


def need(module: str, what: str):
    """``module`` imported, or :class:`MissingExtra`: "<what> needs <package>: pip install 'morec[<extra>]'"."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package, extra = EXTRAS[module.split(".")[0]]
        raise MissingExtra(f"{what} needs {package}: pip install 'morec[{extra}]'") from None
