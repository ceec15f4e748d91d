"""Dataset presets: the paper's preprocessing of each of its datasets, as prepare settings and reader options.

Every value names where the paper (Yuan et al., SIGIR 2023, in /paper) states it. PixelRec, MicroLens and
MovieLens-100K are not in the paper: their presets apply the paper's rule for a dataset of the same modality and say
so. A preset fills only what the user did not set (``--prepare.KEY=VALUE`` and ``--option`` win); the prepared
manifest records the preset, its values, their sources and what was changed. The paper's random user samples
(section 3.1: "around 400K, 500K and 600K users") are not applied: the paper gives only approximate counts;
``--prepare.n_users`` draws one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import PrepareConfig, from_dict
from .formats import DataFormatError

# The paper's section 3.1 and 3.4, quoted once: each preset value cites one of these.
MIN_USERS = "section 3.1: 'we remove users with less than 5 interactions'"
LOO = "section 3.4: 'the standard leave-one-out strategy'"
IMAGE_224 = "section 3.1: 'setting the size of all images to 224 x 224'"
LATEST_13 = "section 3.1: 'For HM and Bili, we choose the 13 most recent interactions'"
LATEST_23 = "section 3.1: 'For MIND, we select the latest 23 items for each user'"
TITLES = "section 3.1: 'in MIND, we represent items by their news article titles'"
DEDUP = "section 3.1, footnote 5: 'removed duplicate interactions'"
NOT_IN_PAPER = "not in the paper: its rule for {kind} datasets ({source})"


@dataclass(frozen=True)
class Preset:
    name: str
    title: str  # how reports name the dataset
    formats: tuple[str, ...]  # the layouts it applies to
    prepare: dict[str, Any]  # PrepareConfig field -> value
    options: dict[str, Any]  # reader option -> value
    sources: dict[str, str]  # each key of prepare and options -> where the paper says so
    in_paper: bool = True
    notes: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.title} ({'paper preset' if self.in_paper else 'preset after the paper'})"


_TEXT_NOTE = ("titles are cut at 30 tokens (section 3.1: 'a maximum of 30 tokens') by model.encoder.text.max_tokens, "
              "whose default is 30")
_IMAGE_NOTE = "the images are the item content (section 3.1: 'in HM & Bili, we represent items using their cover images')"


def _image_preset(name: str, title: str, formats: tuple[str, ...], in_paper: bool = True, **extra) -> Preset:
    cite = (lambda s: s) if in_paper else (lambda s: NOT_IN_PAPER.format(kind="image", source=s))
    prepare = {"max_seq_len": 13, "min_user_interactions": 5, "image_size": 224, "split": "loo", **extra}
    sources = {"max_seq_len": cite(LATEST_13), "min_user_interactions": cite(MIN_USERS),
               "image_size": cite(IMAGE_224), "split": cite(LOO), **({"dedup": DEDUP} if "dedup" in extra else {})}
    return Preset(name, title, formats, prepare, {}, sources, in_paper, (_IMAGE_NOTE,))


PRESETS: dict[str, Preset] = {
    "mind": Preset("mind", "MIND", ("mind",),
                   {"max_seq_len": 23, "min_user_interactions": 5, "split": "loo"},
                   {"text_columns": ["title"]},
                   {"max_seq_len": LATEST_23, "min_user_interactions": MIN_USERS, "split": LOO,
                    "text_columns": TITLES}, notes=(_TEXT_NOTE,)),
    "hm": _image_preset("hm", "HM", ("hm", "lmdb")),
    "bili": _image_preset("bili", "Bili", ("lmdb", "ninerec", "sequences", "table"), dedup="first"),
    "pixelrec": _image_preset("pixelrec", "PixelRec", ("pixelrec",), in_paper=False),
    "microlens": _image_preset("microlens", "MicroLens", ("microlens",), in_paper=False),
    "ml-100k": Preset("ml-100k", "MovieLens-100K", ("movielens",),
                      {"max_seq_len": 23, "min_user_interactions": 5, "split": "loo"}, {},
                      {"max_seq_len": NOT_IN_PAPER.format(kind="text", source=LATEST_23),
                       "min_user_interactions": MIN_USERS, "split": LOO}, in_paper=False),
}
# Formats that name the paper's dataset unambiguously: without --preset, the preset is applied and logged.
DETECTED = {"mind": "mind", "hm": "hm"}
NO_PRESET = "none"


def choose(given: str | None, format_name: str) -> tuple[Preset | None, str]:
    """(the preset, how it was chosen) for ``--preset given`` (None: from the format; 'none': no preset)."""
    if given == NO_PRESET:
        return None, ""
    if given is None:
        name = DETECTED.get(format_name)
        return (PRESETS[name], f"detected from the {format_name} format; --preset none keeps plain defaults") \
            if name else (None, "")
    if given not in PRESETS:
        raise DataFormatError(f"--preset {given!r} is unknown; choose one of {', '.join(PRESETS)} or none")
    preset = PRESETS[given]
    if format_name not in preset.formats:
        raise DataFormatError(f"--preset {given}: the source is in the {format_name} format, and the {given} preset "
                              f"applies to {' / '.join(preset.formats)}; pass --format or another --preset")
    return preset, f"--preset {given}"


def apply(preset: Preset | None, how: str, prepare: dict[str, Any], options: dict[str, Any],
          log) -> tuple[PrepareConfig, dict[str, Any], dict | None]:
    """(PrepareConfig, reader options, the manifest's record) with the preset under the user's own settings."""
    if preset is None:
        return from_dict(PrepareConfig, prepare, "prepare."), options, None
    cfg = from_dict(PrepareConfig, {**preset.prepare, **prepare}, "prepare.")
    merged = {**preset.options, **options}
    mine = {**{k: v for k, v in prepare.items() if k in preset.prepare},
            **{k: v for k, v in options.items() if k in preset.options}}
    applied = {k: v for k, v in {**preset.prepare, **preset.options}.items() if k not in mine}
    log(f"[preset] {preset.label} ({how}): " + ", ".join(f"{k}={v}" for k, v in applied.items()) +
        (f"; kept your {', '.join(f'{k}={v}' for k, v in mine.items())}" if mine else ""))
    record = {"name": preset.name, "label": preset.label if not mine else f"{preset.label}, changed: "
              + ", ".join(sorted(mine)), "chosen": how, "settings": {**preset.prepare, **preset.options},
              "sources": preset.sources, "changed": mine, "notes": list(preset.notes)}
    return cfg, merged, record


def preset_names() -> str:
    return " | ".join([*PRESETS, NO_PRESET])
