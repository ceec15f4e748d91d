"""A small fashion shop's own export, as a new user brings it: orders in Parquet with ISO datetimes carrying a
timezone, an article table (CSV) with name, description, colour and a relative image path column, and the
JPEGs under img/, a few of them missing or corrupt on request."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

COLOURS = {"red": (200, 30, 30), "green": (30, 160, 60), "blue": (30, 60, 200)}


def write_shop(folder: str | Path, n_customers: int = 30, n_articles: int = 24, missing: int = 0,
               corrupt: int = 0, seed: int = 0) -> Path:
    from PIL import Image

    folder = Path(folder)
    (folder / "img").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = list(COLOURS)
    articles = pd.DataFrame({
        "article_id": [f"A{a:03d}" for a in range(n_articles)],
        "name": [f"{names[a % 3].title()} shirt {a}" for a in range(n_articles)],
        "description": [f"a {names[a % 3]} cotton shirt, model {a}" for a in range(n_articles)],
        "colour": [names[a % 3] for a in range(n_articles)],
        "image_path": [f"img/A{a:03d}.jpg" for a in range(n_articles)],
    })
    for a, colour in enumerate(articles["colour"]):
        if a < missing:
            continue
        path = folder / "img" / f"A{a:03d}.jpg"
        if a < missing + corrupt:
            path.write_bytes(b"not a jpeg at all")
        else:
            Image.new("RGB", (20, 20), COLOURS[colour]).save(path, quality=95)
    articles.to_csv(folder / "articles.csv", index=False)
    start = pd.Timestamp("2024-05-01 09:00:00", tz="Europe/Paris")
    rows = []
    for c in range(n_customers):
        own = [a for a in range(n_articles) if a % 3 == c % 3]
        for t, a in enumerate(rng.choice(own, size=6, replace=False)):
            rows.append({"customer": f"C{c:02d}", "article_id": f"A{a:03d}",
                         "ordered_at": (start + pd.Timedelta(days=t * 5, hours=c)).isoformat()})
    pd.DataFrame(rows).to_parquet(folder / "orders.parquet", index=False)
    return folder
