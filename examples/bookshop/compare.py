"""IDRec vs MoRec (MiniLM reading book_title and blurb, two-stage features) on the bookshop, 3 seeds, same budget."""
import json

from morec import api

MOREC = ["--model.encoder.kind=text", "--model.encoder.pretrained=minilm", "--model.encoder.mode=frozen"]
BUDGET = ["--train.epochs=100", "--train.patience=10", "--train.progress=false", "--train.threads=1"]

verdict = api.compare("prepared/bookshop", "runs", ["--model.encoder.kind=id"], MOREC, seeds=[1, 2, 3],
                      common=BUDGET, log=lambda line: None)
print(json.dumps(verdict, indent=1))
ids, mos = verdict["IDRec"], verdict["MoRec"]
print(f"{verdict['metric']}: IDRec {ids['mean']:.4f} (seeds {', '.join(f'{v:.4f}' for v in ids['per_seed'])}), "
      f"MoRec {mos['mean']:.4f} ({', '.join(f'{v:.4f}' for v in mos['per_seed'])})")
low, high = verdict["ci95"]
print(f"difference {verdict['difference']:+.4f}, 95% CI [{low:.4f}, {high:.4f}], permutation p = {verdict['p']:.2f}, "
      f"Improv. {verdict['improv']:+.1%}: \"{verdict['verdict']}\"")
