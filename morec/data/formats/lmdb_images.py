"""The paper code's image store for HM and Bili: an LMDB of item images, plus its user sequences.

Layout (as the paper's ``get_lmdb.py`` writes it): a folder with a sequences file
(``user<TAB>item item ...``), an items file (``id<TAB>title``) and an LMDB (a directory holding
``data.mdb``, or a single ``*.lmdb`` file). Each LMDB value is either an encoded image file (JPEG /
PNG bytes) or a *pickled* ``LMDB_Image`` object (``channels``, ``size``, ``image`` = raw uint8
bytes); keys are the item ids, or their number without a letter prefix or leading zeros (``v123``
-> ``123``, ``0108775015`` -> ``108775015``), as the paper's preprocessing derives them. The
``__keys__`` / ``__len__`` bookkeeping entries are ignored.

Pickles from a downloaded database are untrusted: :class:`_RecordUnpickler` only rebuilds the
``LMDB_Image`` record (into a plain attribute holder) and the few numpy / copyreg helpers such a
record can reference; any other class is refused, so loading can never run code.

Images are not decoded here: each item's ``image`` becomes ``lmdb:<database>#<key>``, which the
image store (morec.data.images) reads once when it builds its array.
"""
from __future__ import annotations

import io
import pickle
import re
from pathlib import Path

import numpy as np

from morec.data.formats import DataFormatError, RawDataset
from morec.data.formats.sequences import read_sequences
from morec.extras import need

_SPECIAL_KEYS = (b"__keys__", b"__len__")
_NUMBER = re.compile(r"^[A-Za-z_]*0*(\d+)$")


def _import_lmdb():
    try:
        import lmdb
    except ImportError:
        raise DataFormatError("reading an LMDB image store needs the lmdb package: pip install 'morec[vision]'") from None
    return lmdb


# --- safe unpickling of the paper's LMDB_Image records --------------------------------------

class LmdbImageRecord:
    """Stands in for the paper code's ``LMDB_Image``: only its attributes are restored."""

    channels: int
    size: tuple
    image: bytes

    def array(self) -> np.ndarray:
        h, w = (int(v) for v in self.size)
        return np.frombuffer(self.image, dtype=np.uint8).reshape(h, w, int(self.channels))


def _numpy_scalar(dtype, data=None):
    return np.frombuffer(data, dtype=dtype)[0] if data is not None else dtype.type()


_ALLOWED = {
    ("copyreg", "_reconstructor"): "copyreg",  # protocol 0/1 objects
    ("builtins", "object"): object,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,  # an id stored as a numpy integer
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy", "dtype"): np.dtype,
}


class _RecordUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if name == "LMDB_Image":  # defined in whatever script wrote the database (__main__, data_utils, ...)
            return LmdbImageRecord
        found = _ALLOWED.get((module, name))
        if found == "copyreg":
            import copyreg
            return copyreg._reconstructor
        if found is not None:
            return found
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from an LMDB image record "
                                     "(only LMDB_Image records are accepted)")


def load_record(value: bytes):
    """A pickled LMDB value, with only the classes an LMDB_Image record needs."""
    return _RecordUnpickler(io.BytesIO(value)).load()


# --- reading ----------------------------------------------------------------------------------

class LmdbImages:
    """Read-only access to one image LMDB (a directory with data.mdb, or a single file)."""

    def __init__(self, path: str | Path):
        lmdb = _import_lmdb()
        self.path = Path(path)
        if not self.path.exists():
            raise DataFormatError(f"{self.path}: LMDB image store not found")
        self.env = lmdb.open(str(self.path), subdir=self.path.is_dir(), readonly=True, lock=False,
                             readahead=False, meminit=False, max_readers=512)

    def keys(self) -> list[str]:
        with self.env.begin() as txn:
            return [k.decode("utf-8", "replace") for k in txn.cursor().iternext(keys=True, values=False)
                    if k not in _SPECIAL_KEYS]

    def image(self, key: str):
        """The PIL image stored under ``key`` (KeyError when absent)."""
        Image = need("PIL.Image", "reading LMDB images")
        with self.env.begin() as txn:
            value = txn.get(key.encode("utf-8"))
        if value is None:
            raise KeyError(f"key {key!r} not in the LMDB {self.path}")
        if value[:1] == b"\x80":  # a pickle (protocol >= 2)
            record = load_record(value)
            if not isinstance(record, LmdbImageRecord):
                raise ValueError(f"LMDB value under {key!r} is a {type(record).__name__}, not an LMDB_Image record")
            arr = record.array()
            return Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)
        return Image.open(io.BytesIO(value))  # encoded image bytes


def find_lmdb(folder: Path) -> Path:
    found = sorted({p.parent for p in folder.glob("*/data.mdb")} | {p for p in folder.glob("*.lmdb") if p.is_file()})
    if len(found) != 1:
        listed = ", ".join(str(p.relative_to(folder)) for p in found) or "none"
        raise DataFormatError(f"{folder}: expected one LMDB image store (a folder with data.mdb, or a *.lmdb file), "
                              f"found {listed}. Pass lmdb='...'.")
    return found[0]


def item_key(item: str, keys: set[str]) -> str | None:
    """The LMDB key of an item: its id, or the id's number (the paper's convention); None if absent."""
    if item in keys:
        return item
    m = _NUMBER.match(item)
    return m.group(1) if m and m.group(1) in keys else None


def read_lmdb_images(
    path: str | Path,
    *,
    lmdb: str | Path | None = None,
    sequences_file: str | Path | None = None,
    items_file: str | Path | None = None,
    encoding: str = "utf-8",
) -> RawDataset:
    """Read the paper code's HM / Bili layout: sequences + items files and an LMDB of item images."""
    folder = Path(path)
    if not folder.is_dir():
        raise DataFormatError(f"{folder}: no such folder.")
    # a given path is relative to the folder; a found one already includes it
    db = find_lmdb(folder) if not lmdb else Path(lmdb) if Path(lmdb).is_absolute() else folder / lmdb
    raw = read_sequences(folder, sequences_file=sequences_file, items_file=items_file, encoding=encoding)
    keys = set(LmdbImages(db).keys())
    rel = db.relative_to(folder) if db.is_relative_to(folder) else db
    items = raw.items.copy()
    found = [item_key(i, keys) for i in items["item"]]
    items["image"] = [f"lmdb:{rel}#{k}" if k is not None else "" for k in found]
    missing = sum(k is None for k in found)
    if missing:
        raw.notes.append(f"{db}: {missing} of {len(items)} items have no image in the LMDB; the image store "
                         "reports them (model.encoder.vision.image_missing decides what happens)")
    return RawDataset(raw.interactions, items, name=folder.name, root=folder, notes=raw.notes)
