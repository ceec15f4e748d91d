"""Tables and plots in the paper's shapes."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def format_table(rows: list[dict], columns: list[str], floats: str = "{:.4f}") -> str:
    """A Markdown table; floats formatted, other values as text."""
    def cell(v):
        return floats.format(v) if isinstance(v, float) else str(v)

    body = [[cell(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(b[i]) for b in body)) if body else len(c) for i, c in enumerate(columns)]
    line = lambda vals: "| " + " | ".join(v.ljust(w) for v, w in zip(vals, widths)) + " |"  # noqa: E731
    return "\n".join([line(columns), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, body)])


def results_rows(name: str, results: dict, ks: list[int]) -> list[dict]:
    """One row per split: HR@k / NDCG@k of a finished run."""
    rows = []
    for split in ("valid", "test"):
        row = {"model": name, "split": split}
        for k in ks:
            row[f"HR@{k}"] = results[split][f"hr@{k}"]
            row[f"NDCG@{k}"] = results[split][f"ndcg@{k}"]
        rows.append(row)
    return rows


def plot_item_popularity(train_item_counts: np.ndarray, path: str | Path, title: str = "") -> Path:
    """The paper's Figure 3: items sorted by training interactions, log-scaled counts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.sort(np.asarray(train_item_counts)[1:])[::-1]
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    ax.plot(np.arange(1, len(counts) + 1), np.maximum(counts, 0.8), lw=1.5)
    ax.set_yscale("log")
    ax.set_xlabel("items, most popular first")
    ax.set_ylabel("training interactions")
    ax.set_title(title or "item popularity")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
