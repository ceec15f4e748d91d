"""MovieLens in its original GroupLens files: 100K (``u.data`` + ``u.item``) or 1M (``*.dat``)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from morec.data.formats import DataFormatError, RawDataset
from morec.data.formats.table import (
    check_unique_items, finish, read_delimited, require_file, require_nonempty,
)
from morec.data.formats.timestamps import parse_timestamps

# The order of the 19 genre flags at the end of each u.item line (see the ML-100K README).
GENRES_100K = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)
# "Toy Story (1995)" -> "Toy Story", "1995"; titles without a year keep their text.
_TITLE_YEAR = r"^(?P<title>.*?)\s*\((?P<year>\d{4})\)\s*$"


def _split_title(titles: pd.Series) -> tuple[pd.Series, pd.Series]:
    parts = titles.str.extract(_TITLE_YEAR)
    has_year = parts["year"].notna()
    return parts["title"].where(has_year, titles.str.strip()), parts["year"].fillna("")


def read_movielens(path: str | Path, *, encoding: str = "latin-1") -> RawDataset:
    """A MovieLens folder: ``u.data``/``u.item`` (100K) or ``ratings.dat``/``movies.dat`` (1M).

    Ratings are not kept: every rating counts as an interaction, as in the paper.
    """
    folder = Path(path)
    if (folder / "u.data").is_file():
        interactions, items, items_path = _read_100k(folder, encoding)
    elif (folder / "ratings.dat").is_file():
        interactions, items, items_path = _read_1m(folder, encoding)
    else:
        raise DataFormatError(
            f"{folder}: neither u.data (MovieLens-100K) nor ratings.dat (MovieLens-1M) found. "
            "Point to the unzipped ml-100k/ or ml-1m/ folder."
        )
    return finish(interactions, items, name=folder.name, root=folder, notes=[], items_source=items_path)


def _read_100k(folder: Path, encoding: str) -> tuple[pd.DataFrame, pd.DataFrame, Path]:
    data_path = folder / "u.data"
    ratings = read_delimited(data_path, sep="\t", header=False, min_fields=4, max_fields=4,
                             encoding=encoding, layout="user<TAB>item<TAB>rating<TAB>timestamp")
    require_nonempty(ratings, {0: "user", 1: "item"}, data_path)
    interactions = pd.DataFrame({
        "user": ratings[0], "item": ratings[1],
        "timestamp": parse_timestamps(ratings[3], data_path, "timestamp"),
    })

    item_path = require_file(folder / "u.item", "MovieLens-100K needs u.item next to u.data.")
    n_fields = 5 + len(GENRES_100K)
    raw = read_delimited(item_path, sep="|", header=False, min_fields=n_fields, max_fields=n_fields,
                         encoding=encoding,
                         layout="id|title (year)|release date|video release date|IMDb URL|19 genre flags")
    require_nonempty(raw, {0: "item id"}, item_path)
    check_unique_items(raw[0], item_path)
    title, year = _split_title(raw[1])
    # Items without a year in the title still have one in the release date ("01-Jan-1995").
    year = year.where(year != "", raw[2].str[-4:].where(raw[2].str.len() >= 4, ""))
    genres = pd.Series("", index=raw.index, dtype=str)
    for offset, genre in enumerate(GENRES_100K):  # 19 column operations, not one per movie
        genres = genres + (raw[5 + offset] == "1").map({True: genre + " ", False: ""})
    items = pd.DataFrame({"item": raw[0], "title": title, "year": year, "genres": genres.str.rstrip()})
    return interactions, items, item_path


def _read_1m(folder: Path, encoding: str) -> tuple[pd.DataFrame, pd.DataFrame, Path]:
    ratings_path = folder / "ratings.dat"
    layout = "UserID::MovieID::Rating::Timestamp"
    # pandas' fast parser takes one-character separators only; "::" becomes an empty field
    # between every real one, which is checked below instead of using the slow Python parser.
    raw = read_delimited(ratings_path, sep=":", header=False, min_fields=7, max_fields=7,
                         encoding=encoding, layout=layout)
    gaps = (raw[[1, 3, 5]] != "").any(axis=1)
    if gaps.any():
        raise DataFormatError(f"{ratings_path}, line {raw.index[gaps.to_numpy()][0]}: expected {layout}.")
    require_nonempty(raw, {0: "UserID", 2: "MovieID"}, ratings_path)
    interactions = pd.DataFrame({
        "user": raw[0], "item": raw[2], "timestamp": parse_timestamps(raw[6], ratings_path, "Timestamp"),
    })

    movies_path = require_file(folder / "movies.dat", "MovieLens-1M needs movies.dat next to ratings.dat.")
    try:
        lines = pd.Series(movies_path.read_text(encoding=encoding).splitlines())
    except UnicodeDecodeError as err:
        raise DataFormatError(f"{movies_path}: not valid {encoding} text ({err}); pass encoding=...") from None
    lines.index = lines.index + 1
    lines = lines[lines.str.strip() != ""]
    fields = lines.str.split("::", n=2, expand=True)
    if fields.shape[1] < 3 or fields[2].isna().any():
        bad = lines.index[0] if fields.shape[1] < 3 else fields.index[fields[2].isna().to_numpy()][0]
        raise DataFormatError(f"{movies_path}, line {bad}: expected MovieID::Title::Genres.")
    require_nonempty(fields, {0: "MovieID"}, movies_path)
    check_unique_items(fields[0], movies_path)
    title, year = _split_title(fields[1])
    items = pd.DataFrame({"item": fields[0], "title": title, "year": year,
                          "genres": fields[2].str.replace("|", " ", regex=False)})
    return interactions, items, movies_path
