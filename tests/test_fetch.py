"""fetch_dataset: offline behaviour (fast) and one real download (integration)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from morec.data import fetch
from morec.data.fetch import FetchError, fetch_dataset
from morec.data.formats.registry import read_raw


def test_unknown_dataset_lists_known_names(tmp_path):
    with pytest.raises(FetchError, match=r"unknown dataset 'netflix'; known: .*ml-100k.*movielens-100k"):
        fetch_dataset("netflix", tmp_path)


@pytest.mark.parametrize("name, reader", [("mind", "'mind' reader and preset"), ("hm", "'hm' reader and preset")])
def test_licensed_datasets_explain_the_manual_download(name, reader, tmp_path, capsys):
    with pytest.raises(FetchError, match=reader):
        fetch_dataset(name, tmp_path)
    assert "https://" in capsys.readouterr().out
    assert not any(tmp_path.iterdir())


def test_offline_only_never_downloads(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("offline_only must not touch the network")

    monkeypatch.setattr(fetch.urllib.request, "urlopen", no_network)
    monkeypatch.setattr(fetch.subprocess, "run", no_network)
    with pytest.raises(FetchError, match="offline_only"):
        fetch_dataset("ml-100k", tmp_path, offline_only=True)


def test_present_copy_with_wrong_checksum_is_not_trusted(tmp_path):
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    for name in fetch.RECBOLE_SHA256:
        (folder / name).write_text("not the real file\n")
    with pytest.raises(FetchError, match="no verified MovieLens-100K"):
        fetch_dataset("movielens-100k", tmp_path, offline_only=True)


@pytest.mark.integration
def test_fetch_movielens_100k_for_real(tmp_path, capsys):
    folder = fetch_dataset("movielens-100k", tmp_path)
    assert folder == tmp_path / "ml-100k"
    source = json.loads((folder / "SOURCE.json").read_text())
    data = read_raw(folder, format=source["format"])
    assert len(data.interactions) == 100_000
    assert data.interactions["user"].nunique() == 943
    assert len(data.items) == 1_682
    assert data.interactions["item"].isin(data.items["item"]).all()
    if source["format"] == "recbole":  # the fallback used where GroupLens is unreachable
        assert source["sha256"] == fetch.RECBOLE_SHA256
    capsys.readouterr()
    # A second call finds the verified copy and downloads nothing.
    assert fetch_dataset("ml-100k", tmp_path, offline_only=True) == folder
    assert "nothing to download" in capsys.readouterr().out


def test_grouplens_archive_is_unzipped_and_verified(tmp_path, monkeypatch):
    # A stand-in for ml-100k.zip built from the fixture, with the expected counts scaled down.
    import io
    import zipfile

    fixture = Path(__file__).parent / "fixtures" / "movielens"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in ("u.data", "u.item"):
            archive.write(fixture / name, f"ml-100k/{name}")

    class Response(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(fetch.urllib.request, "urlopen", lambda url, timeout: Response(buffer.getvalue()))
    monkeypatch.setattr(fetch, "N_INTERACTIONS", 4)
    monkeypatch.setattr(fetch, "N_ITEMS", 4)
    folder = fetch_dataset("ml-100k", tmp_path)
    source = json.loads((folder / "SOURCE.json").read_text())
    assert source["source"] == fetch.GROUPLENS_URL and source["format"] == "movielens"
    assert set(source["sha256"]) == {"u.data", "u.item"}
    assert len(read_raw(folder).interactions) == 4
