"""Do the new articles reach the right customers? Each customer's top 10 after `catalog add`, scored against the
generator's truth.json (each article's category, each customer's favourite): a new article should appear for the
fans of its category and not for the others.

    python check_new.py RUN_DIR [--k 10]
"""
import argparse
import json
from pathlib import Path

from morec.recommend import RecommenderService

p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("run")
p.add_argument("--k", type=int, default=10)
args = p.parse_args()
truth = json.loads((Path(__file__).parent / "truth.json").read_text())
category, favourite = truth["category"], truth["favourite"]
service = RecommenderService.load(args.run)
fans = others = fans_reached = others_reached = 0
for customer, fav in favourite.items():
    top = service.recommend(user=customer, k=args.k)["items"]
    new = [category[r["id"]] for r in top if r["id"].startswith("N")]
    fans_reached += sum(c == fav for c in new) > 0
    others_reached += sum(c != fav for c in new) > 0
    fans += 1
print(f"customers with a new article of their favourite category in their top {args.k}: {fans_reached} of {fans}; "
      f"with a new article of another category: {others_reached} of {fans}")
