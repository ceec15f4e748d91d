"""How a comparison is written: Improv. with the interval that decided, p raw and adjusted, the level of
variation the interval covers, and what the seeds and users could detect."""
from __future__ import annotations

import argparse

from .paired import Paired
from .pvalues import PValue, format_p, format_pvalue


def _pct(v: float) -> str:
    return f"{100 * v:+.2f}%"


def format_improv(c: Paired, user_level: bool = False) -> str:
    """'+8.61% [+1.20%, +16.03%]': Improv. with its primary (or user-level) 95% interval, in percent; where
    Improv. has no bounded interval (few hits in A), the absolute B - A interval that then decides."""
    if c.improv is None and not user_level:
        return f"diff {c.diff:+.4f} [{c.diff_ci[0]:+.4f}, {c.diff_ci[1]:+.4f}]"
    ci = c.user_improv_ci if user_level else c.improv_ci
    text = _pct(c.improv) if c.improv is not None else ""
    if ci is not None:
        return text + f" [{_pct(ci[0])}, {_pct(ci[1])}]"
    low, high = c.user_diff_ci if user_level else c.diff_ci
    return text + f" (few hits: diff {c.diff:+.4f} [{low:+.4f}, {high:+.4f}])"


def p_text(c: Paired) -> str:
    """'p 0.012' (one test) or 'p 0.012, Holm 0.048'; with Monte-Carlo error where it is near alpha."""
    pv = PValue(c.p, c.p_mc[0], c.p_mc[1], c.p_draws, c.p_method)
    text = f"p {format_pvalue(pv, (c.alpha, c.alpha / max(c.family, 1)))}"
    if c.p_adj is not None:
        text += f", Holm {format_p(c.p_adj)}"
    return text


def p_cell(c: Paired) -> str:
    """A table's p cell: raw, and Holm-adjusted in parentheses when a family was adjusted."""
    return format_p(c.p) + (f" ({format_p(c.p_adj)})" if c.p_adj is not None else "")


def detail(c: Paired) -> str:
    """The interval's level, the user-only interval beside it, and the design numbers."""
    if c.provisional:
        parts = ["provisional: one seed in an arm, seed variation unmeasured"]
    else:
        parts = [f"seeds and users; given these trained models {format_improv(c, user_level=True)}, "
                 f"p {format_p(c.user_p)}"]
    if c.mde is not None:
        parts.append(f"detectable at these seeds and users: ±{100 * c.mde:.1f}%")
    if not c.provisional:
        need = lambda n: f"{n}" if n is not None else "not reachable by seeds"  # noqa: E731
        parts.append(f"seeds per arm to detect ±{100 * c.margin:g}%: {need(c.seeds_to_detect)}, "
                     f"to rule it out: {need(c.seeds_to_rule_out)}")
    return "; ".join(parts)


def metric_sentence(c: Paired) -> str:
    """'HR@10 worse (-15.69% [-24.25%, -6.46%], p 0.002, Holm 0.008; <detail>)'."""
    return f"{c.metric.upper()} {c.verdict} ({format_improv(c)}, {p_text(c)}; {detail(c)})"


def parse_margin(text: str) -> float:
    """'5%' or '0.05' -> 0.05 (an equivalence margin on Improv.)."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"--margin {text!r}: give a relative margin such as 5% or 0.05 (0 turns "
                                         "the equivalence check off)")
    return value
