"""Figure 4 of `morec report` shows every item encoder and training mode (ID, TS, TS-DNN, Side, fusion), names each
run it leaves out, and Figure 5's legends give an encoder learning rate only where encoder weights train."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from morec.report.discovery import find_runs
from morec.report.figures import accuracy_cells, plot_accuracy_by_encoder, plot_lr_curves

ENCODERS = {
    "id": {"kind": "id"},
    "ts": {"kind": "text", "pretrained": "minilm", "mode": "frozen"},
    "ts-dnn": {"kind": "text", "pretrained": "minilm", "mode": "frozen", "mlp_layers": 2},
    "side": {"kind": "text", "pretrained": "minilm", "mode": "side"},
    "side-id": {"kind": "text", "pretrained": "minilm", "mode": "side", "fusion": "add"},
    "img-ts": {"kind": "vision", "pretrained": "efficientnet-lite0", "mode": "frozen"},
}


def write_run(root: Path, name: str, encoder: dict, ndcg: float, prepare: dict | None = None) -> Path:
    run = root / name
    run.mkdir(parents=True)
    config = {"data": "", "model": {"backbone": "sasrec", "encoder": encoder}, "train": {"lr": 1e-3, "seed": 1},
              "eval": {"select_metric": "ndcg@10"}}
    results = {"config": config, "valid": {"hr@10": 2 * ndcg, "ndcg@10": ndcg}, "test": {"hr@10": 2 * ndcg, "ndcg@10": ndcg},
               "best_epoch": 3, "stop_reason": "patience",
               "dataset": {"name": "shop", "prepare": prepare or {}}}
    (run / "results.json").write_text(json.dumps(results))
    (run / "metrics.jsonl").write_text("\n".join(json.dumps({"epoch": e, "valid_ndcg@10": ndcg * (e + 1) / 4})
                                                 for e in range(4)))
    return run


def test_figure4_has_every_encoder_and_mode_and_names_what_it_leaves_out(tmp_path):
    for i, (name, enc) in enumerate(ENCODERS.items()):
        write_run(tmp_path, name, enc, 0.05 + 0.01 * i)
    write_run(tmp_path, "new-items-ts", ENCODERS["ts"], 0.2, prepare={"new_items": 0.1})
    runs = find_runs([tmp_path])
    cells, notes = accuracy_cells(runs)
    trainings = sorted((c[2], c[3], c[4]) for c in cells)
    assert trainings == sorted([("IDRec", "ID", "none"), ("minilm", "TS", "none"), ("minilm", "TS-DNN 2", "none"),
                                ("minilm", "Side", "none"), ("minilm", "Side", "add"),
                                ("efficientnet-lite0", "TS", "none")])
    assert notes == ["new-items-ts: not the regular setting (warm / new-item / subsampled: Table 9)"]
    [png] = plot_accuracy_by_encoder(runs, tmp_path / "figs")
    pixels = np.asarray(Image.open(png).convert("L"), dtype=float)
    assert pixels.std() > 10
    # one bar per cell: the figure widens with them (1 inch per bar + margins at 120 dpi)
    assert Image.open(png).size[0] >= 120 * (len(cells) + 1.5) - 2


def test_figure5_legend_has_no_encoder_lr_for_frozen_or_side(tmp_path, monkeypatch):
    write_run(tmp_path, "ts", ENCODERS["ts"], 0.05)
    write_run(tmp_path, "e2e", {"kind": "text", "pretrained": "minilm", "mode": "e2e", "lr": 5e-5}, 0.05)
    labels = []
    import matplotlib.axes

    real = matplotlib.axes.Axes.plot

    def spy(self, *args, **kw):
        if "label" in kw:
            labels.append(kw["label"])
        return real(self, *args, **kw)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", spy)
    plot_lr_curves(find_runs([tmp_path]), tmp_path / "figs")
    assert sorted(labels) == ["R=0.001", "R=0.001, M=5e-05"]
