#!/usr/bin/env bash
# `morec study` on a generated shop: 1,500 customers, 500 articles whose titles and images carry their topic, and
# 30 articles held out of training (each only ever some customer's latest purchase: the new-item setting).
# The shop is `morec data synth` (morec/data/synthetic.py): content explains taste, IDs carry popularity and
# follow-up purchases. Its output as it ran is run.log; the report is study/report/ (open study.html).
#   bash examples/study-shop/run.sh            (about 15 minutes on 2 CPU cores)
set -euo pipefail
cd "$(dirname "$0")"
MOREC=${MOREC:-morec}
BUDGET=${BUDGET:-15m}
USERS=${USERS:-1500}
ITEMS=${ITEMS:-500}
rm -rf raw prepared
$MOREC data synth raw --synth.n_users=$USERS --synth.n_items=$ITEMS --synth.n_new_items=30 --synth.image_size=32 --synth.seed=11
$MOREC data prepare raw --out prepared --name study-shop
$MOREC study prepared --out study --budget "$BUDGET" "$@"
