"""The study's report: a decision paragraph in plain words, four plots, the numbers per arm and how to reproduce
them, as Markdown (``study.md`` with PNG files) and one self-contained HTML page (``study.html``, plots embedded,
opens offline)."""
from __future__ import annotations

import base64
import html
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from ..checkpoint import atomic_write_text
from ..evaluate import metrics_from_ranks, most_popular_ranks, subset_metrics
from .decide import ArmVerdict
from .figures import accuracy_plot, cost_plot, curves_plot, subsets_plot
from .plan import Arm, format_duration

METRICS = ("hr@10", "ndcg@10")


@dataclass
class ArmSummary:
    arm: Arm
    dirs: list[Path] = field(default_factory=list)
    results: list[dict] = field(default_factory=list)
    test: dict[str, list[float]] = field(default_factory=dict)  # metric -> one value per seed
    subsets: dict[str, dict] = field(default_factory=dict)  # cold / new -> {"users": n, metric: mean over seeds}
    curves: list[list[tuple[int, float]]] = field(default_factory=list)  # per seed: (epoch, valid metric)

    def mean(self, metric: str) -> float:
        return statistics.fmean(self.test[metric]) if self.test.get(metric) else float("nan")

    def std(self, metric: str) -> float:
        vals = self.test.get(metric) or []
        return statistics.stdev(vals) if len(vals) > 1 else 0.0

    def cost(self, key: str) -> float | None:
        vals = [r.get(key) for r in self.results if r.get(key) is not None]
        return statistics.fmean(vals) if vals else None


def _curve(run_dir: Path, metric: str) -> list[tuple[int, float]]:
    points = []
    for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if f"valid_{metric}" in rec:
            points.append((rec["epoch"], rec[f"valid_{metric}"]))
    return points


def summarize_arm(arm: Arm, dirs: list[Path], primary: str) -> ArmSummary:
    from ..run_pool import results_of

    s = ArmSummary(arm, dirs)
    for d in dirs:
        res = results_of(d)
        if not res or not res.get("test"):
            continue
        s.results.append(res)
        for m in METRICS:
            s.test.setdefault(m, []).append(res["test"][m])
        s.curves.append(_curve(d, primary))
    for name in ("cold", "new"):
        subs = [r["test_subsets"][name] for r in s.results if (r.get("test_subsets") or {}).get(name, {}).get("users")]
        if subs:
            s.subsets[name] = {"users": subs[0]["users"], **{m: statistics.fmean(x[m] for x in subs) for m in METRICS}}
    return s


def floor_summary(arm: Arm, ds) -> ArmSummary:
    ranks = most_popular_ranks(ds, "test")
    s = ArmSummary(arm)
    for m, v in metrics_from_ranks(ranks, [10]).items():
        s.test[m] = [v]
    subs = subset_metrics(ranks, ds, "test", [10], ["cold", "new"])
    s.subsets = {k: v for k, v in subs.items() if v["users"]}
    return s


def _pct(x: float) -> str:
    return f"{x * 100:+.2f}%"


def verdict_sentence(s: ArmSummary, v: ArmVerdict) -> str:
    t = v.test
    lo, hi = t.improv_ci if t.improv_ci else (None, None)
    interval = f" [{_pct(lo)}, {_pct(hi)}]" if lo is not None else ""
    level = "seeds and users" if getattr(t, "level", "") == "two-level" or min(t.seeds_a, t.seeds_b) >= 2 else \
        "users only: one seed, so seed variation is unmeasured and the verdict is provisional"
    improv = _pct(t.improv) if t.improv is not None else "n/a"
    p = getattr(t, "p_adj", None)
    p_text = f"Holm-adjusted p {p:.3g}" if p is not None else f"p {t.p:.3g}"
    return (f"{s.arm.label} vs IDRec: **{v.verdict}**, {v.metric.upper()} {improv}{interval} "
            f"({t.seeds_a} vs {t.seeds_b} seeds, {t.users} users; the interval covers {level}; {p_text})")


def cost_phrase(s: ArmSummary, ref: ArmSummary) -> str:
    parts = []
    for key, what in (("seconds_to_best", "time to best"), ("peak_memory_bytes", "peak memory"),
                      ("trainable_parameters", "trainable parameters")):
        a, b = s.cost(key), ref.cost(key)
        if a is not None and b:
            parts.append(f"{a / b:.2f}x IDRec's {what}")
    return ", ".join(parts)


def new_items_sentence(summaries: dict[str, ArmSummary], new: dict[str, ArmVerdict]) -> str:
    """Items never trained on: the best content arm's new-item HR@10 against IDRec's, with its verdict."""
    best = max(new, key=lambda k: new[k].test.mean_b)
    t = new[best].test
    lo, hi = t.diff_ci
    return (f"Items never trained on ({t.users} test users whose target no user trained on): "
            f"{summaries[best].arm.label} hits {t.mean_b * 100:.2f}% at HR@10, IDRec {t.mean_a * 100:.2f}% (an ID model "
            f"has no learned vector for an unseen item): **{new[best].verdict}**, {(t.mean_b - t.mean_a) * 100:+.2f} "
            f"points [{lo * 100:+.2f}, {hi * 100:+.2f}] (Holm over {len(new)} arm(s) on these users).")


def decision(summaries: dict[str, ArmSummary], verdicts: dict[str, ArmVerdict], dataset: str, margin: float,
             new_items: dict[str, ArmVerdict] | None = None) -> str:
    """The decision paragraph, generated from the verdicts: which representation, by how much, how sure, at what
    cost; never a winner where the statistics name none."""
    ref = summaries["idrec"]
    better = [k for k, v in verdicts.items() if v.verdict == "better"]
    equivalent = [k for k, v in verdicts.items() if v.verdict.startswith("equivalent")]
    worse = [k for k, v in verdicts.items() if v.verdict == "worse"]
    open_ = [k for k in verdicts if k not in better + equivalent + worse]
    label = lambda k: summaries[k].arm.label  # noqa: E731
    if better:
        best = max(better, key=lambda k: summaries[k].mean(verdicts[k].metric))
        head = (f"On {dataset}, use **{label(best)}**: it beats IDs. {verdict_sentence(summaries[best], verdicts[best])}. "
                f"It costs {cost_phrase(summaries[best], ref) or 'no recorded cost'}.")
    elif equivalent:
        head = (f"On {dataset}, content matches IDs: {', '.join(label(k) for k in equivalent)} "
                f"{'is' if len(equivalent) == 1 else 'are'} equivalent to IDRec within ±{margin * 100:g}%, and no arm "
                "beats it. Choose by cost or by the need to recommend items never trained on.")
    elif open_ and not worse:
        head = (f"On {dataset}, the study could not decide: no content arm is detectably better or worse than IDRec, "
                f"nor shown equivalent within ±{margin * 100:g}%. More seeds (a larger --budget) would narrow it.")
    elif verdicts:
        head = f"On {dataset}, keep **IDs**: no content arm beats IDRec over all test users."
    else:
        head = f"On {dataset}, only IDRec was trained: the dataset holds no item content to compare with."
    new_better = [k for k, v in (new_items or {}).items() if v.verdict == "better"]
    if new_better and not better:
        best_new = max(new_better, key=lambda k: new_items[k].test.mean_b)
        head += (f" For items never trained on, though, **{label(best_new)}** is better than IDRec, which cannot score "
                 "them: a catalogue that adds items often should weigh both.")
    lines = [head] + [f"- {verdict_sentence(summaries[k], verdicts[k])}" for k in verdicts]
    if new_items:
        lines.append(f"- {new_items_sentence(summaries, new_items)}")
    return "\n".join(lines)


def _table(summaries: dict[str, ArmSummary]) -> list[dict]:
    rows = []
    ref = summaries["idrec"]
    for s in summaries.values():
        row = {"arm": s.arm.label, "seeds": str(len(s.results) or "-")}
        for m in METRICS:
            row[f"test {m.upper()}"] = f"{s.mean(m):.4f} ± {s.std(m):.4f}" if len(s.test.get(m, [])) > 1 \
                else f"{s.mean(m):.4f}"
        tb = s.cost("seconds_to_best")
        row["time to best"] = f"{format_duration(tb)} ({tb / ref.cost('seconds_to_best'):.2f}x)" if tb and ref.cost(
            "seconds_to_best") else "-"
        mem = s.cost("peak_memory_bytes")
        row["peak memory"] = f"{mem / 2**20:.0f} MB" if mem else "-"
        params = s.cost("trainable_parameters")
        row["trainable params"] = f"{params:,.0f}" if params else "-"
        rows.append(row)
    return rows


def _markdown_table(rows: list[dict]) -> str:
    cols = list(rows[0])
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(out)


def write_report(out: Path, summaries: dict[str, ArmSummary], verdicts: dict[str, ArmVerdict], context: dict,
                 new_items: dict[str, ArmVerdict] | None = None) -> Path:
    """study.md, study.html and the plots under ``out``; returns the HTML path."""
    out.mkdir(parents=True, exist_ok=True)
    text = decision(summaries, verdicts, context["dataset"], context["margin"], new_items)
    figures = {"accuracy": accuracy_plot(summaries, out / "accuracy_per_arm.png"),
               "cost": cost_plot(summaries, out / "accuracy_vs_cost.png"),
               "curves": curves_plot(summaries, out / "validation_curves.png")}
    subsets = subsets_plot(summaries, out / "new_items_and_cold_users.png")
    if subsets:
        figures["subsets"] = subsets
    rows = _table(summaries)
    md = [f"# Is content worth it on {context['dataset']}?", "", text, "", "## Every arm", "", _markdown_table(rows), "",
          f"Test metrics are means ± standard deviations over seeds. Verdicts: {context['method']}", ""]
    md += [f"![{k}]({p.name})" for k, p in figures.items()]
    md += ["", "## Reproduce", "", "```bash", context["command"], "```", "",
           "Each number comes from these run summaries (config, results, per-epoch curves, per-user ranks):", ""]
    md += [f"- {s.arm.label}: " + ", ".join(f"`{_rel(d, out)}`" for d in s.dirs) for s in summaries.values() if s.dirs]
    md += ["", *[f"Note: {n}" for n in context.get("notes", [])]]
    atomic_write_text(out / "study.md", "\n".join(md) + "\n")
    page = out / "study.html"
    atomic_write_text(page, _html(text, rows, figures, summaries, context, out))
    return page


def _inline_md(text: str) -> str:
    import re

    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(text))


def _rel(path: Path, start: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(start).resolve()))
    except ValueError:
        return str(path)


def _html(text: str, rows: list[dict], figures: dict[str, Path], summaries, context: dict, page_dir: Path) -> str:
    paras = [line for line in text.splitlines()]
    body = [f"<p class='decision'>{_inline_md(paras[0])}</p>", "<ul>"]
    body += [f"<li>{_inline_md(p[2:])}</li>" for p in paras[1:]] + ["</ul>"]
    cols = list(rows[0])
    table = ["<table><thead><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in cols) + "</tr></thead><tbody>"]
    table += ["<tr>" + "".join(f"<td>{html.escape(str(r[c]))}</td>" for c in cols) + "</tr>" for r in rows]
    table.append("</tbody></table>")
    imgs = [f"<figure><img alt='{k}' src='data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}'></figure>"
            for k, p in figures.items()]
    runs = "".join(f"<li>{html.escape(s.arm.label)}: {html.escape(', '.join(_rel(d, page_dir) for d in s.dirs))}</li>"
                   for s in summaries.values() if s.dirs)
    notes = "".join(f"<p class='note'>{html.escape(n)}</p>" for n in context.get("notes", []))
    style = ("body{font-family:sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}"
             ".decision{font-size:1.2rem}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3rem .6rem}"
             "img{max-width:100%}figure{margin:1rem 0}.note{color:#555}pre{background:#f4f4f4;padding:.6rem}")
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Is content worth it on "
            f"{html.escape(context['dataset'])}?</title><style>{style}</style></head><body>"
            f"<h1>Is content worth it on {html.escape(context['dataset'])}?</h1>{''.join(body)}"
            f"<h2>Every arm</h2>{''.join(table)}<p>Test metrics: mean ± standard deviation over seeds. "
            f"Verdicts: {html.escape(context['method'])}</p>{''.join(imgs)}"
            f"<h2>Reproduce</h2><pre>{html.escape(context['command'])}</pre><ul>{runs}</ul>{notes}</body></html>\n")
