"""Item images checked once, when a dataset is prepared, and the decision about unusable ones kept with it.

Prepare looks at every item's image reference (the file exists and its header is an image's; no pixels are
decoded unless prepare.image_size asks for the image store now). Unusable images stop prepare
(``prepare.image_missing=error``, the default) or are listed in the prepared folder's ``image_problems.json``
and get a blank image (``blank``). Later commands read that decision from the dataset and say it in one line,
once per process, instead of listing the images again.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..extras import need
from .formats import DataFormatError
from .images import LMDB_SCHEME, PROBLEMS_FILE, ImageDecoder, ImageProblem

SHOWN = 5  # examples named in a message; the file holds them all


def check_images(items: pd.DataFrame, root: Path | None) -> list[ImageProblem]:
    """The items whose image is not listed, not found, or not an image file (read from the header only).
    LMDB references are checked when the image store decodes them."""
    Image = need("PIL.Image", "checking item images")
    decoder = ImageDecoder(Path(root).resolve() if root else None, 1)
    problems = []
    for row, (item, ref) in enumerate(zip(items["item"].astype(str), items["image"].fillna("").astype(str)), 1):
        if ref.startswith(LMDB_SCHEME):
            continue
        if not ref.strip():
            problems.append(ImageProblem(row, item, "", "no image listed for this item"))
            continue
        path = decoder.path_of(ref).absolute()
        try:
            if not path.is_file():
                problems.append(ImageProblem(row, item, ref, f"file not found (looked for {path})"))
                continue
            with Image.open(path):
                pass
        except Exception as err:  # noqa: BLE001 -- Pillow has many error types for a file that is not an image
            problems.append(ImageProblem(row, item, ref, f"not a readable image ({path}: {type(err).__name__}: {err})"))
    return problems


def settle(problems: list[ImageProblem], n_items: int, policy: str, name: str, out: Path, final: Path,
           log, earlier: list[ImageProblem] = ()) -> list[ImageProblem]:
    """Apply prepare.image_missing to the problems found: stop with a message naming what to do, or list them
    all in ``out`` (the folder being written, ``final`` once done) and say so. Returns every problem listed."""
    listed = list(earlier) + [p for p in problems if p.item not in {e.item for e in earlier}]
    if not problems:
        return listed
    examples = "; ".join(str(p) for p in problems[:SHOWN]) + (f"; and {len(problems) - SHOWN:,} more"
                                                               if len(problems) > SHOWN else "")
    what = f"{len(problems):,} of {n_items:,} item images are missing or unreadable: {examples}"
    if policy == "error":
        raise DataFormatError(f"[{name}] {what}. Fix or supply them, or pass --prepare.image_missing=blank to give "
                              f"these items a blank image (the prepared folder then lists them all in {PROBLEMS_FILE})")
    (out / PROBLEMS_FILE).write_text(json.dumps([vars(p) for p in listed], indent=1), encoding="utf-8")
    log(f"[{name}] {what}. They get a blank image (prepare.image_missing=blank); all {len(listed):,} are listed in "
        f"{final / PROBLEMS_FILE}")
    return listed
