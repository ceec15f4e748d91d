"""Inputs that cannot mislead: every case an outside probe found silently wrong or ending in a traceback, run
through the `morec` command. Each asserts the one-line `morec: error:` message, exit status 2 and that nothing
partial was left (no output folder, no staging folder), or, where the input is legitimate, the exact result.

| case                                              | caught in                                   |
|---------------------------------------------------|---------------------------------------------|
| repeated YAML key (config, sweep, tune file)      | yamlfile.StrictLoader                       |
| YAML alias bomb / recursive alias                 | yamlfile (expansion counted before building)|
| a huge value quoted in an error                   | yamlfile.shown                              |
| repeated column name (CSV, Parquet, catalog add)  | data/formats/guards.refuse_repeated_columns |
| header-only table, truncated Parquet, field > 128 KB | data/formats/table.py, guards            |
| ids differing only by spaces / Unicode form       | data/ids.py (prepare.id_variants)           |
| times >= 2**53 with a fraction, mixed UTC offsets | data/formats/table.py, guards.to_dates      |

Runs, disk-full and server cases are in test_bad_inputs_runs.py.
"""
from __future__ import annotations

import time
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from morec.cli import main
from morec.data.dataset import PreparedDataset

USERS, PER_USER = 12, 6


def one_line_error(capsys, argv: list[str]) -> str:
    """Runs the command; asserts exit status 2 and exactly one short stderr line, the error; returns it."""
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("morec: error: "), err
    assert "Traceback" not in err and len(lines[0]) < 600, err
    return lines[0]


def nothing_left(out: Path) -> None:
    assert not out.exists(), sorted(out.iterdir())
    assert not list(out.parent.glob(f".{out.name}.*")), sorted(out.parent.iterdir())


def table(rows: list[str], header: str = "user,item,timestamp") -> str:
    return header + "\n" + "\n".join(rows) + "\n"


def plain_rows() -> list[str]:
    return [f"u{u},i{(u + t) % 9},{t}" for u in range(USERS) for t in range(PER_USER)]


def raw_folder(tmp_path: Path, text: str, name: str = "interactions.csv") -> Path:
    folder = tmp_path / "raw"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    return folder


def prepare_error(capsys, tmp_path: Path, folder: Path, *extra: str) -> str:
    out = tmp_path / "prepared"
    message = one_line_error(capsys, ["data", "prepare", folder, "--out", out, *extra])
    nothing_left(out)
    return message


# --- YAML: repeated keys, alias bombs, long values ---------------------------------------------

def test_a_repeated_config_key_names_the_key_and_both_lines(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: x\ntrain:\n  lr: 0.5\n  epochs: 1\nmodel: {dim: 8}\ntrain:\n  seed: 3\n")
    message = one_line_error(capsys, ["train", "--config", cfg, "--out", tmp_path / "run"])
    assert f"{cfg}, line 6: key 'train' appears twice" in message and "first at line 2" in message
    nothing_left(tmp_path / "run")


def test_repeated_keys_in_sweep_and_tune_files_and_their_base(tmp_path, capsys):
    base = tmp_path / "base.yaml"
    base.write_text("data: x\nmodel:\n  dim: 8\n  dim: 16\n")
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(f"base: {{config: {base}}}\ngrid: {{train.lr: [0.1]}}\nout: {tmp_path / 's'}\n")
    assert "line 4: key 'dim' appears twice (first at line 3)" in one_line_error(capsys, ["sweep", sweep]).replace(
        " in one mapping", "")
    sweep.write_text(f"base: {{data: x}}\ngrid: {{train.lr: [0.1]}}\ngrid: {{train.lr: [0.2]}}\nout: {tmp_path / 's'}\n")
    assert "line 3: key 'grid' appears twice" in one_line_error(capsys, ["sweep", sweep])
    tune = tmp_path / "tune.yaml"
    tune.write_text(f"base: {{data: x}}\nspace:\n  train.lr: {{uniform: [0.1, 0.2]}}\n  train.lr: {{uniform: [0.3, 0.4]}}\n"
                    f"out: {tmp_path / 't'}\n")
    assert "line 4: key 'train.lr' appears twice" in one_line_error(capsys, ["tune", tune])
    assert not (tmp_path / "s").exists() and not (tmp_path / "t").exists()


BOMB = "".join(f"{chr(97 + n)}: &{chr(97 + n)} [" + ",".join([f"*{chr(96 + n)}" if n else '"lol"'] * 9) + "]\n"
               for n in range(9))  # 9 ** 9 values from about 500 bytes


@pytest.mark.parametrize("where", ["config", "sweep", "tune"])
def test_an_alias_bomb_is_refused_at_once_with_a_short_message(tmp_path, capsys, where):
    path = tmp_path / f"{where}.yaml"
    if where == "config":
        path.write_text(BOMB)
        argv = ["train", "--config", path]
    else:
        path.write_text(f"{BOMB}out: {tmp_path / 'out'}\n")
        argv = [where, path]
    start = time.perf_counter()
    message = one_line_error(capsys, argv)
    assert time.perf_counter() - start < 10
    assert "aliases expand to more than 100,000 values" in message and str(path) in message
    assert not (tmp_path / "out").exists()


def test_a_recursive_alias_and_a_long_value_print_one_short_line(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: x\nmodel: &m [1, *m]\n")
    assert "recursive alias" in one_line_error(capsys, ["train", "--config", cfg])
    # about 60,000 values (under the bound) where a string belongs: the error quotes the start, not the whole
    nested = ['&a [' + ",".join(['"lol"'] * 9) + ']'] + [f"&{b} [" + ",".join([f"*{a}"] * 9) + "]" for a, b in
                                                         zip("abc", "bcd")]
    cfg.write_text("data: x\nout: [" + ", ".join(nested + ["*d"] * 8) + "]\n")
    message = one_line_error(capsys, ["train", "--config", cfg])
    assert "out: expected a string, got [[" in message and "..." in message and len(message) < 300


# --- tables: repeated columns, header only, truncated Parquet, oversized fields ----------------

@pytest.mark.parametrize("header, column", [("user,item,item,timestamp", "item"), ("user,user,item,timestamp", "user")])
def test_a_repeated_column_name_is_an_error_naming_file_and_column(tmp_path, capsys, header, column):
    rows = [f"u{u},i{t},i{t + 1},{t}" for u in range(USERS) for t in range(PER_USER)]
    folder = raw_folder(tmp_path, table(rows, header))
    message = prepare_error(capsys, tmp_path, folder)
    assert f"{folder / 'interactions.csv'}: column '{column}' appears twice in the header" in message


def test_a_repeated_parquet_column_is_an_error(tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "raw"
    folder.mkdir()
    pq.write_table(pa.table([pa.array(["u1"] * 5), pa.array(["a"] * 5), pa.array(["b"] * 5), pa.array(range(5))],
                            names=["user", "item", "item", "timestamp"]), folder / "interactions.parquet")
    assert "column 'item' appears twice" in prepare_error(capsys, tmp_path, folder)


def test_a_header_only_table_is_an_error(tmp_path, capsys):
    folder = raw_folder(tmp_path, "user,item,timestamp\n")
    message = prepare_error(capsys, tmp_path, folder)
    assert "interactions.csv: no interactions (the table has a header but no rows)" in message


def test_a_truncated_parquet_file_is_an_error(tmp_path, capsys):
    import pandas as pd

    folder = tmp_path / "raw"
    folder.mkdir()
    path = folder / "interactions.parquet"
    pd.DataFrame({"user": ["u1"] * 50, "item": ["a"] * 50, "timestamp": range(50)}).to_parquet(path)
    path.write_bytes(path.read_bytes()[:200])
    message = prepare_error(capsys, tmp_path, folder)
    assert f"{path}: not a readable Parquet file" in message and "truncated" in message


def test_a_ragged_row_with_a_field_over_128_kb_names_its_line(tmp_path, capsys):
    rows = plain_rows()
    rows.insert(2, "u1," + "x" * 140_000 + ",3")  # file line 4: over the csv module's 128 KB field limit
    rows.insert(6, "u2,i3")  # file line 8: a short row, which only the csv module's count finds
    message = prepare_error(capsys, tmp_path, raw_folder(tmp_path, table(rows)))
    assert "interactions.csv, line 8: 2 fields where the file's header has 3" in message


# --- ids taken exactly as written ------------------------------------------------------------

def variant_rows() -> list[str]:
    rows = plain_rows()
    decomposed = unicodedata.normalize("NFD", "josé")
    rows += [f" u1,i{t},{10 + t}" for t in range(PER_USER)]  # ' u1' beside 'u1'
    rows += [f"josé,i{t},{t}" for t in range(PER_USER)] + [f"{decomposed},i{t},{t}" for t in range(PER_USER)]
    return rows


def test_ids_differing_only_by_spaces_or_unicode_form_are_refused_with_examples(tmp_path, capsys):
    message = prepare_error(capsys, tmp_path, raw_folder(tmp_path, table(variant_rows())))
    assert "2 user ids written in more than one way" in message and "' u1' and 'u1'" in message
    assert "--prepare.id_variants=merge" in message


def test_merged_variants_are_one_user_and_the_log_says_so(tmp_path, capsys):
    out = tmp_path / "prepared"
    assert main(["data", "prepare", str(raw_folder(tmp_path, table(variant_rows()))), "--out", str(out),
                 "--prepare.id_variants=merge"]) == 0
    assert "merged 2 user ids written in more than one way" in capsys.readouterr().out
    import pandas as pd

    users = pd.read_parquet(out / "users.parquet")["user"].tolist()
    assert len(users) == USERS + 1 and "u1" in users and " u1" not in users and "josé" in users


# --- times: exact or refused, never silently reordered -----------------------------------------

def sequences(out: Path) -> dict[str, list[str]]:
    import pandas as pd

    ds = PreparedDataset(out)
    users = pd.read_parquet(out / "users.parquet")["user"].tolist()
    items = pd.read_parquet(out / "items.parquet")["item"].tolist()
    return {u: [items[i - 1] for i in ds.items_flat[ds.offsets[n]:ds.offsets[n + 1]]] for n, u in enumerate(users)}


def prepared_in_order(tmp_path, rows: list[str]) -> dict[str, list[str]]:
    out = tmp_path / "prepared"
    assert main(["data", "prepare", str(raw_folder(tmp_path, table(rows))), "--out", str(out)]) == 0
    return sequences(out)


def test_times_beyond_2_53_written_as_floats_keep_their_exact_order(tmp_path):
    big = 2**53
    # each user's file order is the reverse of time order; float64 would round the pairs onto one value
    rows = [f"u{u},i{t},{big + 2 * (PER_USER - t) + 1}.0" for u in range(USERS) for t in range(PER_USER)]
    seqs = prepared_in_order(tmp_path, rows)
    assert all(seq == [f"i{t}" for t in reversed(range(PER_USER))] for seq in seqs.values())


def test_a_fraction_at_or_beyond_2_53_is_refused(tmp_path, capsys):
    rows = [f"u{u},i{t},{2**53 + t}.5" for u in range(USERS) for t in range(PER_USER)]
    message = prepare_error(capsys, tmp_path, raw_folder(tmp_path, table(rows)))
    assert f"line 2: timestamp '{2**53}.5' has a fraction" in message


def test_mixed_utc_offsets_are_converted_to_utc(tmp_path):
    # in UTC: i0 01:00, i1 01:30, i2 02:00, i3 02:30, i4 03:00, i5 03:30, written with other offsets, file order shuffled
    written = {"i0": "2020-01-01T10:00:00+09:00", "i1": "2020-01-01T00:30:00-01:00", "i2": "2020-01-01T02:00:00Z",
               "i3": "2020-01-01T03:30:00+01:00", "i4": "2019-12-31T22:00:00-05:00", "i5": "2020-01-01T03:30:00Z"}
    order = ["i3", "i0", "i5", "i2", "i4", "i1"]
    seqs = prepared_in_order(tmp_path, [f"u{u},{i},{written[i]}" for u in range(USERS) for i in order])
    assert all(seq == [f"i{t}" for t in range(PER_USER)] for seq in seqs.values())


def test_times_with_and_without_an_offset_are_refused(tmp_path, capsys):
    rows = [f"u{u},i{t},2020-01-01T0{t}:00:00{'Z' if t % 2 else ''}" for u in range(USERS) for t in range(PER_USER)]
    message = prepare_error(capsys, tmp_path, raw_folder(tmp_path, table(rows)))
    assert "line 2: timestamp '2020-01-01T00:00:00' has no UTC offset while line 3" in message


def test_float_times_below_2_53_are_unchanged(tmp_path):
    rows = [f"u{u},i{t},{1.5 + t}" for u in range(USERS) for t in range(PER_USER)]
    seqs = prepared_in_order(tmp_path, rows)
    assert all(seq == [f"i{t}" for t in range(PER_USER)] for seq in seqs.values())
    times = np.load(tmp_path / "prepared" / "seq_times.npy")
    assert times.dtype == np.float64 and times[0] == 1.5
