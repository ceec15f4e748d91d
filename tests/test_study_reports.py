"""The committed study reports: each opens offline in a real browser and states its decision, and the
MovieLens-100K study agrees with the republished five-seed verdicts wherever it decides a direction."""
from __future__ import annotations

import html
import json
import re
import statistics
from pathlib import Path

import pytest

from browser import check_in_chromium
from test_recipes import load_bench

ROOT = Path(__file__).resolve().parents[1]
ML100K = ROOT / "docs/results/study-ml100k/report"
REPORTS = {"ml100k": ML100K, "study-shop": ROOT / "examples/study-shop/study/report"}
# the study's text arms -> their keys in the recipe benchmark, whose committed_default() names the committed
# default-budget runs of the same item representation (five seeds each)
REPUBLISHED = {"IDRec": "idrec", "Text TS (two-stage)": "ts", "Text Side": "side", "Text Side + ID": "side-id",
               "Text top-1 (top layer trained)": "top1"}
VERDICT = re.compile(r"^- (?P<arm>.+?) vs IDRec: \*\*(?P<verdict>[^*]+)\*\*, NDCG@10 (?P<improv>[+-][\d.]+)%", re.M)


def plain(text: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", text.replace("**", ""))).split())


@pytest.mark.parametrize("name", sorted(REPORTS))
def test_committed_report_renders_offline_with_its_decision(name, tmp_path):
    report = REPORTS[name]
    md = (report / "study.md").read_text(encoding="utf-8")
    decision = plain(md.split("\n\n")[1])  # the paragraph under the title
    assert decision.startswith("On ") and ("keep" in decision or "could not decide" in decision), decision
    page = (report / "study.html").read_text(encoding="utf-8")
    assert not re.search(r"""(?:src|href)=["'](?:https?:)?//""", page), "the page must open offline"
    dom = check_in_chromium(report / "study.html", tmp_path, ["Is content worth it on"])
    assert decision[:120] in plain(dom), decision[:120]


def mean_ndcg(arm: str) -> float:
    runs = load_bench("bench_recipes").committed_default(REPUBLISHED[arm])
    return statistics.mean(json.loads((run / "results.json").read_text())["test"]["ndcg@10"] for run in runs)


def test_ml100k_study_agrees_with_the_republished_verdicts_wherever_it_decides():
    """A study arm decided better or worse than IDRec must point the way the republished five-seed runs (the
    default budget) point; undecided arms are reported as such and need no agreement."""
    md = (ML100K / "study.md").read_text(encoding="utf-8")
    found = {m["arm"]: (m["verdict"], float(m["improv"])) for m in VERDICT.finditer(md)}
    assert {"Text TS (two-stage)", "Text Side", "Text Side + ID"} <= set(found), found
    idrec = mean_ndcg("IDRec")
    for arm, (verdict, improv) in found.items():
        republished = mean_ndcg(arm) - idrec
        if verdict in ("better", "worse"):
            assert (improv > 0) == (republished > 0), (arm, verdict, improv, republished)
            assert (verdict == "better") == (improv > 0), (arm, verdict, improv)
