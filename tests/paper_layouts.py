"""Small generated datasets in the official MIND and H&M layouts, with the hazards real files have.

MIND (MINDsmall_train / MINDsmall_dev): quotes in titles, 12 AM / 12 PM impression times, unpadded days
(11/9/2019), dev-only users whose October history has no time, a user without history, a history longer than the
paper's latest 23, a news item without abstract and one without any text, CRLF line ends in the dev folder.
H&M: 64-hex customer ids, quoted product names with commas, article ids that lost their leading zero in some
transactions, optionally articles.csv ids exported as floats (108775015.0) or the images flattened into images/.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

TRAIN_BEHAVIORS = [  # impression id, user, time, history, impressions
    ("1", "U10", "11/9/2019 9:00:00 AM", "N1 N2 N3", "N4-1 N9-0"),
    ("2", "U10", "11/12/2019 12:30:00 PM", "N1 N2 N3", "N5-1 N4-0"),
    ("3", "U40", "11/9/2019 12:15:00 PM", "", "N1-1 N2-0"),
    ("4", "U40", "11/11/2019 2:00:00 PM", "", "N2-1"),
    ("5", "U40", "11/13/2019 10:00:00 PM", "", "N3-1 N8-1 N5-0"),
    ("6", "U40", "11/14/2019 11:00:00 AM", "", "N9-1 N1-0"),
    ("7", "U50", "11/10/2019 10:00:00 AM", " ".join(f"N{k}" for k in range(11, 36)), "N1-1"),
]
DEV_BEHAVIORS = [  # U20 and U30 appear only here
    ("1", "U10", "11/15/2019 8:00:00 AM", "N1 N2 N3", "N6-1 N7-0"),
    ("2", "U20", "11/15/2019 12:05:00 AM", "N2 N7 N8 N9", "N10-1 N3-0"),
    ("3", "U20", "11/15/2019 1:00:00 PM", "N2 N7 N8 N9", "N4-1"),
    ("4", "U30", "11/15/2019 11:59:59 PM", "N1 N3 N5", "N7-1 N2-0"),
]
TITLES = {"N1": "Title one", "N2": '"Quoted" title two', "N3": "Markets rally, again", "N4": "It's 'four'",
          "N5": "Five", "N6": "Six", "N7": "Seven", "N8": "Eight", "N9": "", "N10": "Ten"}
TITLES.update({f"N{k}": f"Old story {k}" for k in range(11, 36)})
NO_ABSTRACT = {"N3", "N9"}
DEV_NEWS = ("N1", "N2", "N3", "N4", "N6", "N7", "N8", "N9", "N10")  # listed in both folders where shared


def _news_line(news_id: str) -> str:
    abstract = "" if news_id in NO_ABSTRACT else f"About {news_id}."
    return "\t".join([news_id, "news", "newsus", TITLES[news_id], abstract,
                      f"https://assets.msn.com/labs/mind/{news_id}.html", "[]", "[]"])


def write_mind(root: Path) -> Path:
    """The two folders under ``root``; the dev folder's files end lines with CRLF."""
    for name, behaviors, news, newline in (
            ("MINDsmall_train", TRAIN_BEHAVIORS, [n for n in TITLES if n not in ("N6", "N10")], "\n"),
            ("MINDsmall_dev", DEV_BEHAVIORS, DEV_NEWS, "\r\n")):
        folder = root / name
        folder.mkdir(parents=True)
        (folder / "behaviors.tsv").write_bytes(newline.join("\t".join(r) for r in behaviors).encode() + newline.encode())
        (folder / "news.tsv").write_bytes(newline.join(map(_news_line, news)).encode() + newline.encode())
    return root


def customer(k: int) -> str:
    return hashlib.sha256(f"customer {k}".encode()).hexdigest()


def article(k: int) -> str:
    return f"{108775015 + k:010d}"


# (day, customer, article): C1 buys 15 articles (more than the paper's 13), C2 five (two on one day), C3 only four
PURCHASES = ([(f"2018-09-{20 + k // 3:02d}", 1, k) for k in range(15)]
             + [("2018-10-01", 2, 3), ("2018-10-01", 2, 1), ("2018-10-02", 2, 15), ("2018-10-05", 2, 3),
                ("2018-10-06", 2, 7), ("2018-10-09", 2, 9)]
             + [("2018-10-03", 3, k) for k in (2, 4, 6, 8)])
N_ARTICLES = 16


def write_hm(root: Path, *, float_ids: bool = False, flat_images: bool = False) -> Path:
    root.mkdir(parents=True)
    rows = ["t_dat,customer_id,article_id,price,sales_channel_id"]
    for n, (day, who, k) in enumerate(PURCHASES):
        shown = article(k).lstrip("0") if n % 4 == 1 else article(k)  # a spreadsheet round-trip lost some zeros
        rows.append(f"{day},{customer(who)},{shown},0.0{n + 10},2")
    (root / "transactions_train.csv").write_text("\n".join(rows) + "\n")
    lines = ["article_id,product_code,prod_name,product_type_name,detail_desc"]
    for k in range(N_ARTICLES):
        shown = f"{int(article(k))}.0" if float_ids else article(k)
        lines.append(f'{shown},{article(k)[:7]},"Strap top, {k}-pack",Vest top,"Jersey top with ""narrow"" straps."')
    (root / "articles.csv").write_text("\n".join(lines) + "\n")
    _write_images(root / "images", flat_images)
    return root


def _write_images(folder: Path, flat: bool) -> None:
    from PIL import Image

    for k in range(N_ARTICLES):
        name = article(k)
        path = folder / (f"{name}.jpg" if flat else f"{name[:3]}/{name}.jpg")
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (6, 8), ((20 * k) % 256, 100, 200)).save(path)
