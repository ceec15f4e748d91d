"""The image store: decoded and resized once into a memory-mapped array, exact pixels, cached,
normalized at load time, and missing / corrupt images reported by item and file under both policies."""
import numpy as np
import pytest
import torch

pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

from morec.data.dataset import PreparedDataset  # noqa: E402
from morec.data.formats import DataFormatError  # noqa: E402
from morec.data.formats.registry import read_raw  # noqa: E402
from morec.data.images import BLANK_VALUE, _Decoder, build_image_store, to_model_input  # noqa: E402
from morec.data.prepare import prepare  # noqa: E402
from morec.data.synthetic import SynthConfig, generate, write_synthetic  # noqa: E402

QUIET = lambda s: None  # noqa: E731


def make(tmp_path, name="d", image_size=16, damage=None):
    raw_dir = write_synthetic(SynthConfig(n_users=60, n_items=40, n_topics=4, image_size=image_size, seed=5),
                              tmp_path / f"raw-{name}")
    prepare(read_raw(raw_dir), tmp_path / name, log=QUIET)
    if damage:  # after prepare, which checks every image: the store meets what changed since
        damage(raw_dir)
    return raw_dir, PreparedDataset(tmp_path / name)


def test_store_holds_every_image_exactly_and_is_built_once(tmp_path, monkeypatch):
    raw_dir, ds = make(tmp_path)
    store = build_image_store(ds, 16, log=QUIET)
    assert store.pixels.shape == (ds.n_items + 1, 16, 16, 3) and store.pixels.dtype == np.uint8
    assert isinstance(store.pixels, np.memmap) and not store.problems
    assert (store.pixels[0] == BLANK_VALUE).all()  # padding row
    for row in (1, ds.n_items):
        item = ds.items["item"].iloc[row - 1]
        assert (store.pixels[row] == np.asarray(Image.open(raw_dir / "images" / f"{item}.png"))).all()
    assert not list(ds.cache_dir.glob("*.tmp*"))  # written atomically
    monkeypatch.setattr(_Decoder, "__call__", lambda *a: pytest.fail("decoded again"))
    again = build_image_store(ds, 16, log=QUIET)
    assert again.path == store.path and np.array_equal(again.pixels, store.pixels)
    monkeypatch.undo()
    small = build_image_store(ds, 8, log=QUIET)  # another size, another store, resized
    assert small.pixels.shape[1:] == (8, 8, 3) and small.path != store.path
    big = np.asarray(Image.fromarray(store.pixels[3]).resize((8, 8), Image.Resampling.BILINEAR))
    assert np.abs(small.pixels[3].astype(int) - big).max() <= 2


def test_gather_and_normalization(tmp_path):
    _, ds = make(tmp_path)
    store = build_image_store(ds, 16, log=QUIET)
    items = torch.tensor([5, 2, 5, 9])
    raw = store.gather(items)
    assert raw.shape == (4, 16, 16, 3) and torch.equal(raw[0], raw[2]) and (raw[1].numpy() == store.pixels[2]).all()
    mean, std = torch.tensor([0.5, 0.4, 0.3]), torch.tensor([0.2, 0.25, 0.3])
    x = to_model_input(raw, mean, std, torch.device("cpu"))
    want = (raw.permute(0, 3, 1, 2).float() / 255 - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    assert x.shape == (4, 3, 16, 16) and torch.allclose(x, want, atol=1e-6) and x.is_contiguous()
    cl = to_model_input(raw, mean, std, torch.device("cpu"), channels_last=True)
    assert cl.is_contiguous(memory_format=torch.channels_last) and torch.equal(cl, x)


def _delete_and_corrupt(raw_dir):
    (raw_dir / "images" / "i3.png").unlink()
    (raw_dir / "images" / "i7.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")


def test_missing_and_corrupt_images_are_named_under_both_policies(tmp_path):
    _, ds = make(tmp_path, damage=_delete_and_corrupt)
    with pytest.raises(DataFormatError) as err:
        build_image_store(ds, 16, "error", log=QUIET)
    msg = str(err.value)
    assert "2 of 40 item images" in msg and "image_missing=blank" in msg
    assert "item 'i3'" in msg and "images/i3.png: file not found" in msg
    assert "item 'i7'" in msg and "images/i7.png" in msg
    logged = []
    store = build_image_store(ds, 16, "blank", log=logged.append)  # the store exists: only the policy differs
    assert sorted(p.item for p in store.problems) == ["i3", "i7"]
    assert any("2 of 40 items have no usable image" in line for line in logged)
    rows = ds.item_index()[["i3", "i7"]].to_numpy()
    assert (store.pixels[rows] == BLANK_VALUE).all() and (store.pixels[ds.item_index()["i4"]] != BLANK_VALUE).any()


def test_dataset_without_images_is_a_clear_error(tmp_path):
    prepare(generate(SynthConfig(n_users=30, n_items=40, n_topics=2, image_size=0)), tmp_path / "p", log=QUIET)
    with pytest.raises(DataFormatError, match="no item images"):
        build_image_store(PreparedDataset(tmp_path / "p"), 16, log=QUIET)


def test_prepare_can_decode_every_image_up_front(tmp_path):
    from morec.config import PrepareConfig

    raw_dir = write_synthetic(SynthConfig(n_users=40, n_items=30, n_topics=3, seq_len_min=5, seq_len_max=8,
                                          image_size=16, seed=3), tmp_path / "raw")
    out = prepare(read_raw(raw_dir), tmp_path / "prepared", PrepareConfig(image_size=16), log=lambda s: None)
    stores = list((out / "cache").glob("images-16px-*.npy"))
    assert len(stores) == 1
    store = np.load(stores[0], mmap_mode="r")
    assert store.shape[1:] == (16, 16, 3) and store.dtype == np.uint8 and store[1:].any()
