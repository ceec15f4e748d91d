"""A small fashion shop's own export, with article photos: what the image walk-through starts from.

    python make_shop.py [--out raw] [--articles 240] [--customers 400] [--new 12] [--photo-px 160] [--seed 0]

Writes, under ``--out``:

* ``orders.csv``: customer_id, article_id, ordered_at (ISO datetimes);
* ``articles.csv``: article_id, name, image_path (relative, ``img/<article>.jpg``);
* ``img/*.jpg``: one photo per article. The category is in the photo only: its background colour family and the
  shape drawn on it (names are made-up style names shared by every category), so only a model that looks at the
  images can tell which articles go together. Three listed photos are missing and one is corrupt.

and beside it (``--out``'s parent folder) the articles that arrive after training: ``new_articles.csv`` and
``new_img/*.jpg``, and ``truth.json`` (each article's and customer's category, to check recommendations with;
nothing in the walk-through reads it for training).
"""
from __future__ import annotations

import argparse
import colorsys
import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CATEGORIES = ["dresses", "jeans", "knitwear", "sneakers", "swimwear", "coats"]
HUES = [0.0, 0.62, 0.08, 0.33, 0.5, 0.78]  # background hue of each category's photos
STYLE = ["Nova", "Luna", "Aria", "Milo", "Sol", "Iris", "Vega", "Orla", "Juno", "Kai", "Lyra", "Nico"]


def photo(category: int, rng: np.random.Generator, px: int) -> Image.Image:
    """The category's colour family (hue within +-0.03) and shape, at a random place and size."""
    hue = (HUES[category] + rng.uniform(-0.03, 0.03)) % 1
    bg = tuple(int(255 * c) for c in colorsys.hsv_to_rgb(hue, rng.uniform(0.5, 0.9), rng.uniform(0.6, 0.95)))
    img = Image.new("RGB", (px, px), bg)
    draw = ImageDraw.Draw(img)
    size = px * rng.uniform(0.3, 0.5)
    cx, cy = px * rng.uniform(0.35, 0.65, size=2)
    box = [cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2]
    fill = tuple(int(v) for v in rng.integers(200, 256, size=3))
    shape = category % 3
    if shape == 0:
        draw.ellipse(box, fill=fill)
    elif shape == 1:
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon([(cx, cy - size / 2), (cx - size / 2, cy + size / 2), (cx + size / 2, cy + size / 2)], fill=fill)
    return img


def articles(ids: list[str], folder: Path, rng: np.random.Generator, px: int) -> tuple[list[dict], dict]:
    (folder).mkdir(parents=True, exist_ok=True)
    rows, category = [], {}
    for k, article in enumerate(ids):
        c = k % len(CATEGORIES)
        category[article] = CATEGORIES[c]
        photo(c, rng, px).save(folder / f"{article}.jpg", quality=90)
        name = f"{STYLE[rng.integers(len(STYLE))]} {STYLE[rng.integers(len(STYLE))]} {article[-3:]}"
        rows.append({"article_id": article, "name": name, "image_path": f"{folder.name}/{article}.jpg"})
    return rows, category


def orders(customers: int, ids: list[str], category: dict, rng: np.random.Generator) -> tuple[list[dict], dict]:
    """Each customer buys 6-12 articles, nearly all of one favourite category."""
    by_cat = {c: [a for a in ids if category[a] == c] for c in CATEGORIES}
    start, rows, favourite = datetime(2024, 3, 1, 9), [], {}
    for u in range(customers):
        customer = f"C{u:03d}"
        fav = CATEGORIES[rng.integers(len(CATEGORIES))]
        favourite[customer] = fav
        t = start + timedelta(hours=int(rng.integers(0, 24 * 30)))
        for article in _basket(rng, by_cat, fav, int(rng.integers(6, 13))):
            t += timedelta(hours=int(rng.integers(1, 72)))
            rows.append({"customer_id": customer, "article_id": article, "ordered_at": t.isoformat()})
    return rows, favourite


def _basket(rng, by_cat: dict, fav: str, n: int) -> list[str]:
    picks = []
    while len(picks) < n:
        pool = by_cat[fav] if rng.random() < 0.9 else by_cat[CATEGORIES[rng.integers(len(CATEGORIES))]]
        article = pool[int(rng.integers(len(pool)))]
        if article not in picks:
            picks.append(article)
    return picks


def write_csv(rows: list[dict], path: Path) -> None:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("raw"))
    p.add_argument("--articles", type=int, default=240)
    p.add_argument("--customers", type=int, default=400)
    p.add_argument("--new", type=int, default=12)
    p.add_argument("--photo-px", type=int, default=160)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    rng = np.random.default_rng(a.seed)
    ids = [f"A{k:04d}" for k in range(a.articles)]
    rows, category = articles(ids, a.out / "img", rng, a.photo_px)
    sold, favourite = orders(a.customers, ids, category, rng)
    for article in ids[5:8]:  # listed, never delivered
        (a.out / "img" / f"{article}.jpg").unlink()
    (a.out / "img" / f"{ids[9]}.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    write_csv(rows, a.out / "articles.csv")
    write_csv(sold, a.out / "orders.csv")
    new_ids = [f"N{k:04d}" for k in range(a.new)]
    new_rows, new_category = articles(new_ids, a.out.parent / "new_img", rng, a.photo_px)
    write_csv(new_rows, a.out.parent / "new_articles.csv")
    (a.out.parent / "truth.json").write_text(json.dumps({"category": {**category, **new_category},
                                                         "favourite": favourite}, indent=1))
    print(f"{a.out}: {len(sold):,} orders by {a.customers:,} customers of {a.articles:,} articles "
          f"(3 photos missing, 1 corrupt); {a.out.parent / 'new_articles.csv'}: {a.new} new articles")


if __name__ == "__main__":
    main()
