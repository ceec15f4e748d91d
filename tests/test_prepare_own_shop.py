"""Preparing a shop's own export: the image path column is found (and said why), cuts are given and printed as
dates, the dedup log says how to keep repeats, and unusable images are reported once, at prepare."""
import json

import pytest

pytest.importorskip("PIL")

from fashion_shop import write_shop  # noqa: E402

from morec.cli import main  # noqa: E402
from morec.config import ConfigError, PrepareConfig  # noqa: E402
from morec.data.dataset import PreparedDataset  # noqa: E402
from morec.data.formats import DataFormatError  # noqa: E402
from morec.data.formats.registry import read_raw  # noqa: E402
from morec.data.images import build_image_store  # noqa: E402
from morec.data.prepare import prepare  # noqa: E402

COLUMNS = ["--option", "user_column=customer", "--option", "item_column=article_id", "--option",
           "time_column=ordered_at", "--prepare.min_user_interactions=3"]


def run_prepare(capsys, shop, out, *extra):
    rc = main(["data", "prepare", str(shop), "--out", str(out), *COLUMNS, *extra])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_image_path_column_is_an_image_column_and_the_log_says_why(tmp_path, capsys):
    shop = write_shop(tmp_path / "shop")
    rc, out, _ = run_prepare(capsys, shop, tmp_path / "p")
    manifest = json.loads((tmp_path / "p" / "manifest.json").read_text())
    assert rc == 0 and manifest["has_images"] and "image_path" not in manifest["text_columns"]
    assert "image column 'image_path'" in out and ".jpg" in out
    # no extension to go by: the values are files under the folder
    for jpg in (shop / "img").iterdir():
        jpg.rename(jpg.with_suffix(""))
    items = (shop / "articles.csv").read_text().replace(".jpg", "")
    (shop / "articles.csv").write_text(items)
    raw = read_raw(shop, user_column="customer", item_column="article_id", time_column="ordered_at")
    assert "image" in raw.items and "image_path" not in raw.text_columns
    assert any("image column 'image_path'" in n and "files under" in n for n in raw.notes)


def test_a_text_column_is_not_taken_for_images(tmp_path):
    shop = write_shop(tmp_path / "shop")
    raw = read_raw(shop, user_column="customer", item_column="article_id", time_column="ordered_at",
                   text_columns=["name", "image_path"])
    assert "image" not in raw.items and "image_path" in raw.text_columns


def test_cuts_given_as_dates_and_datetimes_and_printed_as_dates(tmp_path, capsys):
    shop = write_shop(tmp_path / "shop")
    rc, out, err = run_prepare(capsys, shop, tmp_path / "p", "--prepare.split=time", "--prepare.time_test=2024-05-21",
                               "--prepare.time_valid=2024-05-16T02:00:00+02:00")
    assert rc == 0, err
    cuts = json.loads((tmp_path / "p" / "manifest.json").read_text())["time_cuts"]
    assert cuts["test"] == 1716249600 and cuts["valid"] == 1715817600  # midnight UTC; 02:00+02:00 is 00:00 UTC
    assert "cut at 2024-05-16 (valid) and 2024-05-21 (test)" in out and "e+09" not in out
    assert "span 2024-05-01 07:00:00 UTC to" in out
    # the data's own unit: the same cut in milliseconds
    raw = read_raw(shop, user_column="customer", item_column="article_id", time_column="ordered_at")
    raw.interactions["timestamp"] = raw.interactions["timestamp"] * 1000
    prepare(raw, tmp_path / "ms", PrepareConfig(split="time", time_test="2024-05-21", time_valid="2024-05-16",
                                                min_user_interactions=3), log=lambda s: None)
    assert PreparedDataset(tmp_path / "ms").manifest["time_cuts"]["test"] == 1716249600 * 1000


def test_bad_or_out_of_range_date_cuts_are_named(tmp_path, capsys):
    shop = write_shop(tmp_path / "shop")
    rc, _, err = run_prepare(capsys, shop, tmp_path / "p", "--prepare.split=time", "--prepare.time_test=May 21")
    assert rc == 2 and "prepare.time_test='May 21'" in err and "2024-05-15" in err
    rc, _, err = run_prepare(capsys, shop, tmp_path / "p", "--prepare.split=time", "--prepare.time_test=2031-01-01")
    assert rc == 2 and "2031-01-01" in err and "2024-05-01" in err
    with pytest.raises(ConfigError, match="both be numbers or both be dates"):
        PrepareConfig(split="time", time_valid=5, time_test="2024-05-21").validate()
    raw = read_raw(shop, user_column="customer", item_column="article_id", time_column=None)  # file order
    with pytest.raises(DataFormatError, match="not dates"):
        prepare(raw, tmp_path / "order", PrepareConfig(split="time", time_test="2024-05-21", min_user_interactions=3),
                log=lambda s: None)


def test_dedup_log_says_how_to_keep_repeats(tmp_path, capsys):
    rc, out, _ = run_prepare(capsys, write_shop(tmp_path / "shop"), tmp_path / "p")
    assert rc == 0 and "dedup" in out and "prepare.dedup=none" in out


def test_unusable_images_are_reported_at_prepare_and_once_later(tmp_path, capsys):
    shop = write_shop(tmp_path / "shop", missing=2, corrupt=1)
    rc, _, err = run_prepare(capsys, shop, tmp_path / "p")
    assert rc == 2 and "3 of 24 item images" in err and "--prepare.image_missing=blank" in err
    assert str((shop / "img" / "A000.jpg").resolve()) in err  # where it looked
    assert not (tmp_path / "p").exists() and "model.encoder" not in err and ".preparing" not in err
    rc, out, _ = run_prepare(capsys, shop, tmp_path / "p", "--prepare.image_missing=blank")
    listed = json.loads((tmp_path / "p" / "image_problems.json").read_text())
    assert rc == 0 and sorted(p["item"] for p in listed) == ["A000", "A001", "A002"]
    assert str(tmp_path / "p" / "image_problems.json") in out
    ds = PreparedDataset(tmp_path / "p")
    lines = []
    for _ in range(3):  # train, then evaluate and recommend in one process: the summary comes once, one line
        build_image_store(ds, 16, "error", log=lines.append)
    said = [line for line in lines if "no usable image" in line]
    assert len(said) == 1 and "\n" not in said[0] and "3 of 24" in said[0]
    assert str(tmp_path / "p" / "image_problems.json") in said[0]
