"""Training cost (the paper's Table 6): trainable parameters, FLOPs per item, seconds per epoch, peak memory.

``morec.train`` records ``flops_per_item`` and ``peak_memory_bytes`` in results.json at the end of a run
(via :func:`item_flops` and :func:`peak_memory`); :func:`run_cost` reads one run directory's figures.

- trainable parameters: every parameter with ``requires_grad`` (the ID table included; a frozen encoder's weights not).
- FLOPs per item: one forward of the item encoder for one item (batch size 1, as the paper), counted by
  ``torch.utils.flop_counter.FlopCounterMode`` (matrix products and convolutions; an embedding lookup counts 0).
  A frozen (TS) encoder reads cached features, so only its trained head is counted: the per-step cost of training.
- seconds per epoch: training seconds of the run's epochs, evaluation excluded.
- peak memory: each run's own. On CUDA ``torch.cuda.max_memory_allocated`` since the run started; on Linux CPU
  the resident high-water mark (``VmHWM``) after it was reset at the run's start through ``/proc/self/clear_refs``,
  so a small run after a large one in the same process (a sweep) reports its own, small peak. Where the reset is
  not possible (other systems) the process's ``ru_maxrss`` is reported and marked as the process-wide figure.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch import nn


def trainable_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def item_flops(model: nn.Module, item: int = 1) -> int | None:
    """FLOPs of the item encoder's forward for one item (``model`` a Recommender or an ItemEncoder); None if
    it cannot be counted."""
    from torch.utils.flop_counter import FlopCounterMode

    encoder = getattr(model, "item_encoder", model)
    device = next((p.device for p in encoder.parameters()), torch.device("cpu"))
    was_training = encoder.training
    encoder.eval()
    try:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            encoder(torch.tensor([item], device=device))
        return int(counter.get_total_flops())
    except Exception as err:  # a counter that cannot trace some op must not lose a finished run
        print(f"morec: FLOPs per item not counted ({type(err).__name__}: {err})", file=sys.stderr)
        return None
    finally:
        encoder.train(was_training)


def status_kib(field: str) -> int | None:
    """A ``/proc/self/status`` figure in KiB (VmHWM, VmRSS); None where there is no such file."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_memory(device: torch.device) -> bool:
    """Start a new peak for this run; returns whether the CPU resident high-water mark could be reset."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        Path("/proc/self/clear_refs").write_text("5")  # "5" resets VmHWM to the current RSS (Linux >= 4.0)
    except OSError:
        return False
    return status_kib("VmHWM") is not None


def peak_memory(device: torch.device, reset: bool = True) -> dict:
    """{"peak_memory_bytes": n, "peak_memory_kind": kind}: kind is "cuda_max_allocated" (GPU, since the last
    reset), "cpu_hwm" (Linux resident high-water mark since :func:`reset_peak_memory`) or "cpu_max_rss" (the
    whole process's peak, where it cannot be reset). ``reset``: what :func:`reset_peak_memory` returned."""
    if device.type == "cuda":
        return {"peak_memory_bytes": int(torch.cuda.max_memory_allocated(device)), "peak_memory_kind": "cuda_max_allocated"}
    hwm = status_kib("VmHWM") if reset else None
    if hwm is not None:
        return {"peak_memory_bytes": hwm * 1024, "peak_memory_kind": "cpu_hwm"}
    try:
        import resource

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        rss *= 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    except (ImportError, OSError):
        return {"peak_memory_bytes": None, "peak_memory_kind": "unknown"}
    return {"peak_memory_bytes": int(rss), "peak_memory_kind": "cpu_max_rss"}


def run_cost(run_dir: str | Path) -> dict:
    """The cost figures of a finished run directory (results.json); a missing figure is None."""
    results = json.loads((Path(run_dir) / "results.json").read_text(encoding="utf-8"))
    return {
        "trainable_parameters": results.get("trainable_parameters"),
        "flops_per_item": results.get("flops_per_item"),
        "seconds_per_epoch": results.get("seconds_per_epoch"),
        "peak_memory_bytes": results.get("peak_memory_bytes"),
        "peak_memory_kind": results.get("peak_memory_kind"),
        "processes": results.get("processes", 1),
        "device": (results.get("config") or {}).get("train", {}).get("device"),
    }


def human(n: float | None, unit: str = "") -> str:
    """1234567 -> '1.23M'; None -> ''."""
    if n is None:
        return ""
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{suffix}{unit}"
    return f"{n:g}{unit}"


def human_bytes(n: float | None) -> str:
    if n is None:
        return ""
    for scale, suffix in ((1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= scale:
            return f"{n / scale:.2f} {suffix}"
    return f"{int(n)} B"
