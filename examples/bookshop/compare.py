"""IDRec vs MoRec (MiniLM reading book_title and blurb, two-stage features) on the bookshop, 3 seeds, same budget."""
import json

from morec import api

MOREC = ["--model.encoder.kind=text", "--model.encoder.pretrained=minilm", "--model.encoder.mode=frozen"]
BUDGET = ["--train.epochs=100", "--train.patience=10", "--train.progress=false", "--train.threads=1"]

verdict = api.compare("prepared/bookshop", "runs", ["--model.encoder.kind=id"], MOREC, seeds=[1, 2, 3],
                      common=BUDGET, log=lambda line: None)
print(json.dumps(verdict, indent=1))
