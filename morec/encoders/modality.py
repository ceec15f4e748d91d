"""The base of every modality item encoder (text, vision, ...): the training modes, the work done once and
its disk caches, the self-check of a split model against its plain forward, and ``encode_content`` for items
never seen in training.

A concrete encoder supplies only what is particular to its modality:

* ``item_inputs(items)``: model inputs of item indices (token ids + mask, normalized pixels, ...);
* ``content_inputs(frame)``: model inputs of raw items (a DataFrame of texts, image paths / uploads), in chunks;
* ``forward_full(x)``: the whole pretrained model's pooled output, (N, hidden) (two-stage features, checks);
* ``forward_lower(x)``: the frozen lower part's output (what mode=top caches);
* ``forward_trained(x, lower)``: the trained part's pooled output, from ``lower`` (the lower part's output) or,
  with ``lower=None``, from the inputs themselves;
* ``use_whole`` / ``use_top`` / ``use_frozen(model, cfg)``: put the loaded model in place for a mode (which
  parameters train, what is split off and frozen); the modes call them.

Training modes (``model.encoder.mode``) are small strategy objects in :data:`MODES` (their names also in
``config.MODES``): a new mode is one :class:`Mode` subclass and exists for every modality at once. It says which
``use_*`` hook puts the model in place and how items' and new content's pooled outputs are computed; what it
caches goes through this base's caches (``_cache_path``, :func:`save_npy_atomic`, :class:`NpyRows`). A mode
needing something new of the model adds one hook here that each modality implements once (``side`` added
``forward_layers``).

* ``e2e``: the whole model is fine-tuned with the recommender (its own lr / weight decay);
* ``top``: only the top ``train_layers`` layers / stages (and the DT-layer) are trained. The frozen lower
  part's output for every item is computed once and cached, so a step runs only the top;
* ``frozen``: two-stage. The frozen model's pooled vector of every item is computed once (and stored in the
  dataset cache); only the DT-layer and the optional TS-DNN layers (``mlp_layers``) train;
* ``side``: the frozen model's pooled state after every layer / stage of every item is computed once (and
  stored); a small side network (morec.encoders.side) maps them to the head's input. No backpropagation
  through the model: a step costs about what a two-stage step costs;
* ``lora``: ``top``'s split and cached lower outputs, but the top layers' own weights stay frozen too and only
  peft's low-rank updates (morec.encoders.lora) on them train.

``from_scratch`` builds the same architecture with random weights (the paper's TFS). Anything that is not
trained lives outside the module tree (``self._frozen``), so it never enters checkpoints or the optimizer, and
a run directory rebuilds the same model from its config alone.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from torch import nn

from ..config import EncoderConfig
from .base import ItemEncoder
from .heads import ModalityHead


# --- training modes ------------------------------------------------------------------------

class Mode:
    """How a modality encoder trains: which part of the model is in the loop and what is cached."""

    name = ""
    hook = ""  # the concrete encoder's method that puts the model in place for this mode

    def attach(self, enc: "ModalityEncoder", model: nn.Module, cfg: EncoderConfig) -> None:
        """Put the loaded pretrained ``model`` in place: what trains, what is frozen, what is split off."""
        getattr(enc, self.hook)(model, cfg)

    def pooled_items(self, enc: "ModalityEncoder", items: torch.Tensor) -> torch.Tensor:
        """Pooled output (N, hidden) of dataset items (their cached work is used where the mode has some)."""
        return self.pooled_inputs(enc, enc.item_inputs(items))

    def pooled_inputs(self, enc: "ModalityEncoder", x) -> torch.Tensor:
        """Pooled output of model inputs computed from content (new items): the same trained path, nothing cached."""
        raise NotImplementedError

    def precompute(self, enc: "ModalityEncoder") -> None:
        """Build (or load) what this mode computes once over every item, so that no epoch pays for it."""


class EndToEnd(Mode):
    name, hook = "e2e", "use_whole"

    def pooled_inputs(self, enc, x):
        return enc.forward_trained(x, None)


class TopLayers(EndToEnd):
    """New content runs the lower part on the fly (``forward_trained(x, None)``), as e2e does."""

    name, hook = "top", "use_top"

    def precompute(self, enc):
        if enc.cache_lower:
            enc.lower_outputs()

    def pooled_items(self, enc, items):
        x = enc.item_inputs(items)
        lower = enc.lower_rows(enc.lower_outputs(), items, x) if enc.cache_lower else None
        return enc.forward_trained(x, lower)


class TwoStage(Mode):
    name, hook = "frozen", "use_frozen"

    def precompute(self, enc):
        enc.frozen_features()

    def pooled_items(self, enc, items):
        return enc.frozen_features()[items]

    def pooled_inputs(self, enc, x):
        return enc.forward_full(x)


class Side(Mode):
    """The side network over the cached per-layer states; new content's states are computed on the fly."""

    name, hook = "side", "use_frozen"

    def attach(self, enc, model, cfg):
        from .side import SideNetwork

        super().attach(enc, model, cfg)
        enc.side = SideNetwork(enc.layer_widths(), cfg.side_width, cfg.side_dropout)
        enc.head = ModalityHead(cfg.side_width, enc.dim, cfg.mlp_layers)  # the head reads the side network

    def precompute(self, enc):
        enc.layer_states()

    def pooled_items(self, enc, items):
        return enc.side(enc.layer_states()[items])

    def pooled_inputs(self, enc, x):
        return enc.side(enc.forward_layers(x).float())


class LoRA(TopLayers):
    """``top``'s part in the loop, with its own weights frozen and peft's low-rank updates injected."""

    name = "lora"

    def attach(self, enc, model, cfg):
        from .lora import add_lora

        super().attach(enc, model, cfg)
        add_lora(enc.model_part, cfg, getattr(getattr(model, "config", None), "model_type", "") or "")


MODES: dict[str, Mode] = {m.name: m for m in (EndToEnd(), TopLayers(), TwoStage(), Side(), LoRA())}
CACHED_ROWS = ("frozen", "side")  # modes whose items are rows of a cache: no length groups needed
PAD_SLACK = 0.1  # a length group may spend at most this share more positions than its items' real length


def length_groups(sizes: torch.Tensor, chunk: int, slack: float = PAD_SLACK) -> list[torch.Tensor]:
    """Indices into ``sizes`` in groups of at most ``chunk`` items, each padded to its own largest size with at
    most ``slack`` more positions than its real ones. Short texts with a long tail (MovieLens titles: mean 6
    tokens, max 26) padded in fixed-count chunks spend about a fifth of a pass on padding; grouping by padding
    costs at most ``slack``, in about log(max / min) / log(1 + slack) groups plus the full ones, so a GPU still
    gets few launches."""
    order = torch.argsort(sizes, stable=True)
    values, counts = torch.unique_consecutive(sizes[order], return_counts=True)
    splits, n, real = [], 0, 0
    for v, c in zip(values.tolist(), counts.tolist()):
        if n and (n + c > chunk or (n + c) * v > (1 + slack) * (real + c * v)):
            splits.append(n)  # the open group is closed rather than topped up: a top-up could overshoot the slack
            n, real = 0, 0
        if not n:
            splits += [chunk] * (c // chunk)  # full groups of one size: no padding at all
            c %= chunk
        n, real = n + c, real + c * v
    if n:
        splits.append(n)
    return list(order.split(splits))


# --- disk caches -----------------------------------------------------------------------------

def save_npy_atomic(path: Path, array: np.ndarray) -> None:
    """Write ``array`` to ``path`` whole or not at all (a killed run leaves no half-written cache)."""
    from ..tempfiles import temp_sibling

    tmp = temp_sibling(path, ".npy")
    np.save(tmp, array)
    tmp.replace(path)


class NpyRows:
    """An (n, ...) .npy array written row chunk by row chunk to a temporary file, then moved into place
    (caches larger than memory are never held whole); ``path=None`` keeps the rows in a tensor instead."""

    def __init__(self, path: Path | None, shape: tuple, dtype: torch.dtype, device: torch.device):
        from ..tempfiles import temp_sibling

        self.path = path
        if path is None:
            self.rows = torch.zeros(shape, dtype=dtype, device=device)
        else:
            self.tmp = temp_sibling(path, ".npy")
            self.np_dtype = np.dtype({torch.float16: np.float16, torch.float32: np.float32}[dtype])
            # Written row by row through the file, never mapped: mapped dirty pages would stay in this process's
            # memory until the end, so a cache larger than memory could not be built. Unwritten rows read as 0.
            with open(self.tmp, "wb") as f:
                np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(self.np_dtype),
                                                         "fortran_order": False, "shape": shape})
                self.offset = f.tell()
                self.row_shape = shape[1:]
                f.truncate(self.offset + int(np.prod(shape)) * self.np_dtype.itemsize)

    def write(self, idx: torch.Tensor, values: torch.Tensor) -> None:
        # rows may be wider than ``values`` in their second dimension: text rows are padded to the longest text
        if self.path is None:
            self.rows[idx, :values.shape[1]] = values.to(self.rows.dtype)
            return
        rows = np.zeros((len(idx),) + self.row_shape, dtype=self.np_dtype)
        rows[:, :values.shape[1]] = values.float().cpu().numpy()
        at = idx.tolist()
        with open(self.tmp, "r+b") as f:
            if at == list(range(at[0], at[0] + len(at))):  # the usual chunk: consecutive rows, one write
                f.seek(self.offset + at[0] * rows[0].nbytes)
                f.write(rows.tobytes())
                return
            for i, row in zip(at, rows):
                f.seek(self.offset + i * row.nbytes)
                f.write(row.tobytes())

    def finish(self):
        """The rows: a tensor, or the stored file opened memory-mapped."""
        if self.path is None:
            return self.rows
        self.tmp.replace(self.path)
        return np.load(self.path, mmap_mode="r")


# --- the base ----------------------------------------------------------------------------------

class ModalityEncoder(ItemEncoder):
    modality = ""  # the config section and the prefix of cache file names
    lower_dtype = torch.float32  # the lower-part cache's element type
    lower_in_memory = True  # load a stored lower-part cache onto the device (False: read rows memory-mapped)
    net_name = "net"  # the attribute holding the trained model part: its name is in saved weights' keys

    @property
    def model_part(self) -> nn.Module | None:
        """The pretrained model part in the module tree (trained, or partly); None in two-stage mode."""
        return getattr(self, self.net_name)

    def __init__(self, cfg: EncoderConfig, hidden: int, dim: int, cache_dir: Path | None = None, cache_key: str = ""):
        super().__init__()
        self.dim, self.pooling, self.chunk, self.cache_lower = dim, cfg.pooling, cfg.batch_size, cfg.cache_lower
        self.hidden = hidden
        self.mode = cfg.mode
        self._mode = MODES[cfg.mode]
        # where computed work is stored for later runs; None = memory only
        self._cache_dir, self._cache_key = cache_dir, cache_key
        self.head = ModalityHead(hidden, dim, cfg.mlp_layers)
        # the pretrained model part in the module tree (trained, or partly); None in two-stage mode
        setattr(self, self.net_name, None)
        # frozen parts live in a plain dict, outside the module tree: not saved, not optimized, not put in
        # train mode (no dropout in frozen layers)
        self._frozen: dict[str, nn.Module] = {}
        self._features: torch.Tensor | None = None  # two-stage features, (n_rows, hidden), once built
        self._lower = None  # lower-part outputs, (n_rows, ...) tensor or memory-mapped array, once built
        self._layer_states: torch.Tensor | None = None  # mode=side: (n_rows, sum(widths)), once built
        self._progress, self._computed = True, []  # a pass's progress bar shown; the passes run since precompute

    # -- what a concrete encoder supplies ------------------------------------------------------
    def item_inputs(self, items: torch.Tensor):
        raise NotImplementedError

    def content_inputs(self, frame, **options) -> Iterable:
        raise NotImplementedError(f"{type(self).__name__} cannot read raw item content")

    def forward_full(self, x) -> torch.Tensor:
        raise NotImplementedError

    def forward_lower(self, x) -> torch.Tensor:
        raise NotImplementedError

    def forward_trained(self, x, lower) -> torch.Tensor:
        raise NotImplementedError

    def use_whole(self, model: nn.Module, cfg: EncoderConfig) -> None:
        raise NotImplementedError

    def use_top(self, model: nn.Module, cfg: EncoderConfig) -> None:
        raise NotImplementedError

    def use_frozen(self, model: nn.Module, cfg: EncoderConfig) -> None:
        raise NotImplementedError

    def n_rows(self) -> int:
        """Rows of the per-item caches: n_items + 1 (row 0 = padding)."""
        raise NotImplementedError

    def cache_groups(self) -> Iterable[torch.Tensor]:
        """Item-index chunks in which the caches are computed."""
        return torch.arange(1, self.n_rows()).split(self.chunk)

    def forward_layers(self, x) -> torch.Tensor:
        """The frozen model's pooled state after every layer / stage (lowest first), concatenated: (N, sum(widths))."""
        raise NotImplementedError(f"{type(self).__name__} has no per-layer states (model.encoder.mode=side)")

    def layer_widths(self) -> list[int]:
        """The widths of :meth:`forward_layers`' parts."""
        raise NotImplementedError(f"{type(self).__name__} has no per-layer states (model.encoder.mode=side)")

    def item_sizes(self, items: torch.Tensor) -> torch.Tensor | None:
        """A size per item (text length) by which a large batch is grouped so each group pads little; None = no grouping."""
        return None

    def lower_rows(self, cache, items: torch.Tensor, x) -> torch.Tensor:
        """The cached lower-part outputs of ``items`` as the trained part's input."""
        if isinstance(cache, np.ndarray):  # a memory-mapped cache on disk
            rows = torch.from_numpy(np.ascontiguousarray(cache[items.cpu().numpy()]))
            return rows.to(self._device(), non_blocking=True).float()
        return cache[items].float()

    # -- the forward ----------------------------------------------------------------------------
    def forward(self, items: torch.Tensor) -> torch.Tensor:  # (N,) -> (N, dim)
        if not torch.is_grad_enabled() and len(items) > self.chunk:  # catalogue encoding: bounded memory
            return torch.cat([self(c) for c in items.split(self.chunk)])
        return self.head(self.pooled(items).float())

    def pooled(self, items: torch.Tensor) -> torch.Tensor:
        """The model's pooled output of dataset items, (N, hidden), before the DT-layer."""
        sizes = self.item_sizes(items) if self._mode.name not in CACHED_ROWS and len(items) > self.chunk else None
        if sizes is None:
            return self._mode.pooled_items(self, items)
        # Many items (a training batch) of unequal sizes: each group is padded only to its own largest item.
        groups = length_groups(sizes, self.chunk)
        parts = [self._mode.pooled_items(self, items[idx]) for idx in groups]
        return torch.cat(parts)[torch.argsort(torch.cat(groups))]

    def encoder_parameters(self) -> list[nn.Parameter]:
        return [] if self.model_part is None else [p for p in self.model_part.parameters() if p.requires_grad]

    def precompute(self, progress: bool = True) -> list[str]:
        """Compute (or load from the dataset's cache) this mode's work done once over every item; returns what
        was computed here, e.g. ``["vision features"]`` ([] = nothing, or all of it read from disk)."""
        self._progress, self._computed = progress, []
        self._mode.precompute(self)
        return self._computed

    def _pass(self, what: str) -> Iterable[torch.Tensor]:
        """The cache groups of a pass over every item, with a progress bar (a pass can take minutes on a CPU)."""
        from tqdm import tqdm

        self._computed.append(f"{self.modality} {what}")
        groups = list(self.cache_groups())
        with tqdm(total=sum(len(g) for g in groups), desc=f"{self.modality} {what} (once)", unit="item",
                  file=sys.stderr, leave=False, disable=not self._progress) as bar:
            for chunk in groups:
                yield chunk
                bar.update(len(chunk))

    @torch.no_grad()
    def encode_content(self, frame, **options) -> torch.Tensor:
        """(N, dim) vectors of raw items (their content, not their index): the trained path of this mode, with
        the frozen parts run on the fly instead of read from the caches of the dataset's items."""
        was = self.training
        self.eval()
        try:
            out = [self.head(self._mode.pooled_inputs(self, x).float()).float() for x in self.content_inputs(frame, **options)]
        finally:
            self.train(was)
        return torch.cat(out) if out else torch.zeros(0, self.dim)

    def _device(self) -> torch.device:
        return self.head.dt[0].weight.device

    # -- work done once ---------------------------------------------------------------------------
    def _cache_path(self, what: str) -> Path | None:
        if self._cache_dir is None or not self._cache_key:
            return None
        return Path(self._cache_dir) / f"{self.modality}-{what}-{self._cache_key}.npy"

    def frozen_features(self) -> torch.Tensor:
        """Two-stage features: the frozen model's pooled vector of every item, (n_rows, hidden); row 0 = padding."""
        if self._features is None:
            self._features = self._item_rows(f"features-{self.pooling}", self.hidden, self.forward_full, "features")
        return self._features

    def layer_states(self) -> torch.Tensor:
        """mode=side: every item's frozen per-layer states, (n_rows, sum(widths)); row 0 = padding."""
        if self._layer_states is None:
            self._layer_states = self._item_rows(f"side-{self.pooling}", sum(self.side.widths), self.forward_layers,
                                               "layer states")
        return self._layer_states

    @torch.no_grad()
    def _item_rows(self, what: str, width: int, forward, label: str) -> torch.Tensor:
        """``forward`` of every item's inputs, (n_rows, width): read from its cache file, or computed in length
        groups and written there."""
        path = self._cache_path(what)
        if path is not None and path.exists():
            return torch.from_numpy(np.load(path)).to(self._device())
        out = torch.zeros(self.n_rows(), width, device=self._device())
        for chunk in self._pass(label):
            out[chunk] = forward(self.item_inputs(chunk)).float()
        if path is not None:
            save_npy_atomic(path, out.cpu().numpy())
        return out

    def lower_cache_name(self) -> str:
        return "lower"  # train_layers is in the cache key; vision names its cut, which its stages set

    def lower_outputs(self):
        """The frozen lower part's output for every item, (n_rows, ...); built on first use."""
        if self._lower is None:
            path = self._cache_path(self.lower_cache_name())
            if path is not None and path.exists():
                self._lower = np.load(path, mmap_mode="r")
            else:
                self._lower = self._compute_lower(path)
            if self.lower_in_memory and isinstance(self._lower, np.ndarray):
                self._lower = torch.from_numpy(np.array(self._lower)).to(self._device())
        return self._lower

    @torch.no_grad()
    def _compute_lower(self, path: Path | None):
        rows = None
        self.train(self.training)  # an encoder's train() keeps its frozen modules in eval mode: apply it now
        for chunk in self._pass("lower layers"):
            h = self.forward_lower(self.item_inputs(chunk))
            if rows is None:
                rows = NpyRows(path, (self.n_rows(),) + self.lower_row_shape(h), self.lower_dtype, self._device())
            rows.write(chunk, h)
        self._check_split()
        return rows.finish()

    def lower_row_shape(self, h: torch.Tensor) -> tuple:
        """One cached row's shape, given the lower output of a first chunk."""
        return tuple(h.shape[1:])

    @torch.no_grad()
    def _check_split(self, n: int = 4) -> None:
        """The trained part on the lower part's output must reproduce the plain forward: checked once, on a few
        items, so a model whose forward does more than lower + top fails loudly, not silently."""
        items = torch.arange(1, min(n, self.n_rows() - 1) + 1, device=self._device())
        was = self.training
        self.eval()
        try:
            x = self.item_inputs(items)
            want = self.forward_full(x)
            got = self.forward_trained(x, self.forward_lower(x))
        finally:
            self.train(was)
        if not torch.allclose(want.float(), got.float(), atol=1e-3, rtol=1e-3):
            raise RuntimeError(f"the split forward of the {self.modality} model does not reproduce its plain forward; "
                               "set model.encoder.cache_lower=false")
