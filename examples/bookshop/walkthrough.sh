#!/usr/bin/env bash
# The guide's "Your own data, end to end" walk-through (docs/guide/own-data.md), run as written; its output is walkthrough.log.
#   bash examples/bookshop/walkthrough.sh 2>&1 | tee examples/bookshop/walkthrough.log
set -euo pipefail
cd "$(dirname "$0")"
rm -rf prepared runs export
say() { printf '\n$ %s\n' "$*"; }

say morec data prepare raw --out prepared/bookshop --option user_column=customer_id --option item_column=book_sku --option time_column=purchased_at
morec data prepare raw --out prepared/bookshop --option user_column=customer_id \
      --option item_column=book_sku --option time_column=purchased_at
say morec data stats prepared/bookshop
morec data stats prepared/bookshop

say python compare.py
python compare.py

say morec recommend runs/MoRec-seed1 --user C000 --k 5
morec recommend runs/MoRec-seed1 --user C000 --k 5
say morec recommend runs/MoRec-seed1 --history SKU-000,SKU-003 --k 3
morec recommend runs/MoRec-seed1 --history SKU-000,SKU-003 --k 3

say morec catalog add runs/MoRec-seed1 --items new_books.csv
morec catalog add runs/MoRec-seed1 --items new_books.csv
say morec recommend runs/MoRec-seed1 --user C000 --k 5
morec recommend runs/MoRec-seed1 --user C000 --k 5

say morec serve runs/MoRec-seed1 --port 8765 '&'
morec serve runs/MoRec-seed1 --port 8765 > serve.out 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null' EXIT
for _ in $(seq 120); do curl -sf localhost:8765/health > /dev/null && break; sleep 0.5; done
say curl -s localhost:8765/health
curl -s localhost:8765/health; echo
say "curl -s localhost:8765/recommend -H 'content-type: application/json' -d '{\"user\": \"C002\", \"k\": 3}'"
curl -s localhost:8765/recommend -H 'content-type: application/json' -d '{"user": "C002", "k": 3}'; echo
say "curl -s localhost:8765/recommend -H 'content-type: application/json' -d '{\"history\": [\"SKU-200\", \"SKU-201\"], \"k\": 3}'"
curl -s localhost:8765/recommend -H 'content-type: application/json' -d '{"history": ["SKU-200", "SKU-201"], "k": 3}'; echo
BODY='{"items": [{"sku": "NEW-7", "name": "Compost Tulips Returns", "blurb": "growing roses and tulips in a garden"}], "columns": {"sku": "book_sku", "name": "book_title"}}'
say "curl -s localhost:8765/items -H 'content-type: application/json' -d '$BODY'"
curl -s localhost:8765/items -H 'content-type: application/json' -d "$BODY"; echo
say "curl -s localhost:8765/recommend -H 'content-type: application/json' -d '{\"user\": \"C003\", \"k\": 3}'"
curl -s localhost:8765/recommend -H 'content-type: application/json' -d '{"user": "C003", "k": 3}'; echo
