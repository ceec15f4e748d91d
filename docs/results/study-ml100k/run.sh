#!/usr/bin/env bash
# `morec study` on MovieLens-100K with a 40-minute budget on 2 CPU cores: IDRec against MiniLM title arms
# (TS, Side, Side + ID, top-1), every arm at the fast SASRec recipe (morec/recipes.py), seeds added until each
# verdict against IDRec is decided or the budget is spent. Its output as it ran is run.log; the report is
# report/ (open study.html). Run from the repository root after
#   morec data fetch movielens-100k && morec data prepare data/raw/ml-100k --out data/prepared/ml-100k
#   bash docs/results/study-ml100k/run.sh
set -euo pipefail
MOREC=${MOREC:-morec}
OUT=docs/results/study-ml100k
$MOREC study data/prepared/ml-100k --out "$OUT" --budget "${BUDGET:-40m}" "$@"
