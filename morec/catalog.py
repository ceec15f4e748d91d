"""New items without retraining: encode their raw content with a trained MoRec item encoder and keep
them in the run directory, so `recommend`, `export` and `serve` include them.

This is what MoRec can do and IDRec cannot: a text item encoder computes a vector for any text,
while an ID embedding exists only for the items seen in training.

Added items live in ``RUN_DIR/added_items.safetensors``: their encoder vectors (the item encoder's
output, before the backbone's item tower) plus ids, titles and a fingerprint of the weights that
encoded them, in the file's metadata. A retrained model (another ``model.safetensors``) makes it
stale, which is an error with instructions.

The file is a small transactional store shared by every `morec catalog add` process and every
`morec serve` of the run: an addition takes the lock file ``added_items.safetensors.lock``
(`filelock`), re-reads the file as it is on disk, appends, and replaces it atomically, so no
addition is lost however many writers run at once; readers never lock (they see the old or the new
file, whole). A server notices a changed file (another inode, size or mtime) and reloads it.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from .checkpoint import atomic_save_tensors
from .config import Config, ConfigError

CATALOG_FILE = "added_items.safetensors"
LOCK_TIMEOUT = 120.0  # seconds an addition waits for others' additions before giving up
ID_COLUMNS = ("id", "item")  # the new-item id column, first found


class CatalogError(ValueError):
    """A new-item request that cannot be done; ``status`` is the HTTP status `morec serve` answers."""

    status = 422


class DuplicateItemsError(CatalogError):
    status = 409


class StorageFullError(CatalogError):
    status = 507  # Insufficient Storage


# --- reading new items ------------------------------------------------------------------------

def read_items_file(path: str | Path, fmt: str | None = None) -> pd.DataFrame:
    """New items from CSV, TSV or JSON lines (``fmt`` or the file's extension): one row per item, an
    ``id`` (or ``item``) column and the text fields the model reads (or ``image`` paths for vision)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"new-items file {path} not found (looked for {path.resolve()})")
    fmt = (fmt or path.suffix.lstrip(".")).lower()
    try:
        if fmt in ("csv", "tsv", "txt"):
            import csv

            from .data.formats.table import read_delimited

            # the readers' own CSV path: a ragged row is an error naming its line, never a shifted item
            df = read_delimited(path, sep="\t" if fmt == "tsv" else ",", header=True, quoting=csv.QUOTE_MINIMAL,
                                layout="a header line (an id column and the model's text fields or image)")
            df = df.reset_index(drop=True)
        elif fmt in ("jsonl", "ndjson"):
            df = pd.read_json(path, lines=True, dtype=False)
        elif fmt == "json":
            df = pd.DataFrame(json.loads(path.read_text(encoding="utf-8")))
        else:
            raise CatalogError(f"{path}: unknown new-items format {fmt!r}; use csv, tsv, jsonl or json (--format)")
    except (ValueError, json.JSONDecodeError) as err:
        from .data.formats import DataFormatError

        if isinstance(err, (CatalogError, DataFormatError)):
            raise
        raise CatalogError(f"{path}: cannot read it as {fmt}: {err}") from None
    return df


def map_columns(df: pd.DataFrame, columns: dict[str, str] | None) -> pd.DataFrame:
    """Rename the new items' columns to the dataset's names: ``{"sku": "book_sku", "name": "book_title"}``."""
    if not columns:
        return df
    if not isinstance(columns, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in columns.items()):
        raise CatalogError(f"the column mapping must map the new items' column names to the dataset's, e.g. "
                           f"{{'sku': 'book_sku'}}; got {columns!r}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise CatalogError(f"the column mapping names {', '.join(map(repr, missing))}, which the new items lack; "
                           f"their columns are {', '.join(map(repr, map(str, df.columns)))}")
    return df.rename(columns=columns)


def parse_mapping(pairs: list[str] | None) -> dict[str, str]:
    """``["sku=book_sku", "name=book_title"]`` (the command line's --map) -> a column mapping."""
    out = {}
    for pair in pairs or []:
        source, eq, target = pair.partition("=")
        if not eq or not source.strip() or not target.strip():
            raise CatalogError(f"--map {pair!r}: expected FILE_COLUMN=DATASET_COLUMN, e.g. --map sku=book_sku")
        out[source.strip()] = target.strip()
    return out


def items_frame(items: pd.DataFrame | list[dict] | str | Path, fmt: str | None = None) -> pd.DataFrame:
    """New items as a DataFrame: given as one, as a list of dicts, or as a CSV / TSV / JSONL file (whose relative
    image paths are relative to the file: :func:`items_folder`, applied once the columns are mapped)."""
    if isinstance(items, (pd.DataFrame, list)):
        return pd.DataFrame(items)
    return read_items_file(items, fmt)


def items_folder(items) -> Path | None:
    """The folder a new-items file's relative image paths refer to (None for items given in memory)."""
    return Path(items).resolve().parent if isinstance(items, (str, Path)) else None


def resolve_images(df: pd.DataFrame, base: Path | None) -> pd.DataFrame:
    """Relative image paths of the ``image`` column made absolute under ``base`` (the items file's folder)."""
    if base is None or "image" not in df.columns:
        return df
    return df.assign(image=[str(base / p) if isinstance(p, str) and p.strip() and not Path(p).is_absolute()
                            and not p.startswith("lmdb:") else p for p in df["image"]])


def own_columns(df: pd.DataFrame, image_column: str | None) -> pd.DataFrame:
    """The dataset's own image column name (e.g. image_path, as prepared) read as ``image``."""
    if image_column and image_column != "image" and image_column in df.columns and "image" not in df.columns:
        return df.rename(columns={image_column: "image"})
    return df


def normalize_items(df: pd.DataFrame, known: dict[str, int] | None = None, id_column: str | None = None) -> pd.DataFrame:
    """Checked new items: an ``item`` column of non-empty, unique string ids, none already known. The id is read
    from ``id``, ``item`` or the dataset's own id column name ``id_column`` (e.g. book_sku), the first found."""
    if len(df) == 0:
        raise CatalogError("no new items given")
    names = ID_COLUMNS + ((id_column,) if id_column and id_column not in ID_COLUMNS else ())
    col = next((c for c in names if c in df.columns), None)
    if col is None:
        raise CatalogError(f"new items need an id column (one of: {', '.join(names)}); got columns "
                           f"{', '.join(map(str, df.columns))}. Rename it, or map it (--map YOURS={names[-1]}; "
                           "POST /items: \"columns\": {\"YOURS\": \"" + names[-1] + "\"})")
    df = df.copy()
    ids = df[col]
    if ids.isna().any():
        raise CatalogError(f"{int(ids.isna().sum())} new item(s) have no id")
    ids = ids.map(_id_str)
    if (ids == "").any():
        raise CatalogError(f"{int((ids == '').sum())} new item(s) have an empty id")
    dup = ids[ids.duplicated()].unique()
    if len(dup):
        raise DuplicateItemsError(f"item id(s) repeated among the new items: {_show(dup)}")
    if known:
        clash = [i for i in ids if i in known]
        if clash:
            raise DuplicateItemsError(f"item id(s) already in the catalogue: {_show(clash)}; "
                                      "new items need new ids")
    if col != "item":
        df = df.drop(columns=[c for c in ("item",) if c in df.columns])
    df["item"] = ids.to_numpy()
    return df.drop(columns=[col]) if col != "item" else df


def _id_str(x) -> str:
    if isinstance(x, float) and x.is_integer():
        x = int(x)
    return str(x).strip()


def _show(values, n: int = 10) -> str:
    values = list(values)
    more = f" (and {len(values) - n} more)" if len(values) > n else ""
    return ", ".join(map(str, values[:n])) + more


# --- encoding content -----------------------------------------------------------------------

def cannot_add_reason(cfg: Config) -> str | None:
    """Why a model of this config cannot add items from content, or None if it can."""
    enc = cfg.model.encoder
    if enc.kind == "id":
        return ("this is an ID-based model (model.encoder.kind=id): an item's vector is an ID embedding learned "
                "only for the items seen in training, so a new item has no vector until the model is retrained. "
                "Train a MoRec model (model.encoder.kind=text or vision) to add items from their content")
    if enc.fusion != "none":
        return (f"this model fuses an ID embedding with its {enc.kind} vector (model.encoder.fusion={enc.fusion}); "
                "a new item has no ID embedding, so its vector cannot be computed without retraining. "
                "Use a pure MoRec model (model.encoder.fusion=none)")
    if enc.from_scratch and enc.mode != "e2e":
        return (f"model.encoder.from_scratch=true with mode={enc.mode}: the frozen layers were random and are not "
                "saved, so new content cannot be encoded the way training items were")
    return None


class ContentEncoder:
    """Encodes new items' raw content with a trained item encoder: (DataFrame) -> (N, dim) encoder vectors,
    through the encoder's own ``encode_content`` (the same trained path as its training items). Checks the
    items first and turns what the encoder cannot read into errors naming the item."""

    def __init__(self, encoder, cfg: Config):
        reason = cannot_add_reason(cfg)
        if reason:
            raise CatalogError(reason)
        self.encoder, self.cfg = encoder, cfg.model.encoder
        self.image_column: str | None = None  # the dataset's own name of its image column, also accepted
        # where image references may point (see configure_images); by default any file the caller names
        self.image_root: Path | None = None
        self.confine_images, self.max_image_pixels = False, None
        from .encoders.base import ItemEncoder

        if type(encoder).encode_content is ItemEncoder.encode_content:
            raise CatalogError(f"the {self.cfg.kind} item encoder ({type(encoder).__name__}) cannot encode items "
                               "from their content, so new items cannot be added without retraining")

    @property
    def fields(self) -> list[str]:
        return list(self.cfg.text.fields) * self.reads("text") + ["image"] * self.reads("vision")

    def reads(self, modality: str) -> bool:
        """Whether the encoder reads this modality of an item (text, vision; a multimodal one reads both)."""
        return modality in getattr(self.encoder, "modality", self.cfg.kind).split("+")

    def configure_images(self, root: str | Path | None, confine: bool, max_pixels: int | None) -> None:
        """``confine``: read image paths and ``lmdb:`` stores only under ``root`` (none at all when it is
        None; uploaded ``image_base64`` bytes are always accepted). ``max_pixels``: refuse larger images."""
        self.image_root = Path(root) if root is not None else None
        self.confine_images, self.max_image_pixels = confine, max_pixels

    def check(self, items: pd.DataFrame) -> None:
        missing = [f for f in self.fields if f not in items.columns]
        if "image" in missing and IMAGE_BYTES_FIELD in items.columns:
            missing.remove("image")
        if missing:
            raise CatalogError(self._missing_message(missing, items))
        if self.reads("vision"):
            refs = _column(items, "image")
            uploads = _column(items, IMAGE_BYTES_FIELD)
            empty = items["item"][((refs == "") & (uploads == "")).to_numpy()]
            if len(empty):
                raise CatalogError(f"new item(s) with no image (an image path, or the image file's bytes as "
                                   f"{IMAGE_BYTES_FIELD}): {_show(empty)}")
        if self.reads("text"):
            text = items[list(self.cfg.text.fields)].astype("string").fillna("").apply(lambda c: c.str.strip())
            empty = items["item"][(text == "").all(axis=1).to_numpy()]
            if len(empty):
                raise CatalogError(f"new item(s) with no text in {', '.join(self.cfg.text.fields)}: {_show(empty)}")

    def _missing_message(self, missing: list[str], items: pd.DataFrame) -> str:
        wants = []
        if self.reads("text"):
            wants.append(f"text field(s) {', '.join(self.cfg.text.fields)} (model.encoder.text.fields)")
        if "image" in missing:
            own = f" or {self.image_column!r} (the dataset's own name)" if self.image_column not in (None, "image") else ""
            wants.append(f"an 'image' column{own} of image file paths, or {IMAGE_BYTES_FIELD} (the image file's bytes, "
                         "base64)")
        target = missing[0] if missing[0] != "image" else (self.image_column or "image")
        return (f"new items lack {', '.join(map(repr, missing))}: the model reads {'; '.join(wants)}. Their columns "
                f"are {', '.join(map(repr, map(str, items.columns)))}; map one of them with --map YOURS={target} "
                f"(POST /items: \"columns\": {{\"YOURS\": \"{target}\"}})")

    @torch.no_grad()
    def __call__(self, items: pd.DataFrame) -> torch.Tensor:
        from .data.images import ItemImageError

        self.check(items)
        if self.reads("vision"):  # one image source per item: its path, or its uploaded bytes
            items = items.assign(image=[_image_source(item, path, upload) for item, path, upload in
                                        zip(items["item"], _column(items, "image"), _column(items, IMAGE_BYTES_FIELD))])
        try:
            return self.encoder.encode_content(items, image_root=self.image_root, confine_images=self.confine_images,
                                               max_image_pixels=self.max_image_pixels).float()
        except ItemImageError as err:
            raise (ImageTooLargeError if err.too_large else CatalogError)(str(err)) from None
        except (OSError, ValueError) as err:  # a tokenizer complaint
            if isinstance(err, CatalogError):
                raise
            raise CatalogError(f"cannot encode the new items: {err}") from None


IMAGE_BYTES_FIELD = "image_base64"  # a new item's image file itself, base64 (what a server can safely accept)


class ImageTooLargeError(CatalogError):
    status = 413


def _column(items: pd.DataFrame, name: str) -> pd.Series:
    if name not in items.columns:
        return pd.Series([""] * len(items), index=items.index, dtype="string")
    return items[name].astype("string").fillna("").str.strip()


def _image_source(item, path: str, upload: str) -> str | bytes:
    if not upload:
        return path
    import base64
    import binascii

    try:
        return base64.b64decode(upload, validate=True)
    except (binascii.Error, ValueError):
        raise CatalogError(f"item {item!r}: {IMAGE_BYTES_FIELD} is not valid base64") from None


# --- the run directory's catalogue file ------------------------------------------------------

def weights_fingerprint(run_dir: str | Path) -> str:
    h = hashlib.sha256()
    with open(Path(run_dir) / "model.safetensors", "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:32]


@dataclass(frozen=True)
class AddedItems:
    """The catalogue file's content at one moment; ``signature`` tells a later change apart."""

    ids: list[str]
    titles: list
    vectors: torch.Tensor | None  # (M, d) encoder vectors; None when no item was added
    signature: tuple | None


def catalog_signature(run_dir: str | Path) -> tuple | None:
    """(inode, size, mtime) of the catalogue file, None if absent: an atomic replace changes the inode."""
    try:
        st = os.stat(Path(run_dir) / CATALOG_FILE)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def catalog_lock(run_dir: str | Path):
    from filelock import FileLock

    return FileLock(str(Path(run_dir) / (CATALOG_FILE + ".lock")), timeout=LOCK_TIMEOUT)


def read_added(run_dir: str | Path, fingerprint: str | None = None) -> AddedItems:
    """The catalogue file as it is now (no lock needed: it is only ever replaced whole)."""
    from safetensors import safe_open

    path = Path(run_dir) / CATALOG_FILE
    for _ in range(3):  # replaced between the stat and the open: read the newer one
        signature = catalog_signature(run_dir)
        if signature is None:
            return AddedItems([], [], None, None)
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                vectors = f.get_tensor("vectors")
        except FileNotFoundError:
            continue
        except Exception as err:  # noqa: BLE001 - safetensors raises its own error types for damaged files
            raise ConfigError(f"{path} is damaged ({type(err).__name__}: {err}); delete it and add the items "
                              "again with `morec catalog add`") from None
        if signature == catalog_signature(run_dir):
            break
    else:
        raise CatalogError(f"{path} keeps changing while being read; try again")
    if fingerprint is not None and meta.get("weights") != fingerprint:
        raise ConfigError(f"{path} was encoded with other weights than {Path(run_dir) / 'model.safetensors'} "
                          "(the model was retrained since); delete it and add the items again with `morec catalog add`")
    try:
        ids, titles = json.loads(meta["ids"]), json.loads(meta["titles"])
    except (KeyError, ValueError):
        raise ConfigError(f"{path} is not a morec catalogue file (no ids / titles); delete it and add the items "
                          "again with `morec catalog add`") from None
    if len(ids) != len(vectors) or len(titles) != len(ids):
        raise ConfigError(f"{path} is inconsistent ({len(ids)} ids, {len(vectors)} vectors); delete it and add the items again")
    return AddedItems(ids, titles, vectors, signature)


def load_added(run_dir: str | Path, fingerprint: str | None = None) -> tuple[list[str], list, torch.Tensor | None]:
    """(ids, titles, encoder vectors (M, d)) of the items added to a run; empty if none were."""
    added = read_added(run_dir, fingerprint)
    return added.ids, added.titles, added.vectors


def save_added(run_dir: str | Path, ids: list[str], titles: list, vectors: torch.Tensor, fingerprint: str) -> Path:
    path = Path(run_dir) / CATALOG_FILE
    atomic_save_tensors({"vectors": vectors.detach().float().cpu().contiguous()}, path,
                        {"ids": json.dumps(ids), "titles": json.dumps(titles), "weights": fingerprint,
                         "format": "morec-added-items/1"})
    return path


def append_added(run_dir: str | Path, ids: list[str], titles: list, vectors: torch.Tensor, fingerprint: str,
                 trained: dict[str, int] | None = None) -> AddedItems:
    """One transaction: under the catalogue lock, re-read the file, refuse ids it (or ``trained``) already
    has, append these items and replace the file atomically. Returns the whole catalogue as written."""
    from filelock import Timeout

    lock = catalog_lock(run_dir)
    try:
        with lock:
            current = read_added(run_dir, fingerprint)
            taken = set(current.ids) | set(trained or ())
            clash = [i for i in ids if i in taken]
            if clash:
                raise DuplicateItemsError(f"item id(s) already in the catalogue: {_show(clash)}; new items need new ids")
            vectors = vectors.detach().float().cpu()
            all_vectors = vectors if current.vectors is None else torch.cat([current.vectors.float(), vectors])
            save_added(run_dir, current.ids + list(ids), current.titles + list(titles), all_vectors, fingerprint)
            return AddedItems(current.ids + list(ids), current.titles + list(titles), all_vectors,
                              catalog_signature(run_dir))
    except Timeout:  # before OSError: filelock's Timeout is a TimeoutError, an OSError without an errno
        raise CatalogError(f"{lock.lock_file} has been held by another addition for over {LOCK_TIMEOUT:.0f} s; "
                           "try again, or remove the lock file if no morec process is running") from None
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        # the file is replaced whole or not at all: the catalogue is as it was
        raise StorageFullError("no space left on the device that holds the run's catalogue; the items were not "
                               "added (free some space and add them again)") from None
