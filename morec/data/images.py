"""The image store: every item image decoded and resized once into a memory-mapped uint8 array.

Training never decodes a JPEG. The first time a (dataset, image size) pair is used, each item's
image is read (a file path relative to the raw dataset's folder, or an ``lmdb:`` reference written
by the LMDB reader), converted to RGB and resized to ``size`` x ``size`` (a plain resize, as the
paper's 224 x 224 preprocessing), and written to ``<dataset>/cache/images-<size>px-<key>.npy``:
an ``(n_items + 1, size, size, 3)`` uint8 array whose row ``i`` is item index ``i`` (row 0 =
padding, blank). A JSON index beside it lists every image that could not be used, by item id and
file. Normalization is the encoder's business and happens on the device at load time
(:func:`to_model_input`), so one store serves every encoder of that size.

Missing or corrupt images follow a policy: ``error`` stops and names them; ``blank`` puts a blank
(mid-grey) image in their row and counts them in the log and the index. Nothing is dropped.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..digest import file_stamp
from ..extras import need
from ..tempfiles import temp_sibling
from .formats import DataFormatError
from .formats.lmdb_images import LmdbImages

POLICIES = ("error", "blank")
BLANK_VALUE = 128  # mid-grey: about 0 after any usual normalization, so a blank item carries no signal
LMDB_SCHEME = "lmdb:"  # "lmdb:<database path>#<key>", written by morec.data.formats.lmdb_images
STORE_VERSION = 1
PROBLEMS_FILE = "image_problems.json"  # a prepared dataset's list of items without a usable image (prepare.image_missing)


@dataclass
class ImageProblem:
    row: int  # item index
    item: str  # original item id
    file: str  # the image reference as the dataset gives it ('' = none listed)
    reason: str

    def __str__(self) -> str:
        return f"item {self.item!r} (index {self.row}): {self.file or '<no image listed>'}: {self.reason}"


@dataclass
class ImageStore:
    """Pixels of every item, ``(n_items + 1, size, size, 3)`` uint8, memory-mapped (read-only)."""

    pixels: np.ndarray
    path: Path
    problems: list[ImageProblem] = field(default_factory=list)

    @property
    def size(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def n_items(self) -> int:
        return int(self.pixels.shape[0]) - 1

    def gather(self, items: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 (N, size, size, 3) for item indices (read from the page cache, no decoding)."""
        idx = items.cpu().numpy() if isinstance(items, torch.Tensor) else np.asarray(items)
        # Sorted reads touch the file in order (fewer, longer page-ins on a cold cache).
        order = np.argsort(idx, kind="stable")
        out = np.empty((len(idx),) + self.pixels.shape[1:], dtype=np.uint8)
        if not isinstance(self.pixels, np.memmap) or not hasattr(os, "preadv"):
            out[order] = self.pixels[idx[order]]
            return torch.from_numpy(out)
        # Read with pread, not through the memory map: mapped pages stay in this process's resident memory, so
        # a pass over a store larger than memory would hold all of it; read rows are the caller's, then freed.
        row_bytes = out[0].nbytes if len(out) else 0
        with open(self.path, "rb", buffering=0) as f:
            for j in order:
                if os.preadv(f.fileno(), [out[j]], self.pixels.offset + int(idx[j]) * row_bytes) != row_bytes:
                    raise OSError(f"{self.path}: short read at item index {idx[j]} (a truncated image store; delete it)")
        return torch.from_numpy(out)


# --- normalization at load time ------------------------------------------------------------

def to_model_input(pixels: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, device: torch.device,
                   channels_last: bool = False) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W), normalized with the encoder's mean / std (0..1 scale).

    The uint8 pixels travel to the device (a quarter of the float bytes) and are normalized there.
    Permuting (N, H, W, 3) gives channels-last strides for free; contiguous() only when NCHW is wanted.
    """
    if device.type == "cuda":
        pixels = pixels.pin_memory()
    x = pixels.to(device, non_blocking=True).permute(0, 3, 1, 2).float()
    x = x.mul_(1 / 255).sub_(mean.view(1, 3, 1, 1)).div_(std.view(1, 3, 1, 1))
    return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


# --- decoding -----------------------------------------------------------------------------

class ImageNotAllowed(ValueError):
    """An image reference a server may not read. One text for "outside the root", "no such file" and
    "not a regular file", so that answers cannot be used to probe which files exist."""

    def __init__(self, ref: str):
        super().__init__(f"image {ref!r}: not allowed or not found (image paths must name files under the "
                         "server's --image-root; or send the image itself as image_base64)")


class ImageTooLarge(ValueError):
    pass


class ImageUnreadable(ValueError):
    """An image a server could not decode; the message names only what the client sent."""


class ItemImageError(ValueError):
    """A raw item's image that cannot be encoded, the message naming the item; ``too_large`` when the image
    declares more pixels than allowed (a server answers 413 then)."""

    def __init__(self, message: str, too_large: bool = False):
        super().__init__(message)
        self.too_large = too_large


class ImageDecoder:
    """Reads one image reference (or the image's bytes) into a (size, size, 3) uint8 array; LMDB handles
    opened once.

    ``confine=True`` (the server) reads only files and LMDB stores under ``root``, after resolving
    ``..`` and symlinks, and refuses everything else with :class:`ImageNotAllowed`. ``max_pixels``
    refuses an image whose header declares more pixels, before anything is decoded (a small file can
    declare a huge image: a decompression bomb)."""

    def __init__(self, root: Path | None, size: int, *, confine: bool = False, max_pixels: int | None = None):
        self.root, self.size = root, size
        self.confine, self.max_pixels = confine, max_pixels
        self._real_root = Path(os.path.realpath(root)) if (confine and root is not None) else None
        self._lmdb: dict[str, object] = {}

    def path_of(self, ref: str) -> Path:
        p = Path(ref)
        if self.confine:
            if self._real_root is None or "\x00" in ref:
                raise ImageNotAllowed(ref)
            real = Path(os.path.realpath(self._real_root / p))  # an absolute ref ignores the root here...
            if real != self._real_root and self._real_root not in real.parents:  # ...and is refused here
                raise ImageNotAllowed(ref)
            return real
        return p if p.is_absolute() or self.root is None else self.root / p

    def __call__(self, ref: str | bytes) -> np.ndarray:
        try:
            return self._decode(ref)
        except (ImageNotAllowed, ImageTooLarge):
            raise
        except Exception as err:  # noqa: BLE001 - a decoder's message may name the server's own paths
            if not self.confine:
                raise
            raise ImageUnreadable(self._client_safe(str(err), ref)) from None

    def _client_safe(self, text: str, ref: str | bytes) -> str:
        """``text`` naming only what the client sent: the resolved file as the client's reference, the root as
        <image-root>, any other absolute path as <path>."""
        sent = ref if isinstance(ref, str) else ""
        target = sent[len(LMDB_SCHEME):].rpartition("#")[0] if sent.startswith(LMDB_SCHEME) else sent
        swaps = []
        if target:
            try:
                swaps.append((str(self.path_of(target)), target))
            except (ImageNotAllowed, OSError, ValueError):
                pass
        if self.root is not None:
            swaps += [(str(root), "<image-root>") for root in {self._real_root, Path(self.root), Path(self.root).absolute()}
                      if root is not None]
        for server_path, shown in sorted(swaps, key=lambda swap: -len(swap[0])):
            text = text.replace(server_path, shown)
        return re.sub(r"(?<![\w>.])/[^\s'\"]+", lambda m: m.group(0) if m.group(0) in sent else "<path>", text)

    def _decode(self, ref: str | bytes) -> np.ndarray:
        Image = need("PIL.Image", "reading item images")
        try:
            if isinstance(ref, bytes):
                import io

                img = Image.open(io.BytesIO(ref))
            elif ref.startswith(LMDB_SCHEME):
                img = self._from_lmdb(ref[len(LMDB_SCHEME):], ref)
            else:
                path = self.path_of(ref)
                if not path.is_file():
                    raise ImageNotAllowed(ref) if self.confine else FileNotFoundError("file not found")
                img = Image.open(path)
        except Image.DecompressionBombError as err:
            raise ImageTooLarge(f"refused as a possible decompression bomb ({err})") from None
        if self.max_pixels is not None and img.size[0] * img.size[1] > self.max_pixels:
            raise ImageTooLarge(f"{img.size[0]}x{img.size[1]} pixels is over the limit of {self.max_pixels:,} pixels")
        # JPEG draft mode decodes at a reduced scale that is still >= the target: much faster for
        # large product photos (H&M's are ~1166 x 1750) and no loss after the resize.
        img.draft("RGB", (self.size, self.size))
        img.load()  # decode now: truncated or corrupt files fail here, not later
        img = img.convert("RGB")
        if img.size != (self.size, self.size):
            img = img.resize((self.size, self.size), Image.Resampling.BILINEAR, reducing_gap=None)
        return np.asarray(img, dtype=np.uint8)

    def _from_lmdb(self, ref: str, whole: str):
        db, sep, key = ref.rpartition("#")
        if not sep:
            raise ValueError(f"bad LMDB image reference {ref!r} (expected <database>#<key>)")
        try:
            path = self.path_of(db)
        except ImageNotAllowed:
            raise ImageNotAllowed(whole) from None
        if self.confine and not path.exists():
            raise ImageNotAllowed(whole)
        path = str(path)
        if path not in self._lmdb:
            self._lmdb[path] = LmdbImages(path)
        try:
            return self._lmdb[path].image(key)
        except (KeyError, FileNotFoundError):
            if self.confine:
                raise ImageNotAllowed(whole) from None
            raise


def _store_key(refs: list[str], root: Path | None, size: int) -> str:
    """Keyed by every referenced file's identity too (size, mtime; morec.digest says why not the bytes),
    so a fixed, replaced or newly supplied image makes a new store instead of reusing the old pixels."""
    decoder = ImageDecoder(root, size)
    stamps = {}
    for ref in refs:
        if ref and ref not in stamps:
            if ref.startswith(LMDB_SCHEME):
                db = decoder.path_of(ref[len(LMDB_SCHEME):].rpartition("#")[0])
                stamps[ref] = file_stamp(db / "data.mdb" if db.is_dir() else db)
            else:
                stamps[ref] = file_stamp(decoder.path_of(ref))
    spec = json.dumps([STORE_VERSION, size, str(root) if root else "", refs, [stamps.get(r) for r in refs]])
    return hashlib.sha256(spec.encode("utf-8")).hexdigest()[:16]


def image_refs(dataset) -> tuple[list[str], Path | None]:
    """One image reference per item (index 1..n_items, in order; '' = none) and the folder they are
    relative to."""
    if "image" not in dataset.items.columns:
        raise DataFormatError(f"{dataset.path}: the prepared dataset has no item images (no 'image' column). "
                              "Prepare it from a reader that lists images (e.g. --format table "
                              "--option image_column=... or image_pattern=...)")
    root = dataset.manifest.get("image_root")
    return [str(x) if x is not None else "" for x in dataset.items["image"].tolist()], Path(root) if root else None


def build_image_store(dataset, size: int = 224, missing: str = "error", workers: int = 0,
                      log=print) -> ImageStore:
    """The dataset's image store at ``size`` px: loaded if built before, else built now (once).

    ``missing``: ``error`` raises naming every unusable image (first 20 listed); ``blank`` fills
    them with a blank image and reports the count. ``workers``: decoding threads (0 = CPU count;
    Pillow releases the GIL while decoding and resizing).
    """
    if missing not in POLICIES + ("quiet",):  # quiet: blank, and the caller reports (prepare does)
        raise ValueError(f"image missing policy must be one of {POLICIES}, not {missing!r}")
    refs, root = image_refs(dataset)
    key = _store_key(refs, root, size)
    base = Path(dataset.cache_dir) / f"images-{size}px-{key}"
    npy, index = base.with_suffix(".npy"), base.with_suffix(".json")
    if npy.exists() and index.exists():
        meta = json.loads(index.read_text(encoding="utf-8"))
        problems = [ImageProblem(**p) for p in meta["problems"]]
        store = ImageStore(np.load(npy, mmap_mode="r"), npy, problems)
    else:
        store = _build(dataset, refs, root, size, npy, index, workers, log)
    if missing != "quiet":
        _apply_policy(store, missing, log, *accepted_problems(dataset))
    return store


BUILD_BATCH = 256  # images decoded, resized and written per step: the build's memory is this, not the store


def _build(dataset, refs, root, size, npy: Path, index: Path, workers: int, log) -> ImageStore:
    items = dataset.items["item"].astype(str).tolist()
    n = len(refs)
    tmp = temp_sibling(npy, ".npy")
    decode = ImageDecoder(root, size)

    def work(row: int) -> tuple[np.ndarray, ImageProblem | None]:
        ref = refs[row - 1]
        try:
            if not ref:
                raise FileNotFoundError("no image listed for this item")
            return decode(ref), None
        except Exception as err:  # noqa: BLE001 -- any decoder failure is a per-image problem to report
            reason = str(err) or type(err).__name__
            return _blank(size), ImageProblem(row, items[row - 1], ref, f"{type(err).__name__}: {reason}"
                                              if not isinstance(err, FileNotFoundError) else reason)

    n_threads = workers or min(8, os.cpu_count() or 1)
    # LMDB read transactions are per thread; one thread keeps it simple and is I/O-light
    threaded = n_threads > 1 and n > 64 and not any(r.startswith(LMDB_SCHEME) for r in refs[:1])
    with ThreadPoolExecutor(n_threads if threaded else 1) as pool, open(tmp, "wb") as f:
        problems = _write_rows(f, (n + 1, size, size, 3), lambda rows: pool.map(work, rows), dataset.name)
    tmp.replace(npy)  # atomic: an interrupted build leaves no half-written store behind
    index.write_text(json.dumps({
        "version": STORE_VERSION, "size": size, "n_items": n, "image_root": str(root) if root else None,
        "problems": [vars(p) for p in problems],
    }, indent=1), encoding="utf-8")
    log(f"[{dataset.name}] image store: {n - len(problems):,} of {n:,} item images decoded and resized to "
        f"{size}x{size} -> {npy} ({npy.stat().st_size / 2**20:,.1f} MiB)")
    return ImageStore(np.load(npy, mmap_mode="r"), npy, problems)


def _blank(size: int) -> np.ndarray:
    return np.full((size, size, 3), BLANK_VALUE, dtype=np.uint8)


def _write_rows(f, shape: tuple, decode_rows, name: str) -> list[ImageProblem]:
    """Write the .npy store to the open file ``f`` in batches of :data:`BUILD_BATCH` decoded rows, in order
    (row 0 blank): a batch is written and freed before the next is decoded, and nothing of the file is mapped,
    so memory stays bounded whatever the number of images. ``decode_rows(rows)`` yields (pixels, problem)."""
    from tqdm import tqdm

    np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False, "shape": shape})
    f.write(_blank(shape[1]).tobytes())
    problems: list[ImageProblem] = []
    # disable=None: shown on a terminal only (the build's own log line reports it; a log file gets no bar clutter)
    with tqdm(total=shape[0] - 1, desc=f"[{name}] decoding images", unit="image", file=sys.stderr,
              leave=False, disable=None) as bar:
        for start in range(1, shape[0], BUILD_BATCH):
            rows = range(start, min(start + BUILD_BATCH, shape[0]))
            for pixels, problem in decode_rows(rows):
                f.write(pixels.tobytes())
                if problem is not None:
                    problems.append(problem)
            bar.update(len(rows))
    return problems


def accepted_problems(dataset) -> tuple[frozenset[str], Path | None]:
    """(item ids whose unusable image the dataset was prepared to blank, the file listing them)."""
    manifest = getattr(dataset, "manifest", {}) or {}
    if manifest.get("image_missing") != "blank":
        return frozenset(), None
    path = Path(dataset.path) / PROBLEMS_FILE
    if not path.is_file():
        return frozenset(), None
    return frozenset(p["item"] for p in json.loads(path.read_text(encoding="utf-8"))), path


_SAID: set[str] = set()  # lines said once per process: every command that loads a store would repeat them


def _say_once(log, line: str) -> None:
    if line not in _SAID:
        _SAID.add(line)
        log(line)


def _apply_policy(store: ImageStore, missing: str, log, accepted: frozenset = frozenset(),
                  listed_in: Path | None = None) -> None:
    """Problems the dataset was prepared to blank (``accepted``) are summarised; the rest follow ``missing``."""
    new = [p for p in store.problems if p.item not in accepted]
    if len(new) < len(store.problems):
        _say_once(log, f"image store: {len(store.problems) - len(new):,} of {store.n_items:,} items have no usable "
                       f"image and get a blank one, as prepared (prepare.image_missing=blank; listed in {listed_in})")
    if not new:
        return
    listed = "\n  ".join(str(p) for p in new[:20])
    more = f"\n  ... and {len(new) - 20:,} more" if len(new) > 20 else ""
    if missing == "error":
        raise DataFormatError(
            f"{len(new):,} of {store.n_items:,} item images are missing or unreadable:\n  {listed}{more}\n"
            f"Fix or supply them, or set model.encoder.vision.image_missing=blank to use a blank image for these items "
            f"(the full list is in {store.path.with_suffix('.json')})")
    _say_once(log, f"image store: {len(new):,} of {store.n_items:,} items have no usable image and get a blank one "
                   f"(model.encoder.vision.image_missing=blank; listed in {store.path.with_suffix('.json')})")


_Decoder = ImageDecoder  # the name it had while only the image store used it
