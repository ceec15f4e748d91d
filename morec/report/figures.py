"""The paper's figures (3-5) from runs and datasets, and the dataset plots of `morec data stats`, as PNG."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..data.dataset import PreparedDataset
from .discovery import RunInfo, best_on_valid, encoder_label, resolve_data, training_label, training_order
from .tables import backbone_order, first_seen, percent


def _plt():
    """pyplot with the file-only Agg backend, chosen before pyplot first loads (no display needed); loaded on the
    first plot, as most commands that import the report draw none."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_figure(fig, path: str | Path) -> Path:
    """Lay out, write (parent folders made) and close one figure; returns its path."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    _plt().close(fig)
    return path


def plot_sequence_lengths(lengths: np.ndarray, path: str | Path, title: str = "") -> Path:
    """Histogram of users' sequence lengths (interactions per user, all splits), median marked."""
    plt = _plt()
    lengths = np.asarray(lengths)
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    bins = np.arange(lengths.min(), lengths.max() + 2) if lengths.max() - lengths.min() < 60 else 50
    ax.hist(lengths, bins=bins, color="tab:blue", alpha=0.8)
    ax.axvline(float(np.median(lengths)), color="k", ls="--", lw=1, label=f"median {np.median(lengths):g}")
    ax.set_xlabel("interactions per user")
    ax.set_ylabel("users")
    ax.set_title(title or "sequence lengths")
    ax.legend()
    ax.grid(alpha=0.3)
    return _save_figure(fig, path)


def plot_item_popularity(train_item_counts: np.ndarray, path: str | Path, title: str = "") -> Path:
    """The paper's Figure 3: items sorted by training interactions, log-scaled counts."""
    plt = _plt()
    counts = np.sort(np.asarray(train_item_counts)[1:])[::-1]
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    ax.plot(np.arange(1, len(counts) + 1), np.maximum(counts, 0.8), lw=1.5)
    ax.set_yscale("log")
    ax.set_xlabel("items, most popular first")
    ax.set_ylabel("training interactions")
    ax.set_title(title or "item popularity")
    ax.grid(alpha=0.3)
    return _save_figure(fig, path)



def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", text).strip("-") or "x"


def accuracy_cells(runs: list[RunInfo]) -> tuple[dict, list[str]]:
    """(dataset, backbone, item encoder, training, fusion) -> the run chosen on validation, for every item encoder
    and training mode in the regular setting; and a note for each run left out, saying why."""
    groups: dict = {}
    notes = []
    for r in runs:
        if not r.regular:
            notes.append(f"{r.dir.name}: not the regular setting (warm / new-item / subsampled: Table 9)")
        elif not r.usable or not (r.results.get("test") or {}):
            notes.append(f"{r.dir.name}: {'collapsed' if r.collapsed else 'no test metrics'}")
        else:
            groups.setdefault((r.dataset, r.backbone, encoder_label(r.enc), training_label(r.enc), r.fusion), []).append(r)
    return {key: best_on_valid(members) for key, members in groups.items()}, notes


def plot_accuracy_by_encoder(runs: list[RunInfo], out: Path, k: int = 10) -> list[Path]:
    """Figure 4: test NDCG@K of every item encoder and training mode (ID, TS, TS-DNN, Side, LoRA, E2E, fusion with
    ID), each the configuration best on validation, with its spread over seeds; one PNG per dataset, bars grouped
    by backbone. Runs left out are named under the plot."""
    plt = _plt()
    cells, notes = accuracy_cells(runs)
    written = []
    for ds in first_seen(c[0] for c in cells):
        mine = sorted(((c, r) for c, r in cells.items() if c[0] == ds),
                      key=lambda cr: (backbone_order(cr[0][1]), not cr[1].is_id, cr[0][2], training_order(cr[1]), cr[0][4] != "none", cr[0][4]))
        labels = [f"{c[2]}\n{c[3]}" + (f" +ID {c[4]}" if c[4] != "none" else "") + f"\n{c[1]}" for c, r in mine]
        values = [percent(r.results["test"], f"ndcg@{k}") or 0.0 for _, r in mine]
        # one seed has no spread: no error bar rather than a zero-width one
        errors = [100 * s if (s := r.spread("test", f"ndcg@{k}")) is not None else np.nan for _, r in mine]
        left_out = [n for n in notes if n]
        fig, ax = plt.subplots(figsize=(max(4.5, 1.0 * len(mine) + 1.5), 3.8 + 0.16 * min(len(left_out), 6)), dpi=120)
        colors = ["#888888" if r.is_id else ("#6a9f3b" if r.fusion != "none" else "#3b75af") for _, r in mine]
        ax.bar(range(len(mine)), values, yerr=errors, capsize=3, color=colors)
        ax.set_xticks(range(len(mine)), labels, fontsize=7)
        ax.set_ylabel(f"test NDCG@{k} (%)")
        ax.set_title(f"{ds}: NDCG@{k} by item encoder", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        if left_out:
            shown = left_out[:5] + ([f"... and {len(left_out) - 5} more"] if len(left_out) > 5 else [])
            fig.text(0.01, 0.01, "left out: " + "; ".join(shown), fontsize=6, wrap=True)
        written.append(_save_figure(fig, out / f"figure4_accuracy_by_encoder_{_slug(ds)}.png"))
    return written


def plot_lr_curves(runs: list[RunInfo], out: Path, k: int = 10) -> list[Path]:
    """Figure 5: validation NDCG@K per epoch, one line per (lr, encoder lr) pair, one PNG per (dataset,
    backbone, item encoder, training). Collapsed runs included (marked)."""
    plt = _plt()
    metric = f"valid_ndcg@{k}"
    groups: dict = {}
    for r in runs:
        if any(metric in rec for rec in r.log):
            groups.setdefault((r.dataset, r.backbone, encoder_label(r.enc), training_label(r.enc), r.fusion), []).append(r)
    written = []
    for (ds, bb, label, training, fusion), members in groups.items():
        fig, ax = plt.subplots(figsize=(5, 3.4), dpi=120)
        pairs = [r.lrs for r in members]
        for r in sorted(members, key=lambda r: (r.lrs, str(r.dir))):
            pts = [(rec["epoch"], 100 * rec[metric]) for rec in r.log if metric in rec]
            lr, enc_lr = r.lrs
            # the encoder's own learning rate only where encoder weights train (not ID, TS or Side)
            trains_encoder = not r.is_id and r.enc.get("mode", "e2e") in ("e2e", "top", "lora")
            name = f"R={lr:g}" + (f", M={enc_lr:g}" if trains_encoder else "")
            if pairs.count(r.lrs) > 1:
                name += f" ({r.dir.name})"
            if r.collapsed:
                name += " collapsed"
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=2.5, lw=1.2, label=name)
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"valid NDCG@{k} (%)")
        ax.set_title(f"{ds}: {label} {training} {bb}" + (f" +ID {fusion}" if fusion != "none" else ""), fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        written.append(_save_figure(fig, out / f"figure5_lr_curves_{_slug(ds)}_{_slug(bb)}_{_slug(label)}_{_slug(training)}"
                                              f"{'' if fusion == 'none' else '_' + fusion}.png"))
    return written


def plot_datasets_popularity(runs: list[RunInfo], out: Path) -> list[Path]:
    """Figure 3 for every dataset the runs used that can still be read."""
    written, seen, names = [], set(), set()
    for r in runs:
        data = resolve_data(str(r.config.get("data", "")), r.dir)
        if data is None or data.resolve() in seen:
            continue
        seen.add(data.resolve())
        try:
            ds = PreparedDataset(data)
            counts = ds.train_item_counts
        except Exception:  # a manifest without its arrays (copied runs): no plot, not an error
            continue
        # named as the tables name the dataset; two prepared variants of one dataset keep their folder apart
        slug = _slug(ds.name) if ds.name not in names else \
            _slug(data.name if data.name.startswith(ds.name) else f"{ds.name}-{data.name}")
        names.add(ds.name)
        written.append(plot_item_popularity(counts, out / f"figure3_item_popularity_{slug}.png",
                                            f"{ds.name}: item popularity (training split)"))
    return written
