"""Which arms a study trains, from what the prepared dataset holds, and which of them the budget affords.

An arm is one way to represent items, trained with one recipe at every seed:

- ``most-popular``: the floor, no training;
- ``IDRec``: item IDs, the reference every other arm is compared with;
- for each modality the data holds (titles / descriptions, images): ``TS`` (two-stage: frozen encoder features)
  and ``Side`` (a small side network over the frozen encoder's layers);
- ``Side + ID``: content and ID fused (the multimodal encoder when the data has both text and images);
- ``top-1``: the top text-encoder layer trained (the most expensive arm, kept only when the budget allows).

Every arm trains with one recipe, the backbone's fast recipe of :mod:`morec.recipes` (for SASRec: full softmax
over sampled windows, cosine schedule over 20 epochs), so the comparison is at equal budget: same epochs,
patience, learning rates and selection metric; only how items are represented differs.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..data.dataset import PreparedDataset
from ..recipes import fast

COMMON = ["--train.progress=false", "--train.tensorboard=false"]
# kept first when the budget is short: the reference, then the cheapest answer per modality, then the rest
PRIORITY = ("idrec", "ts", "side-id", "side", "top1")


@dataclass
class Arm:
    key: str  # a directory-safe name: idrec, text-ts, image-side, text-image-side-id, text-top1, ...
    label: str  # what a reader sees: "IDRec", "Text TS (two-stage)", ...
    kind: str  # floor | id | content | fusion
    overrides: list[str] = field(default_factory=list)
    modality: str = ""  # text | image | text+image ("" for IDRec and the floor)
    priority: int = 0  # lower is kept first when the budget is short

    @property
    def trains(self) -> bool:
        return self.kind != "floor"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Content:
    text: bool
    images: bool

    @property
    def modalities(self) -> list[str]:
        return [m for m, present in (("text", self.text), ("image", self.images)) if present]


def dataset_content(ds: PreparedDataset) -> Content:
    return Content(text=bool(ds.text_columns), images=bool(ds.manifest.get("has_images")))


def recipe(backbone: str) -> list[str]:
    return [*fast(backbone), *COMMON]


def _encoder(modality: str, text_model: str, vision_model: str) -> list[str]:
    if modality == "text":
        return ["--model.encoder.kind=text", f"--model.encoder.pretrained={text_model}"]
    if modality == "image":
        return ["--model.encoder.kind=vision", f"--model.encoder.pretrained={vision_model}",
                "--model.encoder.vision.image_missing=blank"]
    return ["--model.encoder.kind=multimodal", f"--model.encoder.text.pretrained={text_model}",
            f"--model.encoder.vision.pretrained={vision_model}", "--model.encoder.vision.image_missing=blank"]


def _mode(modality: str, mode: str, extra: list[str] = ()) -> list[str]:
    if modality == "text+image":  # each modality of the multimodal encoder has its own mode
        return [f"--model.encoder.text.mode={mode}", f"--model.encoder.vision.mode={mode}", *extra]
    return [f"--model.encoder.mode={mode}", *extra]


LABELS = {"text": "Text", "image": "Image", "text+image": "Text + image"}


def plan_arms(content: Content, text_model: str = "minilm", vision_model: str = "efficientnet-lite0") -> list[Arm]:
    """Every arm the dataset's content allows, in the order a report shows them."""
    arms = [Arm("most-popular", "most-popular (floor)", "floor", priority=-2),
            Arm("idrec", "IDRec", "id", ["--model.encoder.kind=id"], priority=-1)]
    for m in content.modalities:
        enc = _encoder(m, text_model, vision_model)
        arms.append(Arm(f"{m}-ts", f"{LABELS[m]} TS (two-stage)", "content", enc + _mode(m, "frozen"), m,
                        PRIORITY.index("ts")))
        arms.append(Arm(f"{m}-side", f"{LABELS[m]} Side", "content", enc + _mode(m, "side"), m, PRIORITY.index("side")))
    if content.modalities:
        both = "text+image" if content.text and content.images else content.modalities[0]
        enc = _encoder(both, text_model, vision_model)
        arms.append(Arm(f"{both.replace('+', '-')}-side-id", f"{LABELS[both]} Side + ID", "fusion",
                        enc + _mode(both, "side") + ["--model.encoder.fusion=add"], both, PRIORITY.index("side-id")))
    if content.text:
        arms.append(Arm("text-top1", "Text top-1 (top layer trained)", "content",
                        _encoder("text", text_model, vision_model) + ["--model.encoder.mode=top",
                                                                      "--model.encoder.train_layers=1"],
                        "text", PRIORITY.index("top1")))
    return arms


def select_arms(arms: list[Arm], names: list[str] | None) -> list[Arm]:
    """Keep the floor, IDRec and the named arms (keys); an unknown name is an error listing the known ones."""
    if not names:
        return arms
    known = {a.key for a in arms}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"--arms names {', '.join(unknown)}, which this dataset's content does not allow; "
                         f"its arms are {', '.join(sorted(known))}")
    return [a for a in arms if a.kind in ("floor", "id") or a.key in names]


@dataclass
class Fit:
    arms: list[Arm]  # the arms that fit, in plan order
    seeds: int  # seeds every kept arm starts with
    left_out: list[str]  # sentences: what was dropped and why
    expected_seconds: float  # the kept arms' first seeds, in wall-clock seconds with ``jobs`` runs at once


def fit_budget(arms: list[Arm], run_seconds: dict[str, float], budget: float, seeds_min: int, jobs: int) -> Fit:
    """The arms (by priority) and starting seeds that fit ``budget`` seconds. Raises ValueError when even one seed
    of IDRec does not fit, naming the time it would need."""
    trained = [a for a in arms if a.trains]
    need_one = run_seconds["idrec"]
    if need_one > budget:
        raise ValueError(f"the budget left ({format_duration(budget)}) is too small for even one seed of IDRec, which "
                         f"needs about {format_duration(need_one)} on this machine; give --budget "
                         f"{format_duration(need_one * 1.2)} or more")

    def wall(kept: list[Arm], seeds: int) -> float:
        return sum(run_seconds[a.key] for a in kept) * seeds / max(jobs, 1)

    for seeds in range(seeds_min, 0, -1):
        kept = [a for a in trained if a.kind == "id"]
        left = []
        for arm in sorted((a for a in trained if a.kind != "id"), key=lambda a: a.priority):
            if wall(kept + [arm], seeds) <= budget:
                kept.append(arm)
            else:
                left.append(f"{arm.label} left out: {seeds} seed(s) of it need about "
                            f"{format_duration(run_seconds[arm.key] * seeds / max(jobs, 1))} more than the budget holds")
        if wall(kept, seeds) <= budget and (len(kept) > 1 or len(trained) == 1 or seeds == 1):
            order = [a for a in arms if not a.trains or a in kept]
            if seeds < seeds_min:
                left.insert(0, f"every arm starts with {seeds} seed(s), not {seeds_min}: the budget holds no more")
            return Fit(order, seeds, left, wall(kept, seeds))
    raise AssertionError("unreachable: one seed of IDRec fits")


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h{m:02d}m"
    return f"{m}m{s:02d}s" if m else f"{s}s"


def parse_duration(text: str) -> float:
    """'40m', '2h', '1h30m', '90s' or a number of seconds -> seconds."""
    import re

    text = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?", text)
    if not text or not parts or not any(parts.groups()):
        raise ValueError(f"--budget {text!r}: expected a duration such as 40m, 2h, 1h30m or 900s")
    h, m, s = (float(g) if g else 0.0 for g in parts.groups())
    return h * 3600 + m * 60 + s
