"""`morec serve` reads only what it should: new items' images arrive as uploaded bytes or as
paths under --image-root (``..``, absolute paths and symlinks out of it refused, with one answer for
"not allowed or not found"); ``lmdb:`` only under the root; a pixel limit checked before decoding and
Pillow's decompression-bomb guard; an optional bearer token for POST /items; /health names no path."""
import base64
import io
import struct
import zlib

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("fastapi")
PIL = pytest.importorskip("PIL")
httpx = pytest.importorskip("httpx")
import serving_fixtures as sf  # noqa: E402

from morec.recommend import RecommenderService  # noqa: E402
from morec.serve import BackgroundServer, Limits  # noqa: E402

TOKEN = "s3cret-token"
NOT_ALLOWED = "not allowed or not found"


def png_bytes(size=(32, 32), color=(200, 30, 30)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height pixels: what a decompression bomb looks like
    before decoding."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def vision_run(tmp_path_factory):
    """A tiny vision MoRec SASRec (random tiny ResNet, frozen features) on synthetic images."""
    from morec.data.formats.registry import read_raw
    from morec.data.prepare import prepare
    from morec.data.synthetic import SynthConfig, write_synthetic
    from training_helpers import train_tiny_vision_run

    root = tmp_path_factory.mktemp("vision-serve")
    raw = write_synthetic(SynthConfig(n_users=60, n_items=30, n_topics=3, seq_len_min=5, seq_len_max=8,
                                      image_size=32, seed=2), root / "raw")
    prepare(read_raw(raw), root / "prepared", log=sf.QUIET)
    train_tiny_vision_run(root / "prepared", root, sf.QUIET)
    return root


@pytest.fixture(scope="module")
def server(vision_run, tmp_path_factory):
    base = tmp_path_factory.mktemp("fs")
    root, outside = base / "images", base / "private"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (root / "ok.png").write_bytes(png_bytes())
    (outside / "private.png").write_bytes(png_bytes(color=(1, 2, 3)))
    (root / "link.png").symlink_to(outside / "private.png")  # a link out of the root
    (root / "sub" / "dirlink").symlink_to(outside, target_is_directory=True)
    (root / "notes.txt").write_text("not an image")
    run = sf.fresh_copy(vision_run / "run", base / "run")
    service = RecommenderService.from_run(run)
    limits = Limits(max_body=200_000, max_image_pixels=100 * 100)
    with BackgroundServer(service, limits, image_root=root, token=TOKEN) as url:
        with httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            yield {"client": client, "url": url, "root": root, "outside": outside, "service": service, "run": run}


def add(server, item_id, **fields):
    return server["client"].post("/items", json={"items": [{"id": item_id, **fields}]})


def test_uploaded_bytes_and_paths_under_the_root_are_accepted_and_agree(server):
    r = add(server, "up1", image_base64=base64.b64encode(png_bytes()).decode())
    assert r.status_code == 200, r.text
    r = add(server, "path1", image="ok.png")
    assert r.status_code == 200, r.text
    r = add(server, "path2", image="sub/../ok.png")  # '..' that stays inside is fine
    assert r.status_code == 200, r.text
    r = add(server, "path3", image=str(server["root"] / "ok.png"))  # an absolute path inside the root too
    assert r.status_code == 200, r.text
    snap = server["service"].snapshot
    rows = [snap.index[i] for i in ("up1", "path1", "path2", "path3")]
    assert all(np.allclose(snap.outputs[rows[0]].numpy(), snap.outputs[j].numpy(), atol=1e-5) for j in rows[1:])


@pytest.mark.parametrize("ref", ["../private/private.png", "sub/../../private/private.png", "link.png",
                                 "sub/dirlink/private.png", "ABSOLUTE_PRIVATE", "/etc/passwd", "missing.png",
                                 "ABSOLUTE_MISSING", "sub", "lmdb:ABSOLUTE_OUTSIDE#1", "lmdb:../private#1",
                                 "lmdb:nothing-here#1"])
def test_paths_out_of_the_root_or_missing_get_one_answer(server, ref):
    ref = (ref.replace("ABSOLUTE_PRIVATE", str(server["outside"] / "private.png"))
              .replace("ABSOLUTE_MISSING", str(server["outside"] / "nope.png"))
              .replace("ABSOLUTE_OUTSIDE", str(server["outside"])))
    n0 = server["client"].get("/health").json()["items"]
    r = add(server, "x-" + str(abs(hash(ref))), image=ref)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert NOT_ALLOWED in detail and "cannot identify" not in detail and "file not found" not in detail
    assert str(server["outside"]) not in detail.replace(ref, "")  # nothing about the file system beyond the ref
    assert server["client"].get("/health").json()["items"] == n0


def test_a_non_image_inside_the_root_is_a_clear_error(server):
    r = add(server, "txt", image="notes.txt")
    assert r.status_code == 422 and "cannot read the image 'notes.txt'" in r.json()["detail"]


def test_pixel_limit_and_decompression_bomb_are_refused_before_decoding(server):
    big = add(server, "big", image_base64=base64.b64encode(png_bytes((101, 100))).decode())
    assert big.status_code == 413 and "over the limit of 10,000 pixels" in big.json()["detail"], big.text
    # a 10000 x 10000 PNG and a 100000 x 100000 bomb: tiny files, refused from the header
    for w in (10_000, 100_000):
        r = add(server, f"bomb{w}", image_base64=base64.b64encode(png_header_only(w, w)).decode())
        assert r.status_code == 413, r.text
        assert "over the limit" in r.json()["detail"] or "decompression bomb" in r.json()["detail"]
    assert add(server, "bad64", image_base64="not base64!").json()["detail"].endswith("not valid base64")


def test_token_guards_adding_items_only(server):
    url = server["url"]
    body = {"items": [{"id": "tok", "image": "ok.png"}]}
    assert httpx.post(url + "/items", json=body).status_code == 401
    r = httpx.post(url + "/items", json=body, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert "tok" not in server["service"].snapshot.index
    hist = server["service"].snapshot.ids[1:3]
    assert httpx.post(url + "/recommend", json={"history": hist, "k": 2}).status_code == 200  # reading needs none
    assert httpx.post(url + "/items", json=body, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_health_shows_no_filesystem_path(server):
    h = server["client"].get("/health").json()
    text = str(h)
    assert h["status"] == "ok" and "source" not in h
    assert str(server["run"]) not in text and "/" not in text


def test_without_an_image_root_only_uploads_are_accepted(vision_run, tmp_path):
    service = RecommenderService.from_run(sf.fresh_copy(vision_run / "run", tmp_path / "run"))
    (tmp_path / "a.png").write_bytes(png_bytes())
    with BackgroundServer(service) as url:
        r = httpx.post(url + "/items", json={"items": [{"id": "p", "image": str(tmp_path / "a.png")}]}, timeout=60)
        assert r.status_code == 422 and NOT_ALLOWED in r.json()["detail"]
        r = httpx.post(url + "/items", json={"items": [{"id": "u", "image_base64": base64.b64encode(png_bytes()).decode()}]},
                       timeout=60)
        assert r.status_code == 200, r.text


def test_cli_takes_the_token_from_the_environment(monkeypatch, vision_run):
    import morec.cli_serving
    from morec.cli import main

    seen = {}
    monkeypatch.setattr(morec.cli_serving, "serve", lambda *a, **k: seen.update(k))  # the function the command calls
    monkeypatch.setenv("MOREC_SERVE_TOKEN", "from-env")
    assert main(["serve", str(vision_run / "run"), "--image-root", str(vision_run)]) == 0
    assert seen["token"] == "from-env" and seen["image_root"] == str(vision_run)
    assert main(["serve", str(vision_run / "run"), "--token", "given"]) == 0 and seen["token"] == "given"
