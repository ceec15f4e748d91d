"""A bookshop's own tables, as a new user brings them: its own column names and date strings.

purchases.csv: customer_id, book_sku, purchased_at ('2024-03-01 12:00:00');
books.csv: book_sku, book_title, blurb. Each customer reads mostly one genre, and the genre is in
the title and blurb words, so a text model can place a never-seen book with the right readers.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

GENRES = {
    "mystery": (["Murder", "Detective", "Clue", "Alibi", "Suspect"], "a detective solves a murder case"),
    "cooking": (["Kitchen", "Recipes", "Baking", "Soup", "Bread"], "recipes for the home kitchen and baking"),
    "space": (["Rocket", "Galaxy", "Mars", "Orbit", "Astronaut"], "astronauts fly a rocket to another galaxy"),
    "garden": (["Roses", "Garden", "Seeds", "Compost", "Tulips"], "growing roses and tulips in a garden"),
}
BOOKS_PER_GENRE = 10
START = pd.Timestamp("2024-03-01 12:00:00")


def book_table() -> pd.DataFrame:
    rows = []
    for g, (genre, (words, blurb)) in enumerate(GENRES.items()):
        for b in range(BOOKS_PER_GENRE):
            rows.append({"book_sku": f"SKU-{g}{b:02d}", "book_title": f"{words[b % 5]} {['Days', 'Nights', 'Tales', 'Notes', 'Stories'][b // 2 % 5]} {b}",
                         "blurb": f"{blurb}, volume {b}"})
    return pd.DataFrame(rows)


def new_books() -> pd.DataFrame:
    """Books the shop adds after training, in its own column names: one per genre."""
    return pd.DataFrame([{"book_sku": f"NEW-{g}", "book_title": f"{words[0]} {words[1]} Returns",
                          "blurb": f"{blurb}, a new release"} for g, (genre, (words, blurb)) in enumerate(GENRES.items())])


def write_shop(folder: str | Path, n_customers: int = 80, seed: int = 0) -> Path:
    """Write purchases.csv and books.csv into ``folder``; returns it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    books = book_table()
    by_genre = [books["book_sku"][g * BOOKS_PER_GENRE:(g + 1) * BOOKS_PER_GENRE].tolist() for g in range(len(GENRES))]
    rows = []
    for c in range(n_customers):
        genre = c % len(GENRES)
        n = int(rng.integers(6, 10))
        own = rng.choice(by_genre[genre], size=n - 1, replace=False).tolist()
        other = by_genre[(genre + 1 + int(rng.integers(0, len(GENRES) - 1))) % len(GENRES)]
        own.insert(int(rng.integers(0, n - 1)), str(rng.choice(other)))  # a little noise
        for t, sku in enumerate(own):
            when = START + pd.Timedelta(days=int(c % 7), hours=t * 5 + int(rng.integers(0, 4)))
            rows.append({"customer_id": f"C{c:03d}", "book_sku": sku, "purchased_at": when.strftime("%Y-%m-%d %H:%M:%S")})
    purchases = pd.DataFrame(rows).sample(frac=1.0, random_state=seed)  # shops export in no particular order
    purchases.to_csv(folder / "purchases.csv", index=False)
    books.to_csv(folder / "books.csv", index=False)
    return folder
