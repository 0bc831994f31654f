"""Issue #17: auditor reports (intervention, history), print layout, 80-column CLI tables."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from store import Actor, EventFilter, Store, auc_interval, balanced_interval, wilson
from workbench.cli._audit import audit_app

DERM = Actor.from_oidc("sub-derm", "dermatologist", "Dr Ada Derm")
ENG = Actor.from_oidc("sub-eng", "engineer", "Eng Bo")
RATIONALE = "Ink markings <b>drive</b> melanoma calls; mask ink and patch."
CHROMIUM = Path("/usr/bin/chromium")

app = typer.Typer()
app.add_typer(audit_app, name="audit")
runner = CliRunner()


def _cav(concept: str, seed: int) -> dict[str, Any]:
    v = np.random.default_rng(seed).standard_normal(1280).astype("<f4")
    return {"concept_id": f"{concept}@1", "concept": concept, "layer": "pool", "model_id": "d7",
            "method": "pattern", "mu0": 0.1, "mu1": 1.2, "accuracy": 0.93, "n_present": 60,
            "n_absent": 60, "dim": 1280, "dtype": "float32",
            "vector_sha256": hashlib.sha256(v.tobytes()).hexdigest(),
            "vector_b64": base64.b64encode(v.tobytes()).decode("ascii")}


def _metrics(acc: float, shift: float) -> dict[str, Any]:
    return {"n": 384, "accuracy": acc, "balanced_accuracy": (0.71 + shift + 0.9) / 2,
            "sensitivity": 0.71 + shift,
            "specificity": 0.9, "auc": 0.8802083333333333 + shift / 2,
            "worst_group_accuracy": 0.42 + 2 * shift, "worst_group": "nevus / with patch",
            "clean_accuracy": 0.9, "positive_class": "melanoma", "n_pos": 128, "n_neg": 256,
            "worst_group_n": 31, "n_clean": 150,
            "class_recall": {"melanoma": [0.71 + shift, 128], "nevus": [0.9, 256]}}


def record_intervention(store: Store, i: int = 0) -> str:
    """A saved intervention as `workbench intervene --save` records it (realistic payloads)."""
    spec = {"kind": "intervention_spec", "spec_version": 1, "model_id": "d7", "layer": "pool",
            "scope": {"kind": "all"}, "note": "",
            "edits": [{"concept_id": c, "concept": c, "operation": "mask", "strength": 1.0,
                       "level": None, "cav": _cav(c, k + 10 * i)}
                      for k, c in enumerate(("ink", "patch"))]}
    iid = f"iv-{i:04d}"
    store.record_intervention(DERM, spec, intervention_id=iid, rationale=RATIONALE,
                              evidence={"description": "mask ink (1), mask patch (1) at pool"},
                              model_id="d7", concept="ink,patch")
    before, after = _metrics(0.8802083333333333, 0.0), _metrics(0.9010416666666666, 0.08)
    reliance = {"flip_rates": {"ink": {"before": 0.35, "after": 0.02, "reduction": 0.94, "n": 200,
                                       "to_class": "melanoma"},
                               "patch": {"before": 0.22, "after": 0.05, "reduction": 0.77,
                                         "n": 200, "to_class": "nevus"}},
                "tcav": {"layer": "pool", "runs": 10, "rows": [
                    {"concept": "ink", "class": "melanoma", "score_before": 0.91,
                     "score_after": 0.5, "significant_before": True, "significant_after": False}]}}
    store.append_event(DERM, "applied", spec=spec, rationale=RATIONALE, intervention_id=iid,
                       model_id="d7", concept="ink,patch",
                       evidence={"description": "mask ink (1), mask patch (1) at pool",
                                 "dataset": "dermsynth", "split": "test_debiased",
                                 "before": before, "after": after, "n_flipped": 12,
                                 "flipped_cases": [f"case-{k}" for k in range(12)],
                                 "reliance": reliance})
    store.record_effect(DERM, iid, {k: before[k] for k in ("accuracy", "auc")},
                        {k: after[k] for k in ("accuracy", "auc")}, reliance=reliance,
                        rationale=RATIONALE, model_id="d7")
    return iid


@pytest.fixture()
def ws(tmp_path: Path) -> Path:
    workspace = tmp_path / "ws"
    s = Store.for_workspace(workspace)
    with s.session():
        record_intervention(s)
    return workspace


# ------------------------------------------------------------------ intervals
def test_intervals_match_known_values() -> None:
    lo, hi = wilson(0.5, 100) or (0, 0)
    assert (round(lo, 4), round(hi, 4)) == (0.4038, 0.5962)  # Wilson 50/100
    lo, hi = auc_interval(0.8, 50, 50) or (0, 0)
    # Hanley & McNeil by hand: Q1 = .8/1.2, Q2 = 1.28/1.8,
    # Var = (.16 + 49 (Q1 - .64) + 49 (Q2 - .64)) / 2500 = 0.0019804 -> SE 0.04450
    assert hi - lo == pytest.approx(2 * 1.96 * 0.04450, abs=1e-3)
    assert balanced_interval({"a": [1.0, 10], "b": [1.0, 10]}) == (1.0, 1.0)
    assert wilson(0.5, None) is None and balanced_interval({}) is None


# ------------------------------------------------------------------ intervention report
def test_intervention_report_is_a_readable_summary(ws: Path) -> None:
    page = Store.for_workspace(ws).report_html("iv-0000")
    body = re.sub(r"<style>.*?</style>", "", page, flags=re.S)
    assert "Masked <em>ink</em> and masked <em>patch</em> at layer <em>pool</em>" in body
    assert "Dr Ada Derm (dermatologist)" in body
    assert "&lt;b&gt;drive&lt;/b&gt;" in body and "<b>drive</b>" not in body  # plain text
    assert "88% <span class='muted'>[84%, 91%]</span>" in body  # accuracy 338/384 with Wilson CI
    assert "0.88 <span class='muted'>[" in body and "128 + 256" in body
    assert "0.8802083333333333" not in body and "vector_b64" not in body
    assert not re.search(r"[A-Za-z0-9+/]{200,}", body)  # no base64 block
    assert "{&quot;" not in body and '{"' not in body  # no JSON dump
    assert "Chain verified up to head #3" in body and "Sign-off" in body
    assert "float32 (1280,) sha256" in body
    assert str(ws) not in page  # the server's path is not shown


def test_old_events_without_group_sizes_still_render(tmp_path: Path) -> None:
    s = Store(tmp_path / "old.duckdb")
    iv = s.record_intervention(DERM, {"op": "suppress", "concept": "ruler"}, rationale="old")
    s.record_effect(ENG, iv.intervention_id, {"auc": 0.8, "accuracy": 0.7},
                    {"auc": 0.82, "accuracy": 0.75}, reliance={"ruler": 0.05})
    page = s.report_html(iv.intervention_id)
    assert "Accuracy" in page and "70%" in page and "+5.0 pts" in page


def test_cli_report_and_history(ws: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    res = runner.invoke(app, ["audit", "report", "-w", str(ws), "-i", "iv-0000", "--out", str(out)])
    assert res.exit_code == 0, res.stderr
    assert "Intervention report" in out.read_text(encoding="utf-8")
    hist = tmp_path / "h.html"
    res = runner.invoke(app, ["audit", "report", "-w", str(ws), "--actor", "sub-derm", "--out",
                              str(hist)])
    assert res.exit_code == 0, res.stderr
    text = hist.read_text(encoding="utf-8")
    assert "actor = sub-derm" in text and "iv-0000" in text and "84% (+4.0)" in text


def test_history_report_of_20_interventions_is_fast(tmp_path: Path) -> None:
    s = Store(tmp_path / "store.duckdb")
    with s.session():
        for i in range(20):
            record_intervention(s, i)
    t0 = time.perf_counter()
    page = s.history_report_html(EventFilter())
    elapsed = time.perf_counter() - t0
    assert page.count("<code>iv-00") == 20
    assert elapsed < 2.0, elapsed


# ------------------------------------------------------------------ audit log at 80 columns
def test_audit_log_one_line_per_event_at_80_columns(ws: Path) -> None:
    s = Store.for_workspace(ws)
    s.append_event(DERM, "concept_named", concept="streaks", rationale="x " * 300)
    s.append_event(DERM, "concept_named", concept="=cmd|' /C calc'!A0", rationale="=HYPERLINK(x)")
    res = runner.invoke(app, ["audit", "log", "-w", str(ws)], env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.stderr
    lines = res.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    rows = [line for line in lines if re.match(r"^\s*\d+\s+\d{4}-\d\d-\d\d \d\d:\d\d ", line)]
    assert len(rows) == 5 and len(lines) <= 5 + 5  # title, header, rule, caption
    res = runner.invoke(app, ["audit", "log", "-w", str(ws), "--format", "json"])
    assert len(json.loads(res.stdout.splitlines()[-2])["rationale"]) == 600
    res = runner.invoke(app, ["audit", "log", "-w", str(ws), "--format", "csv"])
    cells = [c for row in csv.reader(io.StringIO(res.stdout)) for c in row]
    assert len(cells) == 6 * 11 and not [c for c in cells if c[:1] in ("=", "+", "-", "@")]


# ------------------------------------------------------------------ print to PDF in Chromium
@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed")
def test_intervention_report_prints_to_at_most_two_pages(ws: Path, tmp_path: Path) -> None:
    pytest.importorskip("playwright")
    from playwright.sync_api import sync_playwright

    page_html = Store.for_workspace(ws).report_html("iv-0000")
    pdf = tmp_path / "r.pdf"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        page = browser.new_page()
        page.set_content(page_html, wait_until="load")
        text = page.inner_text("body")
        page.pdf(path=str(pdf), format="A4")
        browser.close()
    data = pdf.read_bytes()
    n_pages = len(re.findall(rb"/Type\s*/Page(?!s)", data))
    assert 1 <= n_pages <= 2, n_pages
    assert "Ink markings <b>drive</b> melanoma calls" in text  # the rationale, as text
    assert re.search(r"88% \[84%, 91%\]", text) and "Chain verified up to head #3" in text
    assert "vector_b64" not in text and not re.search(r"[A-Za-z0-9+/]{200,}", text)


def test_fit_table_keeps_one_line_per_row_at_80_columns() -> None:
    import pandas as pd
    from rich.console import Console

    from workbench.cli._tables import print_fit_table

    df = pd.DataFrame({"concept": ["a_very_long_concept_name_indeed", "ink"], "class": ["melanoma"] * 2,
                       "score_mean": [0.91234, 0.5], "p_adjusted": [0.0001, 0.2],
                       "verdict": ["reliance on an artifact, " * 4, "none"],
                       "relation": ["x"] * 2, "clinically_relevant": [True, False],
                       "odds_ratio": [3.2, 1.1], "cav_accuracy": [0.9, 0.8], "stability": [1.0, 0.9]})
    con = Console(width=80, record=True, file=io.StringIO())
    print_fit_table(df, title="t", console=con)
    text = con.export_text()
    lines = text.splitlines()
    assert max(len(x) for x in lines) <= 80
    rows = [x for x in lines if x.lstrip().startswith(("a_very", "ink"))]
    assert len(rows) == 2 and "more columns:" in text


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed")
def test_cli_report_to_pdf(ws: Path, tmp_path: Path) -> None:
    pytest.importorskip("playwright")
    out = tmp_path / "r.pdf"
    res = runner.invoke(app, ["audit", "report", "-w", str(ws), "-i", "iv-0000", "--out", str(out)])
    assert res.exit_code == 0, res.stderr
    data = out.read_bytes()
    assert data.startswith(b"%PDF") and 1 <= len(re.findall(rb"/Type\s*/Page(?!s)", data)) <= 2
