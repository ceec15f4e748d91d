"""`morec serve` against a real uvicorn server on loopback with a real HTTP client (httpx): answers,
new items added while serving (and while other clients are asking), every bad request a 4xx with a
readable message, and a short bounded load test (p50 / p99, zero errors)."""
import json
import os
import socket
import subprocess
import sys
import threading

import pytest

pytest.importorskip("transformers")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")
import serving_fixtures as sf  # noqa: E402

from morec.recommend import RecommenderService  # noqa: E402
from morec.serve import BackgroundServer, Limits, load_test, wait_until_healthy  # noqa: E402


@pytest.fixture(scope="module")
def text_server(tmp_path_factory):
    """A text MoRec SASRec (tiny BERT) served from a copy of its run directory."""
    run = sf.fresh_copy(sf.text_sasrec(tmp_path_factory), tmp_path_factory.mktemp("served") / "run")
    service = RecommenderService.from_run(run)
    with BackgroundServer(service, Limits(max_k=50, max_history=30, max_body=20_000, max_new_items=20)) as url:
        with httpx.Client(base_url=url, timeout=30) as client:
            yield {"url": url, "client": client, "service": service, "run": run}


@pytest.fixture(scope="module")
def id_server(tmp_path_factory):
    service = RecommenderService.from_run(sf.id_sasrec(tmp_path_factory))
    with BackgroundServer(service) as url:
        with httpx.Client(base_url=url, timeout=30) as client:
            yield {"url": url, "client": client, "service": service}


@pytest.fixture(scope="module")
def dssm_server(tmp_path_factory):
    service = RecommenderService.from_run(sf.id_dssm(tmp_path_factory))
    with BackgroundServer(service) as url:
        with httpx.Client(base_url=url, timeout=30) as client:
            yield {"url": url, "client": client, "service": service}


def items(svc, *idx):
    return [svc.snapshot.ids[i] for i in idx]


def test_health_and_recommend(text_server):
    c, svc = text_server["client"], text_server["service"]
    h = c.get("/health").json()
    assert h["status"] == "ok" and h["backbone"] == "sasrec" and h["encoder"] == "text" and h["can_add_items"]
    history = items(svc, 1, 2, 3)
    r = c.post("/recommend", json={"history": history, "k": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body == svc.recommend(history=history, k=5)
    assert len(body["items"]) == 5 and not set(x["id"] for x in body["items"]) & set(history)
    assert all(set(x) == {"id", "title", "score"} for x in body["items"])
    r = c.post("/recommend", json={"user": svc.user_ids[4], "k": 3})
    assert r.status_code == 200 and len(r.json()["items"]) == 3


def test_dssm_over_http(dssm_server):
    c, svc = dssm_server["client"], dssm_server["service"]
    assert c.post("/recommend", json={"user": svc.user_ids[0], "k": 4}).status_code == 200
    r = c.post("/recommend", json={"history": items(svc, 1), "k": 4})
    assert r.status_code == 422 and "reads a user id, not a history" in r.json()["detail"]


@pytest.mark.parametrize("body, status, message", [
    ({"history": ["nope"], "k": 5}, 422, "unknown item id(s): 'nope'"),
    ({"user": "ghost"}, 422, "unknown user id 'ghost'"),
    ({"history": [], "k": 5}, 422, "history is empty"),
    ({"k": 5}, 422, "exactly one of user"),
    ({"history": ["i1"], "k": 0}, 422, "k must be between 1 and 50"),
    ({"history": ["i1"], "k": 51}, 422, "k must be between 1 and 50"),
    ({"history": ["i1"], "k": "ten"}, 422, "k: Input should be a valid integer"),
    ({"history": ["i1"], "k": 2.5}, 422, "k: Input should be a valid integer"),
    ({"history": "i1,i2"}, 422, "history: Input should be a valid list"),
    ({"history": [{"x": 1}]}, 422, "history.0"),
    ({"history": ["i1"] * 31}, 422, "history has 31 items; at most 30"),
    ({"history": ["i1"], "kk": 3}, 422, "kk: Extra inputs are not permitted"),
    ([1, 2], 422, "body"),
])
def test_bad_recommend_requests_are_4xx_with_a_reason(text_server, body, status, message):
    r = text_server["client"].post("/recommend", json=body)
    assert r.status_code == status, r.text
    assert message in r.json()["detail"]


def test_malformed_and_oversized_bodies(text_server):
    c = text_server["client"]
    r = c.post("/recommend", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "JSON" in r.json()["detail"]
    r = c.post("/recommend", content=b"", headers={"content-type": "application/json"})
    assert r.status_code == 422
    big = json.dumps({"history": ["i1"] * 5000}).encode()
    r = c.post("/recommend", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "over the limit of 20000" in r.json()["detail"]

    def chunks():  # no Content-Length: counted as it arrives
        for i in range(0, len(big), 4096):
            yield big[i:i + 4096]
    r = c.post("/recommend", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    small = json.dumps({"history": ["i1"], "k": 2}).encode()
    r = c.post("/recommend", content=iter([small[:5], small[5:]]), headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    assert c.get("/nope").status_code == 404 and c.get("/recommend").status_code == 405


def test_add_items_while_serving(text_server):
    c, svc = text_server["client"], text_server["service"]
    history = items(svc, 5, 6, 7)
    best = c.post("/recommend", json={"history": history, "k": 1}).json()["items"][0]
    n0 = c.get("/health").json()["items"]
    # others keep asking while items are added: every answer is a 200 from a whole catalogue
    stop, errors = threading.Event(), []

    def ask():
        with httpx.Client(base_url=text_server["url"], timeout=30) as cc:
            while not stop.is_set():
                r = cc.post("/recommend", json={"history": history, "k": 10})
                if r.status_code != 200:
                    errors.append(r.text)
    askers = [threading.Thread(target=ask) for _ in range(3)]
    for t in askers:
        t.start()
    try:
        r = c.post("/items", json={"items": [{"id": "live-twin", "title": best["title"]},
                                             {"id": "live-2", "title": "zzznovel " + best["title"]}]})
        assert r.status_code == 200, r.text
        assert r.json()["added"] == 2 and r.json()["items"] == n0 + 2
    finally:
        stop.set()
        for t in askers:
            t.join()
    assert errors == []
    assert c.get("/health").json()["added_items"] >= 2
    out = c.post("/recommend", json={"history": history, "k": 3}).json()["items"]
    twin = [x for x in out if x["id"] == "live-twin"]
    assert twin and twin[0]["score"] == pytest.approx(best["score"], abs=1e-4)  # same text, same vector
    assert c.post("/recommend", json={"history": ["live-2", "live-twin"], "k": 3}).status_code == 200
    # stored in the run directory: a restarted server has them
    assert RecommenderService.from_run(text_server["run"]).snapshot.index.keys() >= {"live-twin", "live-2"}


@pytest.mark.parametrize("body, status, message", [
    ({"items": [{"id": "i1", "title": "x"}]}, 409, "already in the catalogue: i1"),
    ({"items": [{"id": "d", "title": "x"}, {"id": "d", "title": "y"}]}, 409, "repeated among the new items: d"),
    ({"items": [{"id": "t1"}]}, 422, "lack 'title'"),
    ({"items": [{"title": "x"}]}, 422, "need an id column"),
    ({"items": [{"id": "t2", "title": ""}]}, 422, "no text in title: t2"),
    ({"items": [{"id": "t3", "title": ["a"]}]}, 422, "must be strings or numbers"),
    ({"items": []}, 422, "items: List should have at least 1 item"),
    ({"items": [{"id": f"m{i}", "title": "x"} for i in range(21)]}, 422, "at most 20"),
])
def test_bad_add_items_requests(text_server, body, status, message):
    c = text_server["client"]
    n0 = c.get("/health").json()["items"]
    r = c.post("/items", json=body)
    assert r.status_code == status, r.text
    assert message in r.json()["detail"]
    assert c.get("/health").json()["items"] == n0


def test_id_model_refuses_items_over_http(id_server):
    r = id_server["client"].post("/items", json={"items": [{"id": "x", "title": "y"}]})
    assert r.status_code == 422 and "ID-based model" in r.json()["detail"]
    assert id_server["client"].get("/health").json()["can_add_items"] is False


def test_small_load_test_has_no_errors(id_server):
    svc = id_server["service"]
    bodies = [{"history": items(svc, *range(1 + i, 9 + i)), "k": 10} for i in range(20)]
    bodies += [{"user": u, "k": 10} for u in svc.user_ids[:20]]
    stats = load_test(id_server["url"], bodies, clients=4, seconds=1.5)
    print(f"\nload (in-process server, 4 clients, 1.5 s): {stats}")
    assert stats["errors"] == 0, stats["first_errors"]
    assert stats["ok"] >= 20 and stats["p50_ms"] <= stats["p99_ms"] < 5000


def test_morec_serve_command_in_a_subprocess(tmp_path_factory):
    """`morec serve` as a user starts it: a separate process, a port, Ctrl-C (SIGINT) to stop."""
    run = sf.id_sasrec(tmp_path_factory)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "morec", "serve", str(run), "--port", str(port), "--max-k", "7"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, proc, timeout=60)  # raises with the server's output if it died
        svc_ids = RecommenderService.from_run(run).snapshot.ids
        r = httpx.post(url + "/recommend", json={"history": svc_ids[1:4], "k": 7})
        assert r.status_code == 200 and len(r.json()["items"]) == 7
        assert httpx.post(url + "/recommend", json={"history": svc_ids[1:4], "k": 8}).status_code == 422
    finally:
        proc.send_signal(2)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "serving" in out and "adding items off" in out
