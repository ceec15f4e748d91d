#!/usr/bin/env bash
# A shop's own catalogue with photos, from its export to a served model that recommends new articles by their photo.
#   bash examples/fashion_shop/walkthrough.sh 2>&1 | tee examples/fashion_shop/walkthrough.log
# Sizes can be made smaller (tests/test_image_walkthrough.py runs it so, in CI): ARTICLES, CUSTOMERS, NEW, PHOTO_PX,
# IMAGE_SIZE (pixels the model sees), EPOCHS, PORT.
set -euo pipefail
cd "$(dirname "$0")"
rm -rf raw new_img new_articles.csv truth.json prepared runs serve.out
ARTICLES=${ARTICLES:-240} CUSTOMERS=${CUSTOMERS:-400} NEW=${NEW:-12} PHOTO_PX=${PHOTO_PX:-160}
IMAGE_SIZE=${IMAGE_SIZE:-96} EPOCHS=${EPOCHS:-20} PORT=${PORT:-8766}
say() { printf '\n$ %s\n' "$*"; }
run() { say "$@"; "$@"; }

run python make_shop.py --out raw --articles "$ARTICLES" --customers "$CUSTOMERS" --new "$NEW" --photo-px "$PHOTO_PX"

run morec data prepare raw --out prepared/shop --name shop --option user_column=customer_id \
      --option item_column=article_id --option time_column=ordered_at --option text_columns=name \
      --option image_column=image_path --prepare.image_missing=blank

# Two-stage: the ImageNet EfficientNet-Lite0's features of every photo are computed once (then cached with the
# dataset); only the layers above them train. The missing and corrupt photos prepare listed get a blank image.
run morec train --data=prepared/shop --out=runs/photos --model.encoder.kind=vision \
      --model.encoder.pretrained=efficientnet-lite0 --model.encoder.mode=frozen \
      --model.encoder.vision.image_size="$IMAGE_SIZE" \
      --train.epochs="$EPOCHS" --train.patience=5 --train.progress=false

run morec recommend runs/photos --user C001 --k 5

# New articles, never bought: their vectors come from their photos alone.
run morec catalog add runs/photos --items new_articles.csv --map image_path=image
run morec recommend runs/photos --user C001 --k 5
say python check_new.py runs/photos
python check_new.py runs/photos

say morec serve runs/photos --port "$PORT" '&'
morec serve runs/photos --port "$PORT" > serve.out 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null' EXIT
python - "$PORT" <<'PY'
import json, sys, time, urllib.request
base = f"http://localhost:{sys.argv[1]}"
for _ in range(240):
    try:
        health = urllib.request.urlopen(f"{base}/health").read().decode()
        break
    except OSError:
        time.sleep(0.5)
print(f"\n$ GET /health\n{health}")
body = json.dumps({"user": "C002", "k": 3}).encode()
req = urllib.request.Request(f"{base}/recommend", body, {"content-type": "application/json"})
print(f"\n$ POST /recommend {body.decode()}\n{urllib.request.urlopen(req).read().decode()}")
PY
