"""Image-dataset readers on tiny fixtures in the real layouts (tests/fixtures/make_vision_fixtures.py),
through prepare and the image store, with the missing / corrupt images each fixture contains."""
import pickle
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PIL")
from morec.data.dataset import PreparedDataset  # noqa: E402
from morec.data.formats import DataFormatError  # noqa: E402
from morec.data.formats.registry import detect_format, read_raw  # noqa: E402
from morec.data.images import build_image_store  # noqa: E402
from morec.data.prepare import prepare  # noqa: E402
from morec.config import PrepareConfig  # noqa: E402

FIX = Path(__file__).parent / "fixtures"
QUIET = lambda s: None  # noqa: E731


def prepared(name, tmp_path, missing="blank", **options):
    raw = read_raw(FIX / name, **options)
    out = prepare(raw, tmp_path / name, PrepareConfig(min_user_interactions=3, image_missing=missing), log=QUIET)
    return raw, PreparedDataset(out)


@pytest.mark.parametrize("name", ["hm", "pixelrec", "ninerec", "microlens", "lmdb"])
def test_format_is_detected_and_read(name):
    if name == "lmdb":
        pytest.importorskip("lmdb")
    assert detect_format(FIX / name) == name
    raw = read_raw(FIX / name)
    assert len(raw.interactions) == 20 and raw.interactions["user"].nunique() == 4
    assert raw.interactions["item"].nunique() == 6 and len(raw.items) == 6
    assert "image" in raw.items and (raw.items["image"] != "").sum() >= 5
    assert raw.text_columns  # every layout carries some item text


def _colour(k):  # what make_vision_fixtures painted for item k (JPEG keeps flat colours within a few levels)
    return np.array([(40 * k) % 256, (90 + 30 * k) % 256, (200 - 25 * k) % 256])


def test_hm_ids_images_and_text(tmp_path):
    raw, ds = prepared("hm", tmp_path)
    items = raw.items.set_index("item")
    assert items.loc["0108775015", "image"] == "images/010/0108775015.jpg"
    assert items.loc["0108775015", "title"] == "Strap top, 0" and "description" in items
    times = raw.interactions["timestamp"]
    assert times.iloc[1] - times.iloc[0] == 31 * 86400  # t_dat days, as seconds
    with pytest.raises(DataFormatError, match=r"item '0108775020'.*images/010/0108775020.jpg: file not found.*"
                                              r"--prepare.image_missing=blank"):
        prepared("hm", tmp_path / "strict", missing="error")
    store = build_image_store(ds, 8, "error", log=QUIET)  # prepared with blanks: the dataset decided
    assert [p.item for p in store.problems] == ["0108775020"]
    row = int(ds.item_index()["0108775017"])
    assert np.abs(store.pixels[row].reshape(-1, 3).mean(0) - _colour(2)).max() < 4
    assert (store.pixels[int(ds.item_index()["0108775020"])] == 128).all()  # blank = grey


def test_pixelrec_corrupt_cover_is_named(tmp_path):
    raw, ds = prepared("pixelrec", tmp_path)
    assert raw.items.set_index("item").loc["i3", "image"] == "cover/i3.jpg"
    assert list(raw.text_columns) == ["title"]
    with pytest.raises(DataFormatError, match=r"item 'i5'.*cover/i5.jpg: .*(Error|error|cannot)"):
        prepared("pixelrec", tmp_path / "strict", missing="error")
    assert [p.item for p in build_image_store(ds, 8, "error", log=QUIET).problems] == ["i5"]


def test_ninerec_and_microlens_read_every_cover(tmp_path):
    for name, item in (("ninerec", "1002"), ("microlens", "3")):
        raw, ds = prepared(name, tmp_path)
        store = build_image_store(ds, 8, "error", log=QUIET)
        assert not store.problems and store.pixels.shape == (7, 8, 8, 3)
        k = int(item) - (1000 if name == "ninerec" else 1)
        assert np.abs(store.pixels[int(ds.item_index()[item])].reshape(-1, 3).mean(0) - _colour(k)).max() < 4
    assert raw.name == "MicroLens-50k" and raw.items.set_index("item").loc["3", "title"] == "micro video 2"


def test_lmdb_store_records_bytes_and_missing_keys(tmp_path):
    pytest.importorskip("lmdb")
    raw, ds = prepared("lmdb", tmp_path)
    images = raw.items.set_index("item")["image"]
    assert images["v2"] == "lmdb:hm_images.lmdb#2" and images["v5"] == ""
    store = build_image_store(ds, 8, "blank", log=QUIET)
    assert [p.item for p in store.problems] == ["v5"]
    for k in range(5):  # pickled LMDB_Image records (exact) and PNG bytes (exact)
        assert (store.pixels[int(ds.item_index()[f"v{k}"])] == _colour(k)).all()


class _Evil:
    def __reduce__(self):
        import os
        return (os.system, ("echo pwned",))


def test_lmdb_records_never_unpickle_other_classes():
    pytest.importorskip("lmdb")
    from morec.data.formats.lmdb_images import LmdbImageRecord, load_record

    with pytest.raises(pickle.UnpicklingError, match="refusing to load posix.system|refusing to load os.system"):
        load_record(pickle.dumps(_Evil()))
    # a genuine record from any module loads into the stand-in class
    rec = load_record(_pickle_record())
    assert isinstance(rec, LmdbImageRecord) and rec.array().shape == (2, 3, 3)


def _pickle_record() -> bytes:
    """A pickle of __main__.LMDB_Image, as the paper's get_lmdb.py writes it (the class exists only while pickling)."""
    cls = type("LMDB_Image", (), {})
    cls.__module__ = "__main__"
    obj = cls.__new__(cls)
    obj.__dict__.update(channels=3, size=(2, 3), image=bytes(18), id="7")
    import sys
    main = sys.modules["__main__"]
    had = getattr(main, "LMDB_Image", None)
    main.LMDB_Image = cls
    try:
        return pickle.dumps(obj, protocol=4)
    finally:
        if had is None:
            del main.LMDB_Image
        else:
            main.LMDB_Image = had


def test_unknown_layout_lists_the_image_formats(tmp_path):
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(DataFormatError, match="hm .*pixelrec .*ninerec .*microlens"):
        detect_format(tmp_path)
