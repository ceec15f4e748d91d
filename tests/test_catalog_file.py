"""The run directory's catalogue file on its own (no model): what is appended is what is read back, in order;
a clash, a wrong fingerprint or a damaged file is refused with its reason and leaves the file as it was; the
lock serialises concurrent additions and gives up with a one-line error when held too long."""
import threading

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from morec import catalog
from morec.catalog import (CATALOG_FILE, AddedItems, CatalogError, DuplicateItemsError, append_added, catalog_lock,
                           catalog_signature, load_added, read_added, save_added)
from morec.config import ConfigError

FP = "f" * 32


def vecs(*values, d=3):
    return torch.tensor([[float(v)] * d for v in values])


def test_an_empty_run_has_an_empty_catalogue(tmp_path):
    assert read_added(tmp_path) == AddedItems([], [], None, None)
    assert load_added(tmp_path) == ([], [], None)
    assert catalog_signature(tmp_path) is None


def test_appends_are_read_back_whole_and_in_order(tmp_path):
    first = append_added(tmp_path, ["a", "b"], ["A", None], vecs(1, 2).double(), FP)
    assert first.ids == ["a", "b"] and first.titles == ["A", None]
    assert first.vectors.dtype == torch.float32 and torch.equal(first.vectors, vecs(1, 2))
    assert first.signature == catalog_signature(tmp_path) is not None
    grad = vecs(3).requires_grad_()
    second = append_added(tmp_path, ["c"], ["C"], grad, FP, trained={"x": 1})
    assert second.ids == ["a", "b", "c"] and second.titles == ["A", None, "C"]
    assert torch.equal(second.vectors, vecs(1, 2, 3)) and not second.vectors.requires_grad
    back = read_added(tmp_path, FP)
    assert (back.ids, back.titles, back.signature) == (second.ids, second.titles, second.signature)
    assert torch.equal(back.vectors, vecs(1, 2, 3))
    ids, titles, vectors = load_added(tmp_path, FP)
    assert ids == ["a", "b", "c"] and titles == ["A", None, "C"] and torch.equal(vectors, vecs(1, 2, 3))
    assert second.signature != first.signature  # replaced, not edited: readers see a new file
    assert not list(tmp_path.glob("*.tmp*"))


@pytest.mark.parametrize("ids, trained, clash", [(["b"], None, "b"), (["n", "t"], {"t": 4}, "t"),
                                                 (["z", "a"], {"q": 1}, "a")])
def test_an_id_already_there_is_refused_and_nothing_is_written(tmp_path, ids, trained, clash):
    append_added(tmp_path, ["a", "b"], ["A", "B"], vecs(1, 2), FP)
    before = catalog_signature(tmp_path)
    with pytest.raises(DuplicateItemsError, match=f"already in the catalogue: {clash}; new items need new ids"):
        append_added(tmp_path, ids, ["x"] * len(ids), vecs(*range(len(ids))), FP, trained)
    assert catalog_signature(tmp_path) == before and read_added(tmp_path).ids == ["a", "b"]


def test_another_models_catalogue_is_refused(tmp_path):
    save_added(tmp_path, ["a"], ["A"], vecs(1), "other")
    assert read_added(tmp_path).ids == ["a"]  # without a fingerprint: read as it is
    with pytest.raises(ConfigError, match=r"encoded with other weights than .*/model\.safetensors \(the model was "
                       r"retrained since\); delete it and add the items again with `morec catalog add`$"):
        read_added(tmp_path, FP)
    with pytest.raises(ConfigError, match="other weights"):
        load_added(tmp_path, FP)
    with safe_open(str(tmp_path / CATALOG_FILE), framework="pt") as f:
        assert f.metadata()["format"] == "morec-added-items/1"
    with pytest.raises(ConfigError, match="other weights"):
        append_added(tmp_path, ["b"], ["B"], vecs(2), FP)


def test_a_damaged_or_foreign_file_names_what_to_do(tmp_path):
    path = tmp_path / CATALOG_FILE
    path.write_bytes(b"not a safetensors file")
    with pytest.raises(ConfigError, match=rf"{CATALOG_FILE} is damaged \([A-Za-z]*Error: .*delete it and add the items "
                       "again with `morec catalog add`$"):
        read_added(tmp_path)
    save_file({"vectors": vecs(1)}, str(path), {"weights": FP})
    with pytest.raises(ConfigError, match="not a morec catalogue file .*again with `morec catalog add`$"):
        read_added(tmp_path, FP)
    save_file({"vectors": vecs(1)}, str(path), {"weights": FP, "ids": '["a", "b"]', "titles": '["A", "B"]'})
    with pytest.raises(ConfigError, match=r"inconsistent \(2 ids, 1 vectors\)"):
        read_added(tmp_path)
    save_file({"vectors": vecs(1, 2)}, str(path), {"weights": FP, "ids": '["a", "b"]', "titles": '["A"]'})
    with pytest.raises(ConfigError, match="inconsistent"):
        read_added(tmp_path)


def test_concurrent_appends_lose_nothing(tmp_path):
    errors = []

    def writer(w):
        try:
            for n in range(6):
                append_added(tmp_path, [f"w{w}-{n}"], [f"t{w}-{n}"], vecs(10 * w + n), FP)
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    added = read_added(tmp_path, FP)
    assert sorted(added.ids) == sorted(f"w{w}-{n}" for w in range(4) for n in range(6))
    for i, t, v in zip(added.ids, added.titles, added.vectors):  # each id kept its own title and vector
        w, n = map(int, i[1:].split("-"))
        assert t == f"t{w}-{n}" and torch.equal(v, vecs(10 * w + n)[0])


def test_a_held_lock_makes_an_addition_give_up_with_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setattr(catalog, "LOCK_TIMEOUT", 0.3)
    lock = catalog_lock(tmp_path)
    assert lock.lock_file == str(tmp_path / (CATALOG_FILE + ".lock"))
    with lock:  # another open of the lock file, as another process would hold it
        with pytest.raises(CatalogError, match=r"held by another addition for over 0 s; try again") as err:
            append_added(tmp_path, ["a"], ["A"], vecs(1), FP)
    assert "\n" not in str(err.value) and not isinstance(err.value, DuplicateItemsError)
    assert append_added(tmp_path, ["a"], ["A"], vecs(1), FP).ids == ["a"]  # released: the next one goes through
