"""`morec catalog add` with a shop's own image column: its own names accepted, relative image paths read from the
items file's folder, the path tried named in every file error, other names mapped with --map, and an image-only
item labelled by its id."""
import json

import pytest

pytest.importorskip("PIL")

from fashion_shop import COLOURS, write_shop  # noqa: E402

from morec.catalog import load_added  # noqa: E402
from morec.cli import main  # noqa: E402
from training_helpers import train_tiny_vision_run  # noqa: E402

QUIET = lambda s: None  # noqa: E731


@pytest.fixture(scope="module")
def shop_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("shop-run")
    shop = write_shop(root / "shop")
    assert main(["data", "prepare", str(shop), "--out", str(root / "prepared"), "--option", "user_column=customer",
                 "--option", "item_column=article_id", "--option", "time_column=ordered_at",
                 "--prepare.min_user_interactions=3"]) == 0
    return train_tiny_vision_run(root / "prepared", root, QUIET)


def new_articles(folder, header="article_id,image_path", rows=("N1,img/N1.jpg",)):
    from PIL import Image

    (folder / "img").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (20, 20), COLOURS["red"]).save(folder / "img" / "N1.jpg")
    (folder / "new.csv").write_text("\n".join([header, *rows]) + "\n")
    return folder / "new.csv"


def test_own_columns_and_relative_paths_from_the_items_folder(shop_run, tmp_path, capsys, monkeypatch):
    items = new_articles(tmp_path / "incoming")
    monkeypatch.chdir(tmp_path)  # not the items file's folder: img/N1.jpg is found beside new.csv all the same
    assert main(["catalog", "add", str(shop_run), "--items", str(items)]) == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["ids"] == ["N1"]
    ids, titles, _ = load_added(shop_run)
    assert ids == ["N1"] and titles == ["N1"]  # an image-only item is labelled by its id, not null


def test_file_errors_name_the_absolute_path_tried(shop_run, tmp_path, capsys):
    items = new_articles(tmp_path / "incoming", rows=("N2,img/absent.jpg",))
    assert main(["catalog", "add", str(shop_run), "--items", str(items)]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "incoming" / "img" / "absent.jpg") in err and "not found" in err
    assert main(["catalog", "add", str(shop_run), "--items", "nowhere/new.csv"]) == 2
    assert "/nowhere/new.csv" in capsys.readouterr().err


def test_other_column_names_get_a_map_hint_and_map(shop_run, tmp_path, capsys):
    items = new_articles(tmp_path / "incoming", header="article_id,picture", rows=("N3,img/N1.jpg",))
    assert main(["catalog", "add", str(shop_run), "--items", str(items)]) == 2
    err = capsys.readouterr().err
    assert "--map YOURS=image_path" in err and "'picture'" in err and "'image_path'" in err
    assert main(["catalog", "add", str(shop_run), "--items", str(items), "--map", "picture=image_path"]) == 0


def test_help_says_content_not_only_text(capsys):
    with pytest.raises(SystemExit):
        main(["catalog", "--help"])
    out = capsys.readouterr().out
    assert "from their text" not in out and "images" in out
