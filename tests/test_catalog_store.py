"""The run's catalogue is a transactional store: concurrent `morec catalog add` processes and a running
`morec serve` receiving POST /items never lose an addition, and a server picks up what others added.

MOREC_CATALOG_TRIALS=20 MOREC_CATALOG_PROCS=3 repeats the process test with three writer processes (the robustness
work ran it that way); CI runs one trial with two.
"""
import json
import os
import socket
import subprocess
import sys
import threading

import pytest

pytest.importorskip("transformers")
pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
import serving_fixtures as sf  # noqa: E402

from morec.catalog import CATALOG_FILE, DuplicateItemsError, read_added  # noqa: E402
from morec.cli import main  # noqa: E402
from morec.recommend import RecommenderService  # noqa: E402
from morec.serve import wait_until_healthy  # noqa: E402

TRIALS = int(os.environ.get("MOREC_CATALOG_TRIALS", "1"))


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    return sf.text_sasrec(tmp_path_factory)


def test_two_services_on_one_run_keep_each_others_items(text_run, tmp_path):
    run = sf.fresh_copy(text_run, tmp_path / "run")
    a, b = RecommenderService.from_run(run), RecommenderService.from_run(run)
    a.add_items([{"id": "from-a", "title": "zzznovel"}])
    assert "from-a" in b.snapshot.index  # b reloads the changed file instead of keeping its old view
    b.add_items([{"id": "from-b", "title": "zzznovel again"}])
    assert {"from-a", "from-b"} <= a.snapshot.index.keys()
    assert read_added(run).ids == ["from-a", "from-b"]
    # an id another process added meanwhile is refused by the transaction, not silently doubled
    c = RecommenderService.from_run(run)
    a.add_items([{"id": "late", "title": "zzznovel"}])
    # c has not looked at the file since: its own check passes, the transaction's does not
    with pytest.raises(DuplicateItemsError, match="already in the catalogue: late"):
        c.add_items([{"id": "late", "title": "other"}])
    assert read_added(run).ids == ["from-a", "from-b", "late"]
    # the reloaded vectors are the ones encoded: same text -> same score as in the service that added it
    hist = a.snapshot.ids[1:4]
    score = lambda svc: {x["id"]: x["score"] for x in svc.recommend(history=hist, k=200)["items"]}  # noqa: E731
    assert score(b)["from-a"] == pytest.approx(score(a)["from-a"], abs=1e-5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("trial", range(TRIALS))
def test_concurrent_catalog_add_processes_and_a_serving_server_lose_nothing(text_run, tmp_path, trial):
    run = sf.fresh_copy(text_run, tmp_path / "run")
    n_cli, per_cli, n_posts = int(os.environ.get("MOREC_CATALOG_PROCS", "2")), 4, 3
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "morec", "serve", str(run), "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    url = f"http://127.0.0.1:{port}"
    expected: set[str] = set()
    try:
        wait_until_healthy(url, server, timeout=120)
        files = []
        for p in range(n_cli):
            ids = [f"cli{p}-{j}" for j in range(per_cli)]
            expected |= set(ids)
            f = tmp_path / f"new{p}.csv"
            f.write_text("id,title\n" + "".join(f"{i},zzznovel {i}\n" for i in ids))
            files.append(f)
        post_ids = [f"http{j}" for j in range(n_posts)]
        expected |= set(post_ids)
        procs = [subprocess.Popen([sys.executable, "-m", "morec", "catalog", "add", str(run), "--items", str(f)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True) for f in files]
        answers = []

        def post_all():
            with httpx.Client(base_url=url, timeout=120) as c:
                for i in post_ids:
                    answers.append(c.post("/items", json={"items": [{"id": i, "title": f"zzznovel {i}"}]}))
        poster = threading.Thread(target=post_all)
        poster.start()
        outs = [p.communicate(timeout=300) for p in procs]
        poster.join(timeout=300)
        for p, (out, err) in zip(procs, outs):
            assert p.returncode == 0, err
            assert json.loads(out.strip().splitlines()[-1])["added"] == per_cli
        assert [r.status_code for r in answers] == [200] * n_posts, [r.text for r in answers]
        # the server serves everything, its own additions and the processes' (reload on change)
        health = httpx.get(url + "/health").json()
        assert health["added_items"] == len(expected)
        r = httpx.post(url + "/recommend", json={"history": sorted(expected)[:5], "k": 3})
        assert r.status_code == 200, r.text
    finally:
        server.send_signal(2)
        server.communicate(timeout=60)
    # one consistent file holding every item exactly once
    added = read_added(run)
    assert sorted(added.ids) == sorted(expected) and len(added.ids) == len(set(added.ids))
    assert added.vectors.shape[0] == len(expected)
    assert not list(run.glob(f".{CATALOG_FILE}.*.tmp"))  # no temporary file left behind
    assert RecommenderService.from_run(run).n_items == 120 + len(expected)


@pytest.mark.parametrize("content, line", [("id,title\nn5,ok\nn6,zorvel,extra,fields\n", 3),
                                           ("id,title\nn6,zorvel,extra,fields\nn7,ok\n", 2),
                                           ("id,title,genre\nn5,ok,x\nn6\nn7,b,c\n", 3)])
def test_catalog_add_refuses_ragged_rows_naming_the_line(text_run, tmp_path, capsys, content, line):
    run = sf.fresh_copy(text_run, tmp_path / "run")
    f = tmp_path / "new.csv"
    f.write_text(content)
    assert main(["catalog", "add", str(run), "--items", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("morec: error: ") and f"new.csv, line {line}:" in err and " where the file's header has" in err, err
    assert not (run / CATALOG_FILE).exists()  # nothing half-added
