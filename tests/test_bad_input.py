"""The bad-input table: every row is a test through the `morec` command, which must exit with 2
and print one `morec: error: ...` line that names the file, line or item and says what to do.
Nothing is dropped silently: what is repaired or filtered is counted in the log.

| bad input                                  | where it is caught                          |
|--------------------------------------------|---------------------------------------------|
| missing / misnamed column                  | data/formats/table.py (_check_columns)      |
| malformed row (bad time, extra field)      | data/formats/table.py (parse_timestamps...) |
| empty required field (user id)             | data/formats/table.py (require_nonempty)    |
| non-UTF-8 text                             | data/formats/table.py (read_delimited)      |
| empty titles                               | reported by `data prepare` (count + an id)  |
| duplicate item ids                         | data/formats/table.py (check_unique_items)  |
| interactions / sequences with unknown items| reader note + prepare log (kept, counted)   |
| every user filtered out                    | data/prepare.py                             |
| images missing or corrupt                  | data/images.py (image_missing=error|blank)  |
| unknown config key / wrong type / bad value| config.py                                   |
| not a prepared dataset                     | data/dataset.py                             |
| model directory that is not a model        | encoders/text.py (resolve_pretrained, load) |
| encoder name that does not exist           | encoders/__init__.py                        |
"""
from __future__ import annotations

import random
from pathlib import Path

import pytest

from morec.cli import main

USERS, ITEMS, PER_USER = 30, 20, 6


def interactions() -> str:
    rng = random.Random(0)
    rows = [f"u{u},i{rng.randrange(ITEMS)},{t}" for u in range(USERS) for t in range(PER_USER)]
    return "user,item,timestamp\n" + "\n".join(rows) + "\n"


def items() -> str:
    return "item,title\n" + "".join(f"i{i},Title {i}\n" for i in range(ITEMS))


def raw(tmp_path: Path, inter: str | None = None, item_table: str | bytes | None = None) -> Path:
    folder = tmp_path / "raw"
    folder.mkdir(exist_ok=True)
    (folder / "interactions.csv").write_text(interactions() if inter is None else inter, encoding="utf-8")
    table = items() if item_table is None else item_table
    if isinstance(table, bytes):
        (folder / "items.csv").write_bytes(table)
    else:
        (folder / "items.csv").write_text(table, encoding="utf-8")
    return folder


def prepare(capsys, source: Path, out: Path, *extra: str) -> tuple[int, str, str]:
    rc = main(["data", "prepare", str(source), "--out", str(out), *extra])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def error_of(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("morec: error: "), err
    return err


# --- raw data ------------------------------------------------------------------------------------

def _line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if needle in line)


@pytest.mark.parametrize("case", ["missing column", "misnamed column option", "bad timestamp", "empty user",
                                  "non-utf8", "duplicate id"])
def test_bad_raw_files_name_the_file_and_line(tmp_path, capsys, case):
    inter, table, extra = interactions(), items(), []
    if case == "missing column":
        inter = inter.replace("user,item,", "user,movie,", 1)
        want = ["interactions.csv", "no column 'item'", "'movie'", "*_column option"]
    elif case == "misnamed column option":
        extra = ["--option", "user_column=customer_id"]
        want = ["interactions.csv", "no column 'customer_id'", "its columns are 'user', 'item', 'timestamp'"]
    elif case == "bad timestamp":
        lines = inter.splitlines()
        line = next(n for n, row in enumerate(lines, start=1) if row.startswith("u4,"))
        lines[line - 1] = "u4,i1,yesterday"
        inter = "\n".join(lines) + "\n"
        want = ["interactions.csv", f"line {line}", "'yesterday' is not a number", "Fix those lines"]
    elif case == "empty user":
        line = _line_of(inter, "u5,")
        inter = inter.replace("u5,", ",", 1)
        want = ["interactions.csv", f"line {line}", "user field is empty", "fix or remove"]
    elif case == "non-utf8":
        table = ("item,title\ni0,Caf\xe9\n").encode("latin-1") + items().split("\n", 2)[2].encode()
        want = ["items.csv", "line 2", "not valid utf-8", "encoding='...'", "latin-1"]
    else:  # duplicate id
        table = items() + "i3,Title three again\n"
        want = ["items.csv", "item 'i3' appears more than once", f"lines 5, {ITEMS + 2}", "remove or merge"]
    rc, out, err = prepare(capsys, raw(tmp_path, inter, table), tmp_path / "prepared", *extra)
    assert rc == 2 and err.startswith("morec: error: "), (out, err)
    for fragment in want:
        assert fragment in err, (fragment, err)
    assert not (tmp_path / "prepared" / "manifest.json").exists()


def test_unknown_items_are_kept_and_counted(tmp_path, capsys):
    inter = interactions().replace(",i1,", ",ghost,")
    n_ghost = inter.count(",ghost,")
    rc, out, err = prepare(capsys, raw(tmp_path, inter), tmp_path / "prepared")
    assert rc == 0, err
    assert f"{n_ghost} interactions refer to 1 items missing from" in out and "items.csv" in out
    assert "1 interacted items have no content row (e.g. 'ghost')" in out


def test_sequences_referring_to_unknown_items_are_counted(tmp_path, capsys):
    folder = tmp_path / "seq"
    folder.mkdir()
    rng = random.Random(1)
    lines = [f"u{u}\t" + " ".join(f"n{rng.randrange(12)}" for _ in range(7)) for u in range(10)]
    lines[3] += " mystery"
    (folder / "users.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "items.tsv").write_text("".join(f"n{i}\tTitle {i}\n" for i in range(12)), encoding="utf-8")
    rc, out, err = prepare(capsys, folder, tmp_path / "prepared", "--format", "sequences")
    assert rc == 0, err
    assert "1 interactions refer to 1 items missing from" in out and "items.tsv" in out


def test_filters_report_what_they_removed_and_all_filtered_is_an_error(tmp_path, capsys):
    rc, out, err = prepare(capsys, raw(tmp_path), tmp_path / "ok", "--prepare.min_user_interactions=6")
    assert rc == 0, err
    assert "dedup: removed" in out and "short users: removed" in out and "(users with fewer than 6 interactions)" in out
    rc, out, err = prepare(capsys, raw(tmp_path), tmp_path / "none", "--prepare.min_user_interactions=50")
    assert rc == 2
    assert "short users: removed" in out and f"{USERS} users" in out  # the count that emptied it is logged
    assert "every user was filtered out" in err and "min_user_interactions=50" in err and "lower these thresholds" in err


def test_empty_titles_are_reported(tmp_path, capsys):
    table = items().replace("Title 3\n", "\n").replace("Title 7\n", "\n")
    rc, out, err = prepare(capsys, raw(tmp_path, item_table=table), tmp_path / "prepared")
    assert rc == 0, err
    assert "empty title" in out and "'i3'" in out


def test_a_row_with_an_extra_field_names_the_field_count(tmp_path, capsys):
    inter = interactions()
    line = _line_of(inter, "u3,")
    inter = inter.replace("u3,", "u3,extra,", 1)
    rc, out, err = prepare(capsys, raw(tmp_path, inter), tmp_path / "prepared")
    assert rc == 2 and f"line {line}" in err and "fields" in err


# --- images --------------------------------------------------------------------------------------

def test_missing_or_corrupt_images_are_named_with_what_to_do(tmp_path, capsys):
    from morec.data.dataset import PreparedDataset
    from morec.data.formats import DataFormatError
    from morec.data.images import build_image_store

    synth = tmp_path / "synth"
    assert main(["data", "synth", str(synth), "--synth.n_users=40", "--synth.n_items=30", "--synth.image_size=8",
                 "--synth.n_new_items=0"]) == 0
    capsys.readouterr()
    images = sorted(p for p in synth.rglob("*.png"))
    images[0].unlink()
    images[1].write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    rc, _, message = prepare(capsys, synth, tmp_path / "prepared")  # found at prepare, named with what to do
    assert rc == 2 and "2 of" in message and "missing or unreadable" in message
    assert images[0].name in message and images[1].name in message and "file not found" in message
    assert "--prepare.image_missing=blank" in message and "model.encoder" not in message
    assert not (tmp_path / "prepared").exists() and "preparing" not in message  # no pointer to a removed folder
    rc, out, _ = prepare(capsys, synth, tmp_path / "prepared", "--prepare.image_missing=blank")
    assert rc == 0 and str(tmp_path / "prepared" / "image_problems.json") in out
    ds = PreparedDataset(tmp_path / "prepared")
    assert ds.manifest["image_problems"] == 2 and (tmp_path / "prepared" / "image_problems.json").is_file()
    images[0].write_bytes(images[2].read_bytes())  # the store decides anew only for what prepare did not list
    images[2].unlink()
    with pytest.raises(DataFormatError) as err:
        build_image_store(ds, size=8, missing="error", log=lambda s: None)
    assert "1 of" in str(err.value) and images[2].name in str(err.value)
    assert "model.encoder.vision.image_missing=blank" in str(err.value)
    logged = []
    store = build_image_store(ds, size=8, missing="blank", log=logged.append)
    assert len(store.problems) == 2 and any("1 of" in line and "blank" in line for line in logged)


# --- config and training input -------------------------------------------------------------------

@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    out = tmp_path_factory.mktemp("bad") / "prepared"
    assert main(["data", "prepare", str(raw(tmp_path_factory.mktemp("raw"))), "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("override, fragments", [
    ("--train.lrr=1", ["unknown config key 'train.lrr'", "known keys here", "lr"]),
    ("--model.encoder.kind_=id", ["unknown config key 'model.encoder.kind_'"]),
    ("--train.lr=fast", ["train.lr: expected a number, got 'fast'"]),
    ("--train.epochs=2.5", ["train.epochs: expected an integer, got 2.5"]),
    ("--train.progress=maybe", ["train.progress: expected true or false"]),
    ("--train.lr=-0.001", ["train.lr must be > 0, got -0.001"]),
    ("--model.max_len=0", ["model.max_len must be > 0"]),
    ("--model.encoder.text.max_tokens=0", ["model.encoder.text.max_tokens must be > 0"]),
    ("--model.dropout=1.5", ["model.dropout must be in [0, 1)"]),
    ("--train.accumulate=0", ["train.accumulate must be >= 1"]),
    ("--train.precision=fp8", ["train.precision must be fp32, bf16 or fp16, not 'fp8'"]),
    ("--train.checkpoint_every_steps=-1", ["train.checkpoint_every_steps must be >= 0"]),
    ("--eval.select_metric=ndcg@20", ["eval.select_metric 'ndcg@20' must be hr@K or ndcg@K with K in eval.ks"]),
    ("--model.encoder.kind=nope", ["unknown item encoder 'nope'", "known: id, llm, multimodal, text, vision"]),
])
def test_bad_config_values(prepared, tmp_path, capsys, override, fragments):
    err = error_of(capsys, ["train", f"--data={prepared}", f"--out={tmp_path / 'run'}", "--train.epochs=1",
                            "--train.progress=false", override])
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def test_bad_config_file(prepared, tmp_path, capsys):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"data: {prepared}\ntrain:\n  lr: -1\n", encoding="utf-8")
    assert "train.lr must be > 0" in error_of(capsys, ["train", "--config", str(cfg)])
    cfg.write_text("- just\n- a list\n", encoding="utf-8")
    assert "expected a YAML mapping" in error_of(capsys, ["train", "--config", str(cfg)])


def test_not_a_prepared_dataset(tmp_path, capsys):
    err = error_of(capsys, ["train", f"--data={tmp_path}", "--train.epochs=1"])
    assert str(tmp_path) in err and "not a prepared dataset" in err and "morec data prepare" in err


def test_model_directory_that_is_not_a_model(prepared, tmp_path, capsys):
    pytest.importorskip("transformers")
    base = ["train", f"--data={prepared}", f"--out={tmp_path / 'run'}", "--train.epochs=1", "--model.encoder.kind=text"]
    empty = tmp_path / "empty"
    empty.mkdir()
    err = error_of(capsys, base + [f"--model.encoder.pretrained={empty}"])
    assert str(empty) in err and "not a Hugging Face model (no config.json" in err
    err = error_of(capsys, base + [f"--model.encoder.pretrained={tmp_path / 'nowhere'}"])
    assert "not found" in err and "config.json" in err
    weightless = tmp_path / "weightless"
    weightless.mkdir()
    (weightless / "config.json").write_text('{"model_type": "bert", "hidden_size": 32, "num_attention_heads": 2, '
                                            '"num_hidden_layers": 1, "intermediate_size": 64}')
    err = error_of(capsys, base + [f"--model.encoder.pretrained={weightless}"])
    assert "model.encoder.pretrained: could not load" in err and str(weightless) in err


def test_model_directory_with_a_broken_config(prepared, tmp_path, capsys):
    pytest.importorskip("transformers")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "bert", "hidden_size": "wide"}')
    err = error_of(capsys, ["train", f"--data={prepared}", f"--out={tmp_path / 'run'}", "--train.epochs=1",
                            "--model.encoder.kind=text", f"--model.encoder.pretrained={broken}"])
    assert "model.encoder.pretrained" in err


def test_text_fields_that_the_dataset_lacks(prepared, tmp_path, capsys):
    pytest.importorskip("transformers")
    from morec.encoders.text import resolve_pretrained  # noqa: F401  (the text encoder exists)

    err = error_of(capsys, ["train", f"--data={prepared}", f"--out={tmp_path / 'run'}", "--train.epochs=1",
                            "--model.encoder.kind=text", "--model.encoder.pretrained=minilm",
                            "--model.encoder.text.fields=abstract"])
    assert "abstract not in" in err and "its text columns: title" in err
