"""PyTorch's own distributed engine, as the training loop uses it.

``torchrun --nproc_per_node N -m morec train ...`` sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR;
:func:`init_from_env` joins the process group (NCCL on GPUs, gloo on CPU) and the model runs under
DistributedDataParallel (also with N = 1). Started without torchrun, every helper here is a no-op,
so the loop in ``train.py`` is the same code either way.

How work is split (the global batch stays ``train.batch_size``, whatever N is):

* training: every rank draws the same batch (its order and negatives are a pure function of
  (seed, epoch)) and keeps a contiguous slice of its rows; the slice's loss is weighted by its share
  of the batch's targets, so DDP's gradient average equals the single-process gradient;
* evaluation: the catalogue is encoded in N slices and all-gathered; users are scored in N slices
  and their ranks all-gathered, so every rank holds the same metrics and takes the same decisions;
* only rank 0 writes files and logs.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from .data.batches import Batch
from .runs import check_device


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    owns_group: bool = False  # we initialized the process group, so we destroy it

    @property
    def enabled(self) -> bool:
        """A process group is in use (torchrun, even with one process): the DDP code path runs."""
        return self.backend is not None

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_from_env(device_name: str) -> tuple[DistInfo, torch.device]:
    """Join the process group described by torchrun's environment variables (if any) and pick the device."""
    check_device(device_name)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    launched = world > 1 or "TORCHELASTIC_RUN_ID" in os.environ  # torchrun sets it, even for one process
    if dist.is_available() and dist.is_initialized():  # already set up by the caller (e.g. a spawn test)
        info = DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())),
                        dist.get_backend())
    elif launched:
        if not dist.is_available():
            raise RuntimeError("started by torchrun, but this PyTorch build has no torch.distributed")
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        use_cuda = device_name.startswith("cuda") or (device_name == "auto" and torch.cuda.is_available())
        backend = "nccl" if use_cuda else "gloo"
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
        info = DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, backend, owns_group=True)
    else:
        info = DistInfo()
    if device_name == "auto":
        device = torch.device(f"cuda:{info.local_rank}" if torch.cuda.is_available() else "cpu")
    elif device_name == "cuda" and info.enabled:
        device = torch.device(f"cuda:{info.local_rank}")
    else:
        device = torch.device(device_name)
    if info.enabled and info.backend == "nccl" and device.type != "cuda":
        raise RuntimeError(f"the NCCL process group needs CUDA devices, but train.device is {device_name!r}")
    return info, device


def shutdown(info: DistInfo) -> None:
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def _comm_device(info: DistInfo, device: torch.device) -> torch.device:
    return device if info.backend == "nccl" else torch.device("cpu")


def all_reduce_sum(info: DistInfo, values: list[float], device: torch.device) -> list[float]:
    if not info.enabled:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=_comm_device(info, device))
    dist.all_reduce(t)
    return t.cpu().tolist()


def all_gather_rows(info: DistInfo, local: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Concatenate every rank's ``local`` (first dims may differ) in rank order."""
    if not info.enabled:
        return local
    comm = _comm_device(info, device)
    n = torch.tensor([local.shape[0]], device=comm)
    sizes = [torch.zeros_like(n) for _ in range(info.world_size)]
    dist.all_gather(sizes, n)
    sizes = [int(s.item()) for s in sizes]
    padded = local.new_zeros((max(sizes), *local.shape[1:])).to(comm)
    padded[:local.shape[0]] = local.to(comm)
    parts = [torch.empty_like(padded) for _ in range(info.world_size)]
    dist.all_gather(parts, padded)
    return torch.cat([p[:s] for p, s in zip(parts, sizes)]).to(local.device)


class CandidateGather:
    """The in-batch softmax's candidates of every process (``LossContext.gather``).

    Each process encodes the distinct positives of its rows; they are all-gathered, with
    ``torch.distributed.nn.functional.all_gather`` so that the gradient of every process's loss reaches the
    process that encoded the vector (its backward sums the gradients over processes). An item that is a
    positive on several processes is kept once, with the vector of the lowest rank, as one process encodes
    each item of its batch once. The gathers run on their own process group, so they never interleave with
    DDP's gradient all-reduce on the default group.
    """

    def __init__(self, info: DistInfo, device: torch.device):
        self.info, self.device = info, device
        self.group = dist.new_group(backend=info.backend)

    def __call__(self, ids: torch.Tensor, vecs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from torch.distributed.nn.functional import all_gather as all_gather_with_grad

        comm = _comm_device(self.info, self.device)
        n = torch.tensor([len(ids)], device=comm)
        sizes = [torch.zeros_like(n) for _ in range(self.info.world_size)]
        dist.all_gather(sizes, n, group=self.group)
        sizes = [int(s) for s in sizes]
        pad = max(sizes) - len(ids)  # collectives need equal shapes
        id_parts = [torch.empty(max(sizes), dtype=ids.dtype, device=comm) for _ in sizes]
        dist.all_gather(id_parts, F.pad(ids, (0, pad)).to(comm), group=self.group)
        vec_parts = all_gather_with_grad(F.pad(vecs, (0, 0, 0, pad)).to(comm), group=self.group)
        all_ids = torch.cat([p[:s] for p, s in zip(id_parts, sizes)]).to(ids.device)
        all_vecs = torch.cat([p[:s] for p, s in zip(vec_parts, sizes)]).to(vecs.device)
        distinct, inverse = torch.unique(all_ids, return_inverse=True)  # sorted, as one process's candidates
        order = torch.arange(len(all_ids), device=all_ids.device)
        first = torch.full_like(distinct, len(all_ids)).scatter_reduce_(0, inverse, order, "amin")
        return distinct, all_vecs[first]


def gather_ranks(info: DistInfo, local: np.ndarray, device: torch.device) -> np.ndarray:
    return all_gather_rows(info, torch.from_numpy(np.ascontiguousarray(local)), device).numpy()


def shard_slice(n: int, info: DistInfo) -> slice:
    """This rank's contiguous part of ``n`` rows (the first ``n % N`` ranks get one more)."""
    per, extra = divmod(n, info.world_size)
    start = info.rank * per + min(info.rank, extra)
    return slice(start, start + per + (info.rank < extra))


def _rows(t: torch.Tensor | None, rows: slice) -> torch.Tensor | None:
    return None if t is None else t[rows]


def shard_batch(batch: Batch, info: DistInfo) -> tuple[Batch, float]:
    """(this rank's rows of ``batch``, the weight that makes DDP's gradient average the global batch mean).

    A rank whose slice holds no target gets the batch's first row with weight 0, so it still runs
    forward/backward and joins the gradient all-reduce.
    """
    if not info.enabled:
        return batch, 1.0
    n_total = int((batch.targets > 0).sum())
    rows = shard_slice(batch.targets.shape[0], info)
    n_local = int((batch.targets[rows] > 0).sum())
    if n_local == 0:
        rows, weight = slice(0, 1), 0.0
    else:
        weight = info.world_size * n_local / n_total
    negatives = batch.negatives if batch.negatives is None or batch.negatives.ndim == 1 else batch.negatives[rows]  # (K,): shared
    part = Batch(batch.users[rows], _rows(batch.history, rows), batch.targets[rows], negatives)
    return part, weight


@torch.no_grad()
def encode_all_items_sharded(model, info: DistInfo, device: torch.device, batch_size: int = 4096) -> torch.Tensor:
    """Like ``Recommender.encode_all_items``, with each rank encoding one slice of the catalogue."""
    n_items = model.item_encoder.n_items
    part = shard_slice(n_items, info)
    ids = torch.arange(part.start + 1, part.stop + 1, device=device)
    if len(ids):
        local = torch.cat([model.item_encoder(chunk) for chunk in ids.split(batch_size)])
    else:  # more ranks than items: still learn the vector width / dtype for the gather
        local = model.item_encoder(torch.ones(1, dtype=torch.long, device=device))[:0]
    vecs = all_gather_rows(info, local, device)
    return torch.cat([vecs.new_zeros(1, vecs.shape[-1]), vecs])


@contextlib.contextmanager
def sharded_item_encoding(model, info: DistInfo, device: torch.device):
    """Within the block, ``model.encode_all_items()`` is computed in slices across ranks and gathered."""
    if not info.enabled:
        yield
        return
    model.encode_all_items = lambda batch_size=4096: encode_all_items_sharded(model, info, device, batch_size)
    try:
        yield
    finally:
        del model.encode_all_items


def broadcast_state(model: torch.nn.Module, info: DistInfo) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    if not info.enabled:
        return
    for t in model.state_dict().values():
        comm = t if (info.backend != "nccl" or t.is_cuda) else t.cuda()
        dist.broadcast(comm, src=0)
        if comm is not t:
            t.copy_(comm)


def gather_tensor_list(info: DistInfo, t: torch.Tensor, device: torch.device) -> list[torch.Tensor]:
    """Every rank's equally-shaped ``t`` (e.g. RNG states), in rank order."""
    if not info.enabled:
        return [t]
    comm = _comm_device(info, device)
    parts = [torch.empty_like(t, device=comm) for _ in range(info.world_size)]
    dist.all_gather(parts, t.to(comm))
    return [p.cpu() for p in parts]


def wrap_ddp(loss_module: torch.nn.Module, probe: Batch, info: DistInfo, device: torch.device, autocast):
    """``loss_module`` under DistributedDataParallel; whether it must look for unused parameters is found once
    on ``probe`` (a batch), in the ``autocast()`` the training runs under, and agreed over the ranks."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    local, _ = shard_batch(probe, info)
    params = [p for p in loss_module.parameters() if p.requires_grad]
    with autocast():
        unused = find_unused_parameters(loss_module, local.to(device), params)
    unused = all_reduce_sum(info, [float(unused)], device)[0] > 0
    ids = [device.index] if device.type == "cuda" else None
    return DDP(loss_module, device_ids=ids, find_unused_parameters=unused)


def rank_rng_states(info: DistInfo, device: torch.device) -> dict[str, torch.Tensor]:
    """Every rank's torch (and CUDA) generator state, which differ under torchrun (dropout), gathered for a
    checkpoint; {} in one process. Every rank must call it."""
    if not info.enabled:
        return {}
    states = {f"rng.rank{r}.torch": s
              for r, s in enumerate(gather_tensor_list(info, torch.get_rng_state(), device))}
    if device.type == "cuda":
        cuda = torch.cuda.get_rng_state(device)
        states.update({f"rng.rank{r}.cuda": s for r, s in enumerate(gather_tensor_list(info, cuda, device))})
    return states


def restore_rank_rng_state(info: DistInfo, device: torch.device, tensors: dict[str, torch.Tensor]) -> None:
    """This rank's generator state from a checkpoint written by as many ranks (see :func:`rank_rng_states`)."""
    if not info.enabled:
        return
    torch.set_rng_state(tensors[f"rng.rank{info.rank}.torch"])
    if device.type == "cuda" and f"rng.rank{info.rank}.cuda" in tensors:
        torch.cuda.set_rng_state(tensors[f"rng.rank{info.rank}.cuda"], device)


def find_unused_parameters(loss_fn, batch: Batch, params: list[torch.nn.Parameter]) -> bool:
    """Whether one backward of ``loss_fn(batch)`` leaves some trainable parameter without a gradient.

    DDP needs to know this up front; the probe restores the torch RNG so it leaves no trace."""
    state = torch.get_rng_state()
    cuda_state = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    for p in params:
        p.grad = None
    loss_fn(batch).backward()
    unused = any(p.grad is None for p in params)
    for p in params:
        p.grad = None
    torch.set_rng_state(state)
    if cuda_state is not None:
        torch.cuda.set_rng_state_all(cuda_state)
    return unused
