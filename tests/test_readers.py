"""Every reader on a few hand-written lines in its real layout, and its error messages."""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from morec.data.formats import DataFormatError, RawDataset
from morec.data.formats.registry import READERS, detect_format, read_raw
from morec.data.formats.table import read_table

FIXTURES = Path(__file__).parent / "fixtures"


def check_canonical(data: RawDataset) -> None:
    assert list(data.interactions.columns) in (["user", "item", "timestamp"], ["user", "item", "timestamp", "timed"])
    assert pd.api.types.is_string_dtype(data.interactions["user"])
    assert pd.api.types.is_string_dtype(data.interactions["item"])
    assert data.interactions["timestamp"].dtype.kind in "if"
    assert data.items.columns[0] == "item"
    assert data.items["item"].is_unique
    for column in data.items.columns:
        assert pd.api.types.is_string_dtype(data.items[column]), column


def table(frame: pd.DataFrame) -> dict[str, list]:
    return {column: frame[column].tolist() for column in frame.columns}


def copy_fixture(name: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(FIXTURES / name, tmp_path / name))


# --------------------------------------------------------------------------- canonical output


def test_movielens_100k():
    data = read_raw(FIXTURES / "movielens", format="movielens")
    check_canonical(data)
    assert table(data.interactions) == {
        "user": ["196", "186", "22", "196"],
        "item": ["242", "302", "377", "377"],
        "timestamp": [881250949, 891717742, 878887116, 881251000],
    }
    assert table(data.items) == {
        "item": ["242", "302", "377", "267"],
        "title": ["Kolya", "L.A. Confidential", "Misérables, Les", "unknown"],  # latin-1 decoded
        "year": ["1996", "1997", "1995", ""],
        "genres": ["Comedy", "Crime Film-Noir Mystery Thriller", "Drama Musical", "unknown"],
    }
    assert data.notes == [] and data.name == "movielens"


def test_movielens_1m():
    data = read_raw(FIXTURES / "movielens-1m")
    check_canonical(data)
    assert table(data.interactions) == {
        "user": ["1", "1", "2"], "item": ["1193", "661", "1193"],
        "timestamp": [978300760, 978302109, 978298413],
    }
    assert table(data.items) == {
        "item": ["1193", "661", "3"],
        "title": ["One Flew Over the Cuckoo's Nest", "James and the Giant Peach", "Misérables, Les"],
        "year": ["1975", "1996", "1995"],
        "genres": ["Drama", "Animation Children's Musical", "Drama Musical"],
    }


def test_recbole():
    data = read_raw(FIXTURES / "recbole", format="recbole")
    check_canonical(data)
    assert table(data.interactions) == {
        "user": ["196", "186", "196"], "item": ["242", "302", "999"],
        "timestamp": [881250949, 891717742, 881251000],
    }
    assert data.interactions["timestamp"].dtype == "int64"  # float-typed field, integral values
    assert table(data.items) == {
        "item": ["242", "302", "543"],
        "title": ["Kolya", "L.A. Confidential", "Misérables, Les"],
        "year": ["1996", "1997", "1995"],
        "genres": ["Comedy", "Crime Film-Noir Mystery Thriller", "Drama Musical"],
    }
    # item 999 has no row in mini.item: kept, and said so
    assert len(data.notes) == 1 and "1 interactions" in data.notes[0] and "mini.item" in data.notes[0]


def test_recbole_without_timestamp_uses_file_order_and_skips_float_fields(tmp_path):
    (tmp_path / "d.inter").write_text("user_id:token\titem_id:token\nb\tx\na\ty\nb\ty\n")
    (tmp_path / "d.item").write_text("item_id:token\ttitle:token_seq\tprice:float\nx\tThe X\t1.5\ny\tThe Y\t2\n")
    data = read_raw(tmp_path)
    assert table(data.interactions) == {"user": ["b", "a", "b"], "item": ["x", "y", "y"], "timestamp": [0, 1, 2]}
    assert table(data.items) == {"item": ["x", "y"], "title": ["The X", "The Y"]}
    assert any("file order" in note for note in data.notes)


def test_sequences():
    data = read_raw(FIXTURES / "sequences", format="sequences")
    check_canonical(data)
    assert table(data.interactions) == {
        "user": ["u1", "u1", "u1", "u2", "u3", "u3"],
        "item": ["n3", "n1", "n2", "n2", "n1", "n3"],
        "timestamp": [0, 1, 2, 0, 0, 1],
    }
    assert table(data.items) == {
        "item": ["n1", "n2", "n3"],
        "title": ["Title one", 'The "second" title', "Título três"],  # quotes are literal text
        "abstract": ["Abstract one", "", "Abstract three"],
    }


def test_sequences_sniffs_files_by_content_and_continues_positions(tmp_path):
    (tmp_path / "a.tsv").write_text("7\tTitle seven\n8\tTitle eight\n")
    (tmp_path / "b.txt").write_text("u1\t8 7\nu1\t7\n")
    data = read_raw(tmp_path, format="sequences", image_pattern="covers/{item}.jpg")
    assert table(data.interactions) == {"user": ["u1"] * 3, "item": ["8", "7", "7"], "timestamp": [0, 1, 2]}
    assert table(data.items) == {"item": ["7", "8"], "title": ["Title seven", "Title eight"],
                                 "image": ["covers/7.jpg", "covers/8.jpg"]}


def test_table_native_layout():
    data = read_raw(FIXTURES / "table")
    check_canonical(data)
    assert table(data.interactions) == {"user": ["u1", "u1", "u2"], "item": ["i1", "i2", "i1"],
                                        "timestamp": [10, 20, 15]}
    # price is numeric, so not text; the image column is recognised by its name
    assert table(data.items) == {"item": ["i1", "i2"], "title": ["Red shoes, size 9", "Blue hat"],
                                 "image": ["images/i1.png", "images/i2.png"]}
    assert data.root == FIXTURES / "table"


def test_table_column_mapping_dates_parquet_and_no_item_table(tmp_path):
    pd.DataFrame({
        "customer_id": ["c1", "c2", "c1"], "article_id": ["0108775015", "0108775044", "0108775044"],
        "t_dat": ["2018-09-20", "2018-09-21", "2018-09-22"], "price": [0.05, 0.03, 0.03],
    }).to_parquet(tmp_path / "transactions.parquet")
    data = read_raw(tmp_path / "transactions.parquet", user_column="customer_id",
                    item_column="article_id", time_column="t_dat")
    check_canonical(data)
    assert table(data.interactions) == {
        "user": ["c1", "c2", "c1"], "item": ["0108775015", "0108775044", "0108775044"],  # zeros kept
        "timestamp": [1537401600, 1537488000, 1537574400],
    }
    assert table(data.items) == {"item": ["0108775015", "0108775044"]}
    assert "no item table" in data.notes[0]


def test_table_without_time_column_uses_file_order(tmp_path):
    (tmp_path / "interactions.tsv").write_text("who\twhat\nu\tb\nu\ta\n")
    (tmp_path / "items.tsv").write_text("id\tname\tcode\na\tAlpha\t1\nb\tBeta\t2\n")
    data = read_raw(tmp_path, user_column="who", item_column="what", time_column=None,
                    item_id_column="id", text_columns=["name", "code"])
    assert table(data.interactions) == {"user": ["u", "u"], "item": ["b", "a"], "timestamp": [0, 1]}
    assert table(data.items) == {"item": ["a", "b"], "name": ["Alpha", "Beta"], "code": ["1", "2"]}


def test_mind_reads_all_splits():
    data = read_raw(FIXTURES / "mind", format="mind")
    check_canonical(data)
    t1, t2, t3, t4 = 1573813352, 1573815600, 1573765200, 1573891200  # the four behavior times (UTC)
    assert table(data.interactions) == {
        # U1's history once (untimed, ordered just before its earliest impression); then the clicks (label 1)
        "user": ["U1", "U1", "U1", "U1", "U2", "U1"],
        "item": ["N1", "N2", "N3", "N4", "N2", "N5"],
        "timestamp": [t1 - 2, t1 - 1, t1, t2, t3, t4],
        "timed": [False, False, True, True, True, True],
    }
    # N1 is listed in both splits; a quoted title stays literal
    assert table(data.items) == {
        "item": ["N1", "N2", "N3", "N4", "N5"],
        "title": ["Title one", '"Quoted" title two', "Title three", "Title four", "Title five"],
    }
    assert len(data.notes) == 3 and "2 impressions repeat a click history" in data.notes[2]


def test_mind_optional_text_and_single_split(tmp_path):
    split = FIXTURES / "mind" / "MINDsmall_dev"
    data = read_raw(split, format="mind", text_columns=["title", "abstract", "category"])
    assert table(data.items) == {"item": ["N1", "N5"], "title": ["Title one", "Title five"],
                                 "abstract": ["Abstract one", "Abstract five"],
                                 "category": ["news", "lifestyle"]}
    assert table(data.interactions)["item"] == ["N1", "N2", "N5"]


# --------------------------------------------------------------------------- detection


@pytest.mark.parametrize("folder, expected", [
    ("movielens", "movielens"), ("movielens-1m", "movielens"), ("recbole", "recbole"),
    ("sequences", "sequences"), ("table", "table"), ("mind", "mind"),
    ("mind/MINDsmall_train", "mind"), ("recbole/mini.inter", "recbole"),
    ("table/interactions.csv", "table"),
])
def test_detect_format(folder, expected):
    assert detect_format(FIXTURES / folder) == expected


def test_detect_format_explains_unknown_folder(tmp_path):
    (tmp_path / "notes.md").write_text("hello")
    with pytest.raises(DataFormatError, match=r"cannot tell the format \(found: notes.md\).*format="):
        detect_format(tmp_path)


def test_registry_lists_every_reader_and_rejects_unknown_names_and_options():
    assert set(READERS) == {"movielens", "recbole", "sequences", "table", "mind", "hm", "lmdb", "pixelrec", "ninerec", "microlens"}
    with pytest.raises(DataFormatError, match="unknown format 'csv'; known formats: movielens"):
        read_raw(FIXTURES / "table", format="csv")
    with pytest.raises(DataFormatError, match="no option user_col; its options are: .*user_column"):
        read_raw(FIXTURES / "table", user_col="user")


# --------------------------------------------------------------------------- errors for people


def test_missing_file_is_named(tmp_path):
    folder = copy_fixture("movielens", tmp_path)
    (folder / "u.item").unlink()
    with pytest.raises(DataFormatError, match=r"u\.item: file not found\. MovieLens-100K needs u\.item"):
        read_raw(folder)


def test_wrong_field_count_names_file_and_line(tmp_path):
    folder = copy_fixture("movielens", tmp_path)
    with open(folder / "u.data", "a") as handle:
        handle.write("1\t2\t3\t4\t5\n")
    with pytest.raises(DataFormatError, match=r"u\.data, line 5: 5 fields where the file's first line has 4"):
        read_raw(folder)


def test_non_numeric_timestamp_names_line(tmp_path):
    folder = copy_fixture("recbole", tmp_path)
    text = (folder / "mini.inter").read_text().replace("891717742", "yesterday")
    (folder / "mini.inter").write_text(text)
    with pytest.raises(DataFormatError, match=r"mini\.inter, line 3: timestamp 'yesterday' is not a number"):
        read_raw(folder)


def test_bad_recbole_header(tmp_path):
    folder = copy_fixture("recbole", tmp_path)
    text = (folder / "mini.item").read_text().replace("class:token_seq", "class")
    (folder / "mini.item").write_text(text)
    with pytest.raises(DataFormatError, match=r"mini\.item, line 1: column header 'class' is not name:type"):
        read_raw(folder)


def test_non_utf8_text_names_line_and_suggests_encoding(tmp_path):
    folder = copy_fixture("sequences", tmp_path)
    (folder / "items.tsv").write_bytes((folder / "items.tsv").read_text().encode("latin-1"))
    with pytest.raises(DataFormatError, match=r"items\.tsv, line 3: not valid utf-8.*pass encoding=.*'latin-1'"):
        read_raw(folder)
    assert read_raw(folder, encoding="latin-1").items["title"].tolist()[2] == "Título três"


def test_duplicate_item_ids_are_named(tmp_path):
    folder = copy_fixture("table", tmp_path)
    with open(folder / "items.csv", "a") as handle:
        handle.write("i1,Red shoes again,20,images/i1b.png\n")
    with pytest.raises(DataFormatError, match=r"items\.csv: item 'i1' appears more than once \(lines 2, 4"):
        read_raw(folder)


def test_missing_column_lists_the_columns(tmp_path):
    folder = copy_fixture("table", tmp_path)
    with pytest.raises(DataFormatError, match=r"no column 'customer'; its columns are 'user', 'item', 'timestamp'"):
        read_raw(folder, user_column="customer")


def test_empty_required_field_names_line(tmp_path):
    folder = copy_fixture("table", tmp_path)
    with open(folder / "interactions.csv", "a") as handle:
        handle.write(",i2,30\n")
    with pytest.raises(DataFormatError, match=r"interactions\.csv, line 5: the user field is empty"):
        read_raw(folder)


def test_bad_mind_time_names_line(tmp_path):
    folder = copy_fixture("mind", tmp_path)
    path = folder / "MINDsmall_dev" / "behaviors.tsv"
    path.write_text(path.read_text().replace("11/16/2019 8:00:00 AM", "2019-11-16"))
    with pytest.raises(DataFormatError, match=r"MINDsmall_dev/behaviors\.tsv, line 1: time '2019-11-16'"):
        read_raw(folder)


def test_ambiguous_sequence_files_ask_for_names(tmp_path):
    for name in ("a.tsv", "b.tsv", "c.tsv"):
        (tmp_path / name).write_text("x\ty\n")
    with pytest.raises(DataFormatError, match=r"Pass sequences_file='\.\.\.' and items_file='\.\.\.'"):
        read_raw(tmp_path, format="sequences")


@pytest.mark.parametrize("value, kind", [("9223372036854775808", "range"), ("99999999999999999999", "range"),
                                         ("-9223372036854775809", "range"), ("1e19", "range"),
                                         ("1e300", "range"), ("9007199254740993.5", None)])
def test_timestamps_that_int64_cannot_hold_are_refused_with_the_line(tmp_path, value, kind):
    rows = ["user,item,timestamp", "u1,a,1610830704", f"u1,b,{value}", "u2,a,1610830705"]
    (tmp_path / "interactions.csv").write_text("\n".join(rows) + "\n")
    if kind is None:  # a fraction just past 2**53: float64 would round it onto a neighbour, so it is refused
        with pytest.raises(DataFormatError, match=r"line 3: timestamp '9007199254740993\.5' has a fraction"):
            read_table(tmp_path)
        return
    with pytest.raises(DataFormatError, match=r"interactions\.csv, line 3: timestamp .* outside the range of a 64-bit"):
        read_table(tmp_path)


def test_float_seconds_become_int64_and_fractions_keep_their_order(tmp_path):
    (tmp_path / "interactions.csv").write_text("user,item,timestamp\nu1,a,1610830704.0\nu1,b,1610830703.0\n")
    times = read_table(tmp_path).interactions["timestamp"]
    assert times.dtype == "int64" and times.tolist() == [1610830704, 1610830703]
    (tmp_path / "interactions.csv").write_text("user,item,timestamp\nu1,a,5.75\nu1,b,5.25\nu1,c,9223372036854775807\n")
    with pytest.raises(DataFormatError, match="line 4: timestamp .* too large to keep exactly"):
        read_table(tmp_path)
    (tmp_path / "interactions.csv").write_text("user,item,timestamp\nu1,a,5.75\nu1,b,5.25\n")
    assert read_table(tmp_path).interactions["timestamp"].tolist() == [5.75, 5.25]
    # parquet float and uint64 columns take the same checks
    import numpy as np
    pd.DataFrame({"user": ["u"] * 2, "item": ["a", "b"], "timestamp": [1.0, 2.0]}).to_parquet(tmp_path / "i.parquet")
    assert read_table(tmp_path / "i.parquet").interactions["timestamp"].dtype == "int64"
    pd.DataFrame({"user": ["u"] * 2, "item": ["a", "b"],
                  "timestamp": np.array([1, 2**63], dtype=np.uint64)}).to_parquet(tmp_path / "i.parquet")
    with pytest.raises(DataFormatError, match="row 2: timestamp 9223372036854775808 is outside"):
        read_table(tmp_path / "i.parquet")


def test_late_timestamps_keep_every_users_latest_item_as_the_test_target(tmp_path):
    """Times >= 2**63 once wrapped negative and moved users' latest items away from the test slot.
    Now the largest representable time is the latest: the test target is the row with the biggest time."""
    from morec.config import PrepareConfig
    from morec.data.dataset import PreparedDataset
    from morec.data.prepare import prepare

    big = 2**63 - 1
    rows = ["user,item,timestamp"] + [f"u{u},i{u}-{k},{big - 10 + k if k == 3 else 1000 + k}"
                                      for u in range(6) for k in range(4)]
    (tmp_path / "interactions.csv").write_text("\n".join(rows) + "\n")
    prepare(read_table(tmp_path), tmp_path / "prep", PrepareConfig(min_item_interactions=0, min_user_interactions=3),
            log=lambda s: None)
    ds = PreparedDataset(tmp_path / "prep")
    items = ds.items["item"].astype(str).tolist()
    for u in range(6):
        seq = ds.items_flat[ds.offsets[u]:ds.offsets[u + 1]]
        assert items[int(seq[-1]) - 1] == f"i{ds.users['user'][u][1:]}-3"
