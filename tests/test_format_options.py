"""Every reader option that `morec data formats` prints is exercised here with its documented example,
and the table reader's guesses (which file, which id column, comma lists) are checked and logged."""
from __future__ import annotations

import inspect
import shutil
from pathlib import Path

import pandas as pd
import pytest

from morec.cli import main
from morec.data.formats import DataFormatError
from morec.data.formats.registry import FORMATS, READERS, formats_help, read_raw

from shop_data import book_table, write_shop

FIX = (Path(__file__).parent / "fixtures").resolve()
DATA_GUIDE = Path(__file__).parent.parent / "docs" / "guide" / "data.md"


def example(fmt: str, option: str) -> str:
    return FORMATS[fmt].options[option].example


def read_with(fmt: str, option: str, value=None, path: Path | None = None):
    return read_raw(path or FIX / fmt, fmt, **{option: example(fmt, option) if value is None else value})


# --------------------------------------------------------------------------- the documentation itself

def test_every_reader_option_is_documented_and_printed(capsys):
    assert set(FORMATS) == set(READERS)
    for fmt, reader in READERS.items():
        accepted = {p for p in inspect.signature(reader).parameters if p != "path"}
        assert set(FORMATS[fmt].options) == accepted, fmt
    assert main(["data", "formats"]) == 0
    printed = capsys.readouterr().out
    assert printed == formats_help()
    for fmt, info in FORMATS.items():
        assert f"{fmt}:" in printed
        for option, doc in info.options.items():
            assert f"{option}={doc.example}" in printed, (fmt, option)
    # the data guide shows the same list, word for word (regenerate it from `morec data formats` when options change)
    assert printed in DATA_GUIDE.read_text(encoding="utf-8")


def test_prepare_help_lists_the_options(capsys):
    with pytest.raises(SystemExit):
        main(["data", "prepare", "--help"])
    out = capsys.readouterr().out
    for info in FORMATS.values():
        for option in info.options:
            assert option in out


def test_every_documented_option_has_a_test_here():
    documented = {(fmt, option) for fmt, info in FORMATS.items() for option in info.options}
    assert documented == set(CHECKS) | set(TABLE_OPTIONS)


# --------------------------------------------------------------------------- the table reader, on a shop's files

@pytest.fixture
def shop(tmp_path):
    return write_shop(tmp_path / "shop", n_customers=12)


SHOP = {"user_column": "customer_id", "item_column": "book_sku", "time_column": "purchased_at"}


def test_shop_tables_are_guessed_and_the_guesses_logged(shop):
    raw = read_raw(shop, **SHOP)  # format detected; neither file is named interactions.* / items.*
    notes = " ".join(raw.notes)
    assert "guessed purchases.csv" in notes and "guessed books.csv" in notes
    assert "item ids read from column 'book_sku'" in notes and "'book_title', 'blurb'" in notes
    assert list(raw.items.columns) == ["item", "book_title", "blurb"]
    assert set(raw.interactions["item"]) <= set(raw.items["item"])
    first = pd.read_csv(shop / "purchases.csv").iloc[0]
    row = raw.interactions.iloc[0]
    assert (row["user"], row["item"]) == (first["customer_id"], first["book_sku"])
    assert row["timestamp"] == int(pd.Timestamp(first["purchased_at"]).timestamp())


@pytest.mark.parametrize("value", ["book_title,blurb", "book_title, blurb", "[book_title, blurb]", ["book_title", "blurb"]])
def test_text_columns_as_a_comma_list_a_yaml_list_or_a_python_list(shop, value):
    raw = read_raw(shop, "table", text_columns=value, **SHOP)
    assert list(raw.items.columns) == ["item", "book_title", "blurb"]


def test_a_single_text_column_is_one_column_not_its_letters(shop, tmp_path, capsys):
    raw = read_raw(shop, "table", text_columns="book_title", **SHOP)
    assert list(raw.items.columns) == ["item", "book_title"]
    # the command line too, where the bug was
    args = ["data", "prepare", str(shop), "--out", str(tmp_path / "p"), "--option", "text_columns=book_title"]
    args += [f"--option={k}={v}" for k, v in SHOP.items()]
    assert main(args) == 0
    from morec.data.dataset import PreparedDataset

    assert PreparedDataset(tmp_path / "p").text_columns == ["book_title"]


def test_two_candidate_tables_are_an_error_naming_both(shop):
    shutil.copy(shop / "purchases.csv", shop / "old_purchases.csv")
    with pytest.raises(DataFormatError, match="old_purchases.csv, purchases.csv.*interactions_file="):
        read_raw(shop, "table", **SHOP)


def test_no_table_with_the_columns_lists_what_is_there(shop):
    with pytest.raises(DataFormatError, match="purchases.csv: customer_id, book_sku, purchased_at.*user_column="):
        read_raw(shop, "table")


def t_user_item_time_columns(shop, tmp_path):
    raw = read_raw(shop, "table", **{o: example("table", o) for o in SHOP})
    assert raw.interactions["user"].str.startswith("C").all() and raw.interactions["item"].str.startswith("SKU").all()
    assert raw.interactions["timestamp"].min() >= int(pd.Timestamp("2024-03-01 12:00:00").timestamp())


def t_time_format(shop, tmp_path):
    frame = pd.read_csv(shop / "purchases.csv")
    frame["purchased_at"] = pd.to_datetime(frame["purchased_at"]).dt.strftime("%d/%m/%Y %H:%M")
    frame.to_csv(shop / "purchases.csv", index=False)
    with pytest.raises(DataFormatError, match="time_format"):
        read_raw(shop, "table", **SHOP)  # 01/03/2024 is not ISO: refused, with the way out named
    raw = read_raw(shop, "table", time_format=example("table", "time_format"), **SHOP)
    expected = [int(pd.Timestamp(pd.to_datetime(d, format="%d/%m/%Y %H:%M")).timestamp()) for d in frame["purchased_at"]]
    assert raw.interactions["timestamp"].tolist() == expected
    frame.loc[3, "purchased_at"] = "2024-03-01"
    frame.to_csv(shop / "purchases.csv", index=False)
    with pytest.raises(DataFormatError, match=r"line 5: purchased_at '2024-03-01' does not match time_format"):
        read_raw(shop, "table", time_format=example("table", "time_format"), **SHOP)


def t_files(shop, tmp_path):
    shutil.copy(shop / "purchases.csv", shop / "archive.csv")
    books = book_table()
    books.iloc[:5].to_csv(shop / "bestsellers.csv", index=False)  # a second candidate item table
    raw = read_raw(shop, "table", interactions_file=example("table", "interactions_file"),
                   items_file=example("table", "items_file"), **SHOP)
    assert len(raw.items) == len(books)
    with pytest.raises(DataFormatError, match="items_file="):
        read_raw(shop, "table", interactions_file="purchases.csv", **SHOP)


def t_item_id_column(shop, tmp_path):
    book_table().rename(columns={"book_sku": "sku"}).to_csv(shop / "books.csv", index=False)
    raw = read_raw(shop, "table", items_file="books.csv", item_id_column=example("table", "item_id_column"), **SHOP)
    assert set(raw.items["item"]) == set(book_table()["book_sku"]) and "sku" not in raw.items.columns


def t_text_columns(shop, tmp_path):
    raw = read_raw(shop, "table", text_columns=example("table", "text_columns"), **SHOP)
    assert raw.text_columns == ["book_title", "blurb"]


def t_image_column(shop, tmp_path):
    books = book_table().assign(cover=lambda f: "covers/" + f["book_sku"] + ".png")
    books.to_csv(shop / "books.csv", index=False)
    raw = read_raw(shop, "table", image_column=example("table", "image_column"), **SHOP)
    assert (raw.items["image"] == "covers/" + raw.items["item"] + ".png").all() and "cover" not in raw.text_columns


def t_image_pattern(shop, tmp_path):
    raw = read_raw(shop, "table", image_pattern=example("table", "image_pattern"), **SHOP)
    assert (raw.items["image"] == "covers/" + raw.items["item"] + ".jpg").all()


def t_sep(shop, tmp_path):
    for name in ("purchases.csv", "books.csv"):
        pd.read_csv(shop / name).to_csv(shop / name, sep=";", index=False)
    raw = read_raw(shop, "table", sep=example("table", "sep"), **SHOP)
    assert raw.text_columns == ["book_title", "blurb"] and len(raw.items) == len(book_table())


def t_encoding(shop, tmp_path):
    books = book_table()
    books.loc[0, "book_title"] = "Crème brûlée"
    books.to_csv(shop / "books.csv", index=False, encoding="latin-1")
    with pytest.raises(DataFormatError, match="encoding="):
        read_raw(shop, "table", **SHOP)
    raw = read_raw(shop, "table", encoding=example("table", "encoding"), **SHOP)
    assert raw.items.set_index("item").loc[books.loc[0, "book_sku"], "book_title"] == "Crème brûlée"
    with pytest.raises(DataFormatError, match="unknown text encoding"):
        read_raw(shop, "table", encoding="no-such-codec", **SHOP)


TABLE_OPTIONS = {("table", o): f for o, f in {
    "user_column": t_user_item_time_columns, "item_column": t_user_item_time_columns,
    "time_column": t_user_item_time_columns, "time_format": t_time_format, "interactions_file": t_files,
    "items_file": t_files, "item_id_column": t_item_id_column, "text_columns": t_text_columns,
    "image_column": t_image_column, "image_pattern": t_image_pattern, "sep": t_sep, "encoding": t_encoding}.items()}


@pytest.mark.parametrize("option", sorted({o for _, o in TABLE_OPTIONS}))
def test_table_option(option, shop, tmp_path):
    TABLE_OPTIONS[("table", option)](shop, tmp_path)


# --------------------------------------------------------------------------- the other formats, on their fixtures

def same_as_default(fmt):
    def check(raw):
        default = read_raw(FIX / fmt, fmt)
        assert raw.interactions.equals(default.interactions) and raw.items.equals(default.items)
    return check


def columns(*names):
    return lambda raw: (raw.text_columns == list(names)) or pytest.fail(f"{raw.text_columns} != {list(names)}")


def images_under(prefix):
    def check(raw):
        assert raw.items["image"].astype(str).str.contains(prefix).any(), raw.items["image"].tolist()
    return check


# (format, option) -> (check of the read with the documented example, a wrong value: error match or a check)
CHECKS = {
    ("movielens", "encoding"): (same_as_default("movielens"), "unknown text encoding"),
    ("recbole", "name"): (lambda raw: raw.name == "mini" or pytest.fail(raw.name), "nope.inter: file not found"),
    ("recbole", "user_field"): (same_as_default("recbole"), "no 'nope' field"),
    ("recbole", "item_field"): (same_as_default("recbole"), "no 'nope' field"),
    ("recbole", "time_field"): (same_as_default("recbole"),
                                lambda raw: raw.interactions["timestamp"].tolist() == list(range(len(raw.interactions)))),
    ("recbole", "encoding"): (lambda raw: not raw.items["title"].str.contains("é").any(), "unknown text encoding"),
    ("sequences", "sequences_file"): (same_as_default("sequences"), "nope: file not found"),
    ("sequences", "items_file"): (same_as_default("sequences"), "nope: file not found"),
    ("sequences", "image_pattern"): (images_under("covers/"), lambda raw: (raw.items["image"] == "nope").all()),
    ("sequences", "encoding"): (lambda raw: "Título três" not in raw.items["title"].tolist(), "unknown text encoding"),
    ("mind", "text_columns"): (columns("title", "abstract"), "text_columns \\['nope'\\] unknown"),
    ("mind", "encoding"): (same_as_default("mind"), "unknown text encoding"),
    ("hm", "text_columns"): (columns("title", "product_type_name"), "no column 'nope'"),
    ("hm", "images_dir"): (images_under("images/"), lambda raw: raw.items["image"].str.contains("nope").all()),
    ("hm", "encoding"): (same_as_default("hm"), "unknown text encoding"),
    ("lmdb", "lmdb"): (same_as_default("lmdb"), "LMDB image store not found"),
    ("lmdb", "sequences_file"): (same_as_default("lmdb"), "nope: file not found"),
    ("lmdb", "items_file"): (same_as_default("lmdb"), "nope: file not found"),
    ("lmdb", "encoding"): (same_as_default("lmdb"), "unknown text encoding"),
    ("pixelrec", "interactions_file"): (same_as_default("pixelrec"), "nope: file not found"),
    ("pixelrec", "items_file"): (same_as_default("pixelrec"), "nope: file not found"),
    ("pixelrec", "cover_dir"): (images_under("cover/"), lambda raw: raw.items["image"].str.contains("nope").all()),
    ("pixelrec", "text_columns"): (columns("title", "tag"), "no column 'nope'"),
    ("pixelrec", "encoding"): (same_as_default("pixelrec"), "unknown text encoding"),
    ("ninerec", "pair_file"): (same_as_default("ninerec"), "nope: file not found"),
    ("ninerec", "item_file"): (same_as_default("ninerec"), "nope"),
    ("ninerec", "cover_dir"): (images_under("Bili_Food_cover/"), lambda raw: raw.items["image"].str.contains("nope").all()),
    ("ninerec", "user_column"): (same_as_default("ninerec"), "no column 'nope'"),
    ("ninerec", "item_column"): (same_as_default("ninerec"), "no column 'nope'"),
    ("ninerec", "time_column"): (same_as_default("ninerec"), "no column 'nope'"),
    ("ninerec", "text_columns"): (columns("title"), "no column 'nope'"),
    ("ninerec", "encoding"): (same_as_default("ninerec"), "unknown text encoding"),
    ("microlens", "pairs_file"): (same_as_default("microlens"), "nope: file not found"),
    ("microlens", "titles_file"): (same_as_default("microlens"), "nope"),
    ("microlens", "cover_dir"): (images_under("MicroLens-50k_covers/"),
                                 lambda raw: raw.items["image"].str.contains("nope").all()),
    ("microlens", "encoding"): (same_as_default("microlens"), "unknown text encoding"),
}


@pytest.mark.parametrize("fmt,option", sorted(CHECKS))
def test_format_option_example_and_a_wrong_value(fmt, option):
    if fmt == "lmdb":
        pytest.importorskip("lmdb")
    check, wrong = CHECKS[(fmt, option)]
    check(read_with(fmt, option))
    if callable(wrong):  # options whose value is used as given (paths built, not opened, at read time)
        assert wrong(read_with(fmt, option, "nope"))
    else:
        with pytest.raises((DataFormatError, FileNotFoundError), match=wrong):
            read_with(fmt, option, "nope")


# --------------------------------------------------------------------------- the dataset's name and title at prepare time

def test_dataset_name_is_the_source_folder_unless_generic_then_the_output_folder(tmp_path):
    from morec.api import prepare_dataset

    quiet = lambda s: None  # noqa: E731
    shop = write_shop(tmp_path / "raw", n_customers=12)  # a folder named like every other download: "raw"
    assert prepare_dataset(shop, tmp_path / "prepared" / "bookshop", log=quiet, **SHOP).name == "bookshop"
    assert prepare_dataset(shop, tmp_path / "p2", log=quiet, name="my-shop", **SHOP).name == "my-shop"
    named = write_shop(tmp_path / "corner-shop", n_customers=12)
    assert prepare_dataset(named, tmp_path / "prepared" / "x", log=quiet, **SHOP).name == "corner-shop"


def test_title_column_defaults_to_the_first_text_column_and_can_be_chosen(shop, tmp_path):
    from morec.api import prepare_dataset

    quiet = lambda s: None  # noqa: E731
    ds = prepare_dataset(shop, tmp_path / "a", log=quiet, **SHOP)
    assert ds.title_column == "book_title" and ds.titles()[0] in set(book_table()["book_title"])
    ds = prepare_dataset(shop, tmp_path / "b", prepare_cfg={"title_column": "blurb"}, log=quiet, **SHOP)
    assert ds.title_column == "blurb" and ds.titles()[0] in set(book_table()["blurb"])
    with pytest.raises(DataFormatError, match="title_column='price' is not a text column.*book_title, blurb"):
        prepare_dataset(shop, tmp_path / "c", prepare_cfg={"title_column": "price"}, log=quiet, **SHOP)
