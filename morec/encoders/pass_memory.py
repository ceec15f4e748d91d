"""How many items a pass over every item (frozen features, per-layer states, cached lower layers) runs at once.

The pass runs without gradients, so its memory is the activations of one step. In steps of
``model.encoder.batch_size`` (256) images, EfficientNet-Lite0 at 224 px held 5.5 GB of a CPU's memory where its
training run on the cached features needs 0.9 GB: activations of 256 images alive at once. On a CPU a step is
therefore sized from the model itself: its largest layer output for one item, times what a forward keeps alive
beside it, within :data:`PASS_MEMORY`. Small steps cost a CPU no speed: on 2 cores the 300-image pass took 8.4 s
in steps of 6 against about 21 s in steps of 256 (benchmarks/results/image_feature_pass_memory*.log). A GPU keeps
``batch_size``, which its users size to its memory.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

PASS_MEMORY = 256 * 2**20  # activations one step of a CPU pass may hold
ACTIVATION_FACTOR = 8  # a no-grad forward's peak bytes per item over its largest layer output (Lite0: about 6)


@torch.no_grad()
def largest_activation(model: nn.Module, forward: Callable[[], object]) -> int:
    """Bytes of the largest output of any leaf layer of ``model`` in ``forward()`` (a probe on one item, run in
    eval mode; every module's train / eval flag is restored after)."""
    largest = [0]

    def hook(_module, _inputs, out):
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                largest[0] = max(largest[0], t.numel() * t.element_size())

    modules = list(model.modules())
    flags = [m.training for m in modules]
    handles = [m.register_forward_hook(hook) for m in modules if next(m.children(), None) is None]
    try:
        model.eval()
        forward()
    finally:
        for h in handles:
            h.remove()
        for m, flag in zip(modules, flags):
            m.training = flag
    return max(largest[0], 1)


def pass_chunk(model: nn.Module, probe: Callable[[], object], batch_size: int, device: torch.device,
               budget: int | None = None) -> int:
    """Items per step of a pass over every item: ``batch_size``, and on a CPU at most what keeps the step's
    activations (``probe()`` runs the model on one item) within ``budget`` bytes (default :data:`PASS_MEMORY`)."""
    if device.type != "cpu":
        return batch_size
    per_item = ACTIVATION_FACTOR * largest_activation(model, probe)
    return max(1, min(batch_size, (PASS_MEMORY if budget is None else budget) // per_item))
