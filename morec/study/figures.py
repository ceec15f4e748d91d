"""The study's four plots (matplotlib, PNG): accuracy per arm with seed error bars and the most-popular floor;
accuracy against time to best with the Pareto front; validation curves of every arm overlaid with best epochs
marked; new-item and cold-user accuracy per arm."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

METRIC = "ndcg@10"


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def accuracy_plot(summaries, path: Path, metric: str = METRIC) -> Path:
    trained = [s for s in summaries.values() if s.arm.trains]
    floor = next((s for s in summaries.values() if not s.arm.trains), None)
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(trained) + 1.6))
    y = np.arange(len(trained))
    ax.barh(y, [s.mean(metric) for s in trained], xerr=[s.std(metric) for s in trained], capsize=4,
            color=["#888" if s.arm.kind == "id" else "#3b7dd8" for s in trained])
    ax.set_yticks(y, [f"{s.arm.label} ({len(s.results)} seeds)" for s in trained])
    ax.invert_yaxis()
    if floor is not None:
        ax.axvline(floor.mean(metric), color="#c33", linestyle="--", label="most-popular floor")
        ax.legend(loc="lower right")
    ax.set_xlabel(f"test {metric.upper()} (mean ± std over seeds)")
    ax.set_title("Accuracy per arm")
    return _save(fig, path)


def pareto(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (less time, more accuracy), by time."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -np.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def cost_plot(summaries, path: Path, metric: str = METRIC) -> Path:
    arms = [s for s in summaries.values() if s.arm.trains and s.cost("seconds_to_best")]
    points = [(s.cost("seconds_to_best"), s.mean(metric)) for s in arms]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for s, (x, y) in zip(arms, points):
        ax.errorbar(x, y, yerr=s.std(metric), fmt="o", capsize=3, color="#888" if s.arm.kind == "id" else "#3b7dd8")
        ax.annotate(s.arm.label, (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8)
    front = pareto(points)
    if len(front) > 1:
        ax.plot([points[i][0] for i in front], [points[i][1] for i in front], color="#2a2", linestyle="-",
                label="Pareto front")
        ax.legend(loc="lower right")
    ax.set_xscale("log")
    from matplotlib.ticker import ScalarFormatter

    for axis in (ax.xaxis,):  # plain seconds, not 3x10^0
        axis.set_major_formatter(ScalarFormatter())
        axis.set_minor_formatter(ScalarFormatter())
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_xlabel("seconds to the best validation epoch (mean over seeds, log scale)")
    ax.set_ylabel(f"test {metric.upper()}")
    ax.set_title("Accuracy against cost")
    return _save(fig, path)


def curves_plot(summaries, path: Path, metric: str = METRIC) -> Path:
    fig, ax = plt.subplots(figsize=(9, 4.2))
    for s in summaries.values():
        if not s.curves:
            continue
        epochs = sorted(set.intersection(*[{e for e, _ in c} for c in s.curves]))
        if not epochs:
            continue
        mean = [np.mean([dict(c)[e] for c in s.curves]) for e in epochs]
        line, = ax.plot(epochs, mean, label=s.arm.label)
        best = int(np.argmax(mean))
        ax.plot(epochs[best], mean[best], "o", color=line.get_color())
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"valid {metric.upper()} (mean over seeds)")
    ax.set_title("Validation curves (dot: best epoch)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, path)


def subsets_plot(summaries, path: Path, metric: str = "hr@10") -> Path | None:
    names = [n for n in ("new", "cold") if any(n in s.subsets for s in summaries.values())]
    if not names:
        return None
    arms = list(summaries.values())
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(arms) + 1.6))
    y = np.arange(len(arms))
    height = 0.8 / len(names)
    titles = {"new": "new items (target never trained on)", "cold": "cold users (short histories)"}
    for j, n in enumerate(names):
        ax.barh(y + j * height, [s.subsets.get(n, {}).get(metric, 0.0) for s in arms], height, label=titles[n])
    ax.set_yticks(y + height * (len(names) - 1) / 2, [s.arm.label for s in arms])
    ax.invert_yaxis()
    ax.set_xlabel(f"test {metric.upper()} (mean over seeds)")
    ax.set_title("New items and cold users")
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)
