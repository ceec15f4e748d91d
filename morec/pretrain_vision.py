"""Extra masked-image-model (MAE) pre-training of a ViT-MAE encoder on a dataset's own item images
(the paper's Table 8, MAE rows): the saved model directory is then given to ``model.encoder.pretrained``
with ``model.encoder.kind=vision``.

Images come from the dataset's image store (decoded once). A held-out share of the items is never
trained on; its reconstruction loss, with the same masks each time, is measured before and after,
so the log says whether the extra pre-training did anything.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import ConfigError, _check
from .data.dataset import PreparedDataset
from .data.images import build_image_store, to_model_input
from .encoders.hf import image_normalization
from .pretraining import record_epoch, run_cli, start_run, write_result



@dataclass
class PretrainVisionConfig:
    data: str = ""  # prepared dataset directory whose item images are the corpus
    pretrained: str = ""  # local ViT-MAE model directory (ViTMAEForPreTraining, e.g. facebook/vit-mae-base) or hub name
    out: str = "runs/pretrain-vision"  # the model directory written (loadable by the vision encoder)
    epochs: int = 3
    batch_size: int = 64
    lr: float = 1.5e-4  # MAE's base lr (per 256 images)
    weight_decay: float = 0.05
    mask_ratio: float = 0.75  # MAE's recipe
    holdout: float = 0.1  # share of items kept out of training to measure the loss on
    image_missing: str = "error"
    seed: int = 42
    device: str = "auto"
    threads: int = 0

    def validate(self) -> "PretrainVisionConfig":
        _check(bool(self.data), "data: the prepared dataset directory must be set")
        _check(bool(self.pretrained), "pretrained: a ViT-MAE model directory (or hub name) must be set")
        _check(self.epochs > 0 and self.batch_size > 0, "epochs and batch_size must be > 0")
        _check(self.lr > 0 and self.weight_decay >= 0, "lr must be > 0 and weight_decay >= 0")
        _check(0 < self.mask_ratio < 1, "mask_ratio must be in (0, 1)")
        _check(0 < self.holdout < 1, "holdout must be in (0, 1)")
        _check(self.image_missing in ("error", "blank"), "image_missing must be error or blank")
        return self


def _load_mae(name: str):
    try:
        from transformers import ViTMAEForPreTraining
    except ImportError:
        raise ConfigError("pretrain-vision needs transformers: pip install 'morec[vision]'") from None
    path = Path(name).expanduser()
    local = path.is_dir()
    try:
        model = ViTMAEForPreTraining.from_pretrained(str(path) if local else name, **({"local_files_only": True} if local else {}))
    except (OSError, ValueError) as e:
        raise ConfigError(f"pretrain-vision: could not load {name!r} as a ViT-MAE model: {e}") from None
    mean, std = image_normalization(path if local else None)
    return model, mean, std


def pretrain_vision(cfg: PretrainVisionConfig, dataset: PreparedDataset | None = None, log=print) -> dict:
    """Continue MAE training on the dataset's item images; save the model directory to ``cfg.out``."""
    device = start_run(cfg)
    dataset = dataset or PreparedDataset(cfg.data)
    model, mean, std = _load_mae(cfg.pretrained)
    model.config.mask_ratio = cfg.mask_ratio
    size = int(model.config.image_size)
    store = build_image_store(dataset, size, cfg.image_missing, log=log)
    model.to(device)
    mean_t, std_t = torch.tensor(mean, device=device), torch.tensor(std, device=device)

    rng = np.random.default_rng(cfg.seed)
    items = rng.permutation(np.arange(1, dataset.n_items + 1))
    n_held = max(1, int(round(cfg.holdout * len(items))))
    held, train_items = items[:n_held], items[n_held:]
    n_patches = (size // model.config.patch_size) ** 2

    def batch_loss(chunk: np.ndarray, noise_seed: int | None = None) -> torch.Tensor:
        x = to_model_input(store.gather(chunk), mean_t, std_t, device)
        noise = None
        if noise_seed is not None:  # fixed masks: the held-out loss is comparable across epochs
            g = torch.Generator().manual_seed(noise_seed)
            noise = torch.rand(len(chunk), n_patches, generator=g).to(device)
        return model(pixel_values=x, noise=noise).loss

    @torch.no_grad()
    def heldout_loss() -> float:
        was = model.training
        model.eval()
        losses = [float(batch_loss(c, cfg.seed + i)) * len(c) for i, c in
                  enumerate(np.array_split(held, max(1, math.ceil(len(held) / cfg.batch_size))))]
        model.train(was)
        return sum(losses) / len(held)

    before = heldout_loss()
    log(f"pretrain-vision: {len(train_items):,} training images, {len(held):,} held out ({size} px); "
        f"held-out MAE loss {before:.4f}")
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr * cfg.batch_size / 256, weight_decay=cfg.weight_decay,
                            betas=(0.9, 0.95))
    model.train()
    history, start = [], time.perf_counter()
    for epoch in range(cfg.epochs):
        total, steps = 0.0, 0
        order = rng.permutation(train_items)
        for s in range(0, len(order), cfg.batch_size):
            loss = batch_loss(order[s:s + cfg.batch_size])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, steps = total + loss.item(), steps + 1
        record_epoch(history, epoch, total, steps, heldout_loss(), "MAE", cfg.lr, log)

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    model.config.mask_ratio = 0.75  # the saved model keeps MAE's own default; the encoder sets 0 when it loads
    model.save_pretrained(out)
    (out / "preprocessor_config.json").write_text(json.dumps(
        {"image_processor_type": "ViTImageProcessor", "image_mean": list(mean), "image_std": list(std),
         "size": {"height": size, "width": size}, "do_normalize": True, "do_resize": True}, indent=2))
    return write_result(out, before, history, start, cfg, log, "--model.encoder.kind=vision --model.encoder.pretrained")


def main(argv: list[str] | None = None) -> int:
    """``morec pretrain-vision [--config FILE] --data DIR --pretrained DIR --out DIR [--KEY=VALUE ...]``."""
    return run_cli(argv, "morec pretrain-vision", __doc__.split("\n\n")[0], PretrainVisionConfig, pretrain_vision)


if __name__ == "__main__":
    raise SystemExit(main())
