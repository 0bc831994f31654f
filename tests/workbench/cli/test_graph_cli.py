"""``workbench graph score|export|align`` through typer's CliRunner."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from concepts.importers import import_derm7pt
from graph import from_node_link, read_graph
from tests.support.tcav_tables import EXPECTED, dermsynth_tcav
from workbench.cli._graph import graph_app

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "derm7pt"
META = FIXTURE / "meta" / "meta.csv"

app = typer.Typer()
app.add_typer(graph_app, name="graph")


@app.command()
def version() -> None:
    """A second command, so that ``graph`` is a real sub-command as in the workbench CLI."""


runner = CliRunner()


def _flat(text: str) -> str:
    """Whitespace-normalised text (rich may wrap long error lines at the terminal width)."""
    return " ".join(text.split())


def _fails_cleanly(result: object, message: str) -> None:
    assert result.exit_code == 1, result.output  # type: ignore[attr-defined]
    err = result.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in result.output and "Traceback" not in err  # type: ignore[attr-defined]
    assert _flat(err).startswith("error:")
    assert message in _flat(err), err


# ---------------------------------------------------------------------- score
def test_score_csv_computes_from_raw_labels(tmp_path: Path) -> None:
    root = tmp_path / "rel"
    shutil.copytree(FIXTURE, root)
    meta = pd.read_csv(root / "meta" / "meta.csv")
    truth = meta["seven_point_score"].tolist()
    meta["seven_point_score"] = 0  # the command must not copy the file's score column
    meta.to_csv(root / "meta" / "meta.csv", index=False)
    r = runner.invoke(app, ["graph", "score", "--derm7pt", str(root / "meta" / "meta.csv")])
    assert r.exit_code == 0, r.output
    lines = r.stdout.strip().splitlines()
    assert lines[0] == "case_num,seven_point_score,melanoma"
    rows = [tuple(int(x) for x in line.split(",")) for line in lines[1:]]
    assert [s for _, s, _ in rows] == truth
    assert [c for c, _, _ in rows] == list(range(1, 17))
    assert [m for _, _, m in rows] == [1] * 6 + [0] * 10
    assert not any(line.startswith("#") for line in lines)  # stdout stays a clean CSV
    assert r.stderr.strip() == (
        "# rule score>=3: sensitivity 0.833, specificity 0.800 (n=16, melanoma=6, TP=5 FN=1 TN=8 FP=2)"
    )


def test_score_json() -> None:
    r = runner.invoke(app, ["graph", "score", "--derm7pt", str(META), "--format", "json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["cases"][0] == {"case_num": 1, "seven_point_score": 10, "melanoma": 1}
    assert len(data["cases"]) == 16
    s = data["summary"]
    assert (s["tp"], s["fn"], s["tn"], s["fp"], s["threshold"]) == (5, 1, 8, 2, 3)
    assert s["sensitivity"] == pytest.approx(5 / 6) and s["specificity"] == pytest.approx(0.8)


def test_score_errors(tmp_path: Path) -> None:
    _fails_cleanly(runner.invoke(app, ["graph", "score", "--derm7pt", str(tmp_path / "meta.csv")]),
                   "derm7pt metadata file not found")
    bad = tmp_path / "meta.csv"
    meta = pd.read_csv(META, dtype=str, keep_default_na=False)
    meta.loc[4, "pigmentation"] = "speckled"
    meta.to_csv(bad, index=False)
    _fails_cleanly(runner.invoke(app, ["graph", "score", "--derm7pt", str(bad)]),
                   "meta.csv row 4 (case_num 5), column 'pigmentation': unknown label 'speckled'")
    r = runner.invoke(app, ["graph", "score", "--derm7pt", str(META), "--format", "xml"])
    assert r.exit_code == 2  # typer's own usage error


# ---------------------------------------------------------------------- export
def test_export_json_to_stdout() -> None:
    r = runner.invoke(app, ["graph", "export", "--format", "json"])
    assert r.exit_code == 0, r.output
    g = from_node_link(json.loads(r.stdout))
    assert g.expected_relation("ink", "melanoma").relation == "irrelevant"
    assert g.nx.number_of_nodes() == 49


def test_export_graphml_file_with_cooccurrence_and_taxonomy(tmp_path: Path) -> None:
    tax = tmp_path / "tax.csv"
    tax.write_text("type,name,parent\ndiagnosis,basal cell carcinoma,non_melanoma\n")
    out = tmp_path / "sub" / "graph.graphml"
    r = runner.invoke(app, ["graph", "export", "--format", "graphml", "--out", str(out),
                            "--derm7pt", str(META), "--taxonomy", str(tax)])
    assert r.exit_code == 0, r.output
    assert f"wrote {out}" in _flat(r.stderr)
    g = read_graph(out)
    assert g.nx.edges["pigment_network", "dots_and_globules", "co_occurs"]["n"] == 16
    assert g.expected_relation("streaks", "basal cell carcinoma").relation == "counter_indicates"


def test_export_cooccurrence_from_a_dataset(tmp_path: Path) -> None:
    import_derm7pt(FIXTURE, tmp_path / "d7", image_size=8)
    r = runner.invoke(app, ["graph", "export", "--dataset", str(tmp_path / "d7")])
    assert r.exit_code == 0, r.output
    g = from_node_link(json.loads(r.stdout))
    assert g.nx.edges["pigment_network", "streaks", "co_occurs"]["provenance"] == "d7"


def test_export_errors(tmp_path: Path) -> None:
    tax = tmp_path / "tax.json"
    tax.write_text('[{"type": "sub_label", "name": "wide", "parent": "nail_fold"}]')
    _fails_cleanly(runner.invoke(app, ["graph", "export", "--taxonomy", str(tax)]),
                   "tax.json entry 0: unknown node 'nail_fold' in field 'parent'")
    _fails_cleanly(runner.invoke(app, ["graph", "export", "--dataset", str(tmp_path / "none")]),
                   "no data set at")


# ---------------------------------------------------------------------- align
def _workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / "results").mkdir(parents=True)
    dermsynth_tcav().to_parquet(ws / "results" / "tcav.parquet")
    return ws


def test_align_json(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    evidence = tmp_path / "cooc.csv"
    pd.DataFrame({"attribute": ["ink"], "class": ["melanoma"], "lift": [2.5], "odds_ratio": [9.0],
                  "p_adjusted": [1e-8]}).to_csv(evidence, index=False)
    r = runner.invoke(app, ["graph", "align", "--workspace", str(ws), "--format", "json",
                            "--cooccurrence", str(evidence)])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert {f["concept"]: f["category"] for f in data["findings"]} == EXPECTED
    assert [f["concept"] for f in data["findings"][:2]] == ["ink", "patch"]
    assert data["findings"][0]["cooc_lift"] == 2.5
    assert data["summary"]["confounder"] == 2


def test_align_table(tmp_path: Path) -> None:
    r = runner.invoke(app, ["graph", "align", "--workspace", str(_workspace(tmp_path))])
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert "ink" in out and "patch" in out
    assert out.strip().splitlines()[-1] == (
        "confounder: 2, contradictory: 1, neglected: 4, unreviewed: 1, aligned: 6"
    )


def test_align_errors(tmp_path: Path) -> None:
    _fails_cleanly(runner.invoke(app, ["graph", "align", "--workspace", str(tmp_path / "empty")]),
                   "run `workbench tcav --workspace")
    ws = _workspace(tmp_path)
    (ws / "results" / "tcav.parquet").write_bytes(b"garbage")
    _fails_cleanly(runner.invoke(app, ["graph", "align", "--workspace", str(ws)]),
                   "cannot read the TCAV results")
    pd.DataFrame({"concept": ["ink"]}).to_parquet(ws / "results" / "tcav.parquet")
    _fails_cleanly(runner.invoke(app, ["graph", "align", "--workspace", str(ws)]),
                   "the TCAV results table lacks the column(s)")
    ws2 = _workspace(tmp_path / "b")
    _fails_cleanly(runner.invoke(app, ["graph", "align", "--workspace", str(ws2), "--cooccurrence",
                                       str(tmp_path / "nope.csv")]),
                   "file not found")
