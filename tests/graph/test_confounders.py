"""Ranked confounder report (fast): DermSynth tables + synthetic TCAV, derm7pt format, CLI."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from concepts import (
    ARTIFACTS,
    CRITERIA,
    ClassifierModel,
    DataError,
    Dataset,
    DatasetInfo,
    Workspace,
)
from concepts.dermsynth import DermSynthConfig, parse_confounder, sample_dermsynth
from concepts.discovery import attribute_class_table
from graph import confounder_report, workspace_confounders
from graph._confounder_rows import RELEVANCE_WEIGHTS
from graph._confounders import CONFOUNDER_COLUMNS, rank_confounders

PAIRINGS = [
    (("ink", "melanoma"), ("patch", "nevus")),  # DermSynth's default
    (("ruler", "nevus"), ("hair", "melanoma")),
    (("dark_corner", "melanoma"), ("gel_bubble", "nevus")),
]


def _cases(pairing: tuple[tuple[str, str], ...], n: int = 1000, seed: int = 0) -> pd.DataFrame:
    cfg = DermSynthConfig(n_images=n, seed=seed, concept_examples=2, random_pool=2,
                          confounders=tuple(parse_confounder(f"{a}:{c}:0.6") for a, c in pairing))
    return sample_dermsynth(cfg)[0]


def _tcav(classes: tuple[str, ...] = ("melanoma", "nevus"), *, relied: dict[tuple[str, str], float],
          layers: tuple[str, ...] = ("block10", "block15")) -> pd.DataFrame:
    """A TCAV table: every criterion relied on for melanoma (aligned), the given (concept, class)
    pairs with the given effects, everything else not significant."""
    rows = []
    rng = np.random.default_rng(0)
    for concept in (*CRITERIA, *ARTIFACTS):
        for cls in classes:
            for layer in layers:
                eff = relied.get((concept, cls))
                if eff is None and concept in CRITERIA and cls == "melanoma":
                    eff = 0.3
                sig = eff is not None
                e = eff if eff is not None else float(rng.normal(0, 0.03))
                rows.append({
                    "concept": concept, "group": "criterion" if concept in CRITERIA else "artifact",
                    "class": cls, "layer": layer, "score_mean": 0.5 + e, "score_std": 0.05,
                    "random_mean": 0.5, "effect": e, "p_value": 1e-6 if sig else 0.5,
                    "p_adjusted": 1e-5 if sig else 1.0, "cav_accuracy": 0.9, "stability": 1.0,
                    "significant": sig, "unstable": False,
                })
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------- ranking
@pytest.mark.parametrize("pairing", PAIRINGS, ids=lambda p: "+".join(f"{a}:{c}" for a, c in p))
def test_planted_confounders_rank_first_and_second(pairing: tuple[tuple[str, str], ...]) -> None:
    cases = _cases(pairing)
    cooc = attribute_class_table(cases)
    planted = set(pairing)
    # co-occurrence + graph only
    rep = rank_confounders(cooc)
    assert set(zip(rep["concept"][:2], rep["class"][:2], strict=True)) == planted
    assert rep["score"].iloc[1] > 2 * rep["score"].iloc[2]
    # with a synthetic TCAV table that also flags a non-planted artifact and relies on criteria
    other = next(a for a in ARTIFACTS if a not in {p[0] for p in pairing})
    relied = {p: 0.25 for p in pairing} | {(other, "melanoma"): 0.2}
    rep2 = rank_confounders(cooc, _tcav(relied=relied))
    assert set(zip(rep2["concept"][:2], rep2["class"][:2], strict=True)) == planted
    assert rep2["tcav_significant"][:2].all()
    assert (rep2.loc[:1, "reliance"] == 0.25).all()
    # a non-planted artifact the class logit is sensitive to, but that does not co-occur: score 0
    other_row = rep2[(rep2.concept == other) & (rep2["class"] == "melanoma")].iloc[0]
    assert other_row["tcav_significant"] and other_row["score"] == 0
    # criteria ride with melanoma strongly but are clinically relevant: score 0
    crit = rep2[rep2["concept"].isin(CRITERIA)]
    assert (crit["score"] == 0).all() and crit["clinically_relevant"].all()


def test_score_formula_and_columns() -> None:
    cases = _cases(PAIRINGS[0])
    rep = rank_confounders(attribute_class_table(cases), _tcav(relied={("ink", "melanoma"): 0.4}))
    assert list(rep.columns) == list(CONFOUNDER_COLUMNS)
    r = rep.iloc[0]
    assert (r["concept"], r["class"]) == ("ink", "melanoma")
    expected = RELEVANCE_WEIGHTS["irrelevant"] * math.log(r["or_ci_low"]) * 0.4
    assert r["score"] == pytest.approx(expected)
    assert r["association"] == pytest.approx(math.log(r["or_ci_low"]))
    assert r["reliance_strength"] == pytest.approx(0.4)
    assert r["relation"] == "irrelevant" and not r["clinically_relevant"]
    assert "sensitive to it" in r["evidence"] and "not a causal test" in r["evidence"]
    assert "artifact" in r["evidence"]
    assert rep["rank"].tolist() == list(range(1, len(rep) + 1))
    assert (np.diff(rep["score"].to_numpy()) <= 1e-12).all()


def test_unstable_tcav_and_tcav_only_concepts() -> None:
    cases = _cases(PAIRINGS[0])
    tc = _tcav(relied={("ink", "melanoma"): 0.4})
    tc.loc[tc.concept == "ink", "unstable"] = True
    extra = tc.iloc[:2].copy()
    extra["concept"], extra["group"], extra["class"] = "blue_marks", "custom", "melanoma"
    extra["effect"], extra["significant"], extra["unstable"] = 0.3, True, False
    rep = rank_confounders(attribute_class_table(cases), pd.concat([tc, extra], ignore_index=True))
    ink = rep[(rep.concept == "ink") & (rep["class"] == "melanoma")].iloc[0]
    assert ink["reliance_strength"] == 0 and not ink["tcav_significant"]
    custom = rep[rep.concept == "blue_marks"].iloc[0]
    assert custom["relation"] == "unknown" and custom["relevance_weight"] == 0.5
    # no measured association: the co-occurrence factor is 0, whatever the sensitivity
    assert custom["score"] == 0 and custom["association"] == 0
    assert custom["lift"] is None or math.isnan(custom["lift"])
    assert "co-occurrence unmeasured" in custom["evidence"]
    # unstable ink: tested, no evidence of sensitivity -> 0 although it co-occurs strongly
    assert ink["score"] == 0 and ink["association"] > 1


def _swap(pair_a: tuple[str, str], pair_b: tuple[str, str], cooc: pd.DataFrame) -> list[tuple[str, str]]:
    rep = rank_confounders(cooc, _tcav(relied={pair_a: 0.3}))
    return list(zip(rep["concept"], rep["class"], strict=True))


def test_reliance_changes_the_order() -> None:
    """Two artifacts co-occur with their classes; only the one the logit is sensitive to leads.

    Whichever of the two the TCAV table supports ranks first, the other (co-occurring but
    ignored) falls below it and below every row with positive score: co-occurrence alone does
    not make a confounder once reliance has been measured.
    """
    cooc = attribute_class_table(_cases(PAIRINGS[0]))
    ink, patch = ("ink", "melanoma"), ("patch", "nevus")
    order_ink = _swap(ink, patch, cooc)
    order_patch = _swap(patch, ink, cooc)
    assert order_ink[0] == ink and order_patch[0] == patch
    assert order_ink.index(patch) > order_ink.index(ink)
    assert order_patch.index(ink) > order_patch.index(patch)
    # without TCAV (sensitivity unknown) both lead on co-occurrence: ink's odds ratio is larger or not,
    # but the pair is the top two
    bare = rank_confounders(cooc)
    assert set(zip(bare["concept"][:2], bare["class"][:2], strict=True)) == {ink, patch}
    assert "no TCAV results" in bare["evidence"].iloc[0]
    # a shuffled reliance table (effects moved to other concepts) changes the top row
    tc = _tcav(relied={ink: 0.3, patch: 0.05})
    shuffled = tc.assign(concept=tc["concept"].map({"ink": "hair", "hair": "ink"}).fillna(tc["concept"]))
    top = rank_confounders(cooc, tc).iloc[0]
    top_s = rank_confounders(cooc, shuffled).iloc[0]
    assert (top["concept"], top["class"]) == ink and (top_s["concept"], top_s["class"]) == patch


def test_named_cluster_association_enters_on_equal_footing() -> None:
    """An unannotated concept with a held-out association outranks an annotated artifact when its
    evidence is stronger."""
    cooc = attribute_class_table(_cases(PAIRINGS[0]))
    ink = cooc[(cooc.attribute == "ink") & (cooc["class"] == "melanoma") & (cooc.split == "train")].iloc[0]
    assoc = pd.DataFrame([{
        **{c: ink[c] for c in cooc.columns}, "attribute": "violet_marks", "column": "violet_marks",
        "split": "val", "kind": "artifact", "or_ci_low": ink["or_ci_low"] * 2,
        "odds_ratio": ink["odds_ratio"] * 2, "note": "named cluster 3 of block10",
    }])
    relied = {("ink", "melanoma"): 0.3, ("violet_marks", "melanoma"): 0.3}
    tc = _tcav(relied=relied)
    extra = tc[tc.concept == "ink"].assign(concept="violet_marks", group="custom")
    rep = rank_confounders(cooc, pd.concat([tc, extra], ignore_index=True), associations=assoc)
    assert (rep["concept"].iloc[0], rep["class"].iloc[0]) == ("violet_marks", "melanoma")
    v = rep.iloc[0]
    assert v["split"] == "val" and v["relevance_weight"] == 1.0
    assert v["score"] == pytest.approx(math.log(ink["or_ci_low"] * 2) * 0.3)
    assert rep[rep.concept == "ink"].index[0] == 1
    with pytest.raises(DataError, match="associations"):
        rank_confounders(cooc, associations=assoc.drop(columns=["or_ci_low"]))


def test_relevance_weights_for_metadata_and_contradicting_criteria() -> None:
    cases = _cases(PAIRINGS[0])
    # a melanoma criterion made to ride with nevus: relevant but contradicting the graph
    rng = np.random.default_rng(1)
    cases["regression_structures"] = np.where(cases.label == "nevus", rng.random(len(cases)) < 0.7,
                                              rng.random(len(cases)) < 0.1).astype(int)
    cooc = attribute_class_table(cases, metadata=["skin_tone", "seven_point_score"])
    rep = rank_confounders(cooc)
    rs = rep[(rep.concept == "regression_structures") & (rep["class"] == "nevus")].iloc[0]
    assert rs["relation"] == "counter_indicates" and rs["clinically_relevant"]
    assert rs["relevance_weight"] == RELEVANCE_WEIGHTS["contradicts"] and rs["score"] > 0
    tone = rep[rep.concept.str.startswith("skin_tone=")]
    assert (tone["relation"] == "unknown").all() and (tone["relevance_weight"] == 0.5).all()
    score = rep[rep.concept.str.startswith("seven_point_score=")]
    assert len(score) and (score["score"] == 0).all() and score["clinically_relevant"].all()
    assert set(zip(rep["concept"][:2], rep["class"][:2], strict=True)) == set(PAIRINGS[0])


def test_no_planted_pair_is_hard_coded() -> None:
    """The ranking never names an artifact: any pairing is found from the data alone."""
    root = Path(__file__).resolve().parents[2]
    patterns = ["concepts/discovery/_cooccurrence*.py", "concepts/discovery/_cluster*.py",
                "graph/_confounder*.py", "workbench/cli/_confounders*.py"]
    files = sorted({p.relative_to(root) for pat in patterns for p in root.glob(pat)})
    assert len(files) >= 10, files  # the co-occurrence, cluster and confounder modules are all read
    for f in files:
        text = (root / f).read_text()
        assert not re.search(r"""["'](ink|patch|ruler|hair|dark_corner|gel_bubble)["']""", text), f
        assert "planted_confounders" not in text and ".extra" not in text, f  # never reads the config


def test_derm7pt_format_report(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    n = 60
    mel = np.arange(n) < 24
    cases = pd.DataFrame({
        "case_id": [str(i) for i in range(n)], "label": np.where(mel, "melanoma", "non_melanoma"),
        "split": np.where(np.arange(n) % 5 == 0, "test", "train"),
        **{c: (rng.random(n) < np.where(mel, 0.6, 0.15)).astype(int) for c in CRITERIA},
        "diagnosis": np.where(mel, "melanoma", rng.choice(["clark nevus", "blue nevus"], n)),
        "location": rng.choice(["back", "acral", "head neck"], n),
        "sex": rng.choice(["male", "female"], n),
    })
    info = DatasetInfo("d7", "derm7pt", ("melanoma", "non_melanoma"), 8, concepts=CRITERIA,
                       metadata=("diagnosis", "location", "sex"))
    ds = Dataset.write(tmp_path / "d7", info, cases, np.zeros((n, 8, 8, 3), np.uint8))
    rep = confounder_report(ds)
    assert len(rep) and rep["split"].eq("train").all()
    diag = rep[rep.concept.str.startswith("diagnosis=")]
    assert len(diag) and (diag["score"] == 0).all() and not diag["testable"].any()
    assert "refines the label" in diag["evidence"].iloc[0]
    crit = rep[rep.concept.isin(CRITERIA)]
    assert (crit["score"] == 0).all()
    meta = rep[rep.concept.str.startswith(("location=", "sex="))]
    assert (meta["relevance_weight"] == 0.5).all()


def test_errors() -> None:
    cases = _cases(PAIRINGS[0], n=200)
    cooc = attribute_class_table(cases)
    with pytest.raises(DataError, match="lacks"):
        rank_confounders(cooc.drop(columns=["or_ci_low"]))
    with pytest.raises(DataError, match="split 'test'"):
        rank_confounders(cooc, split="test")
    with pytest.raises(DataError, match="TCAV table lacks"):
        rank_confounders(cooc, pd.DataFrame({"concept": ["x"]}))
    with pytest.raises(DataError, match="no TCAV results"):
        rank_confounders(cooc, "/nonexistent/tcav.parquet")
    assert rank_confounders(cooc, split="all")["split"].eq("all").all()


# ---------------------------------------------------------------------- workspace + CLI
def _workspace(tmp_path: Path, *, tcav: bool = True, model: bool = False) -> Workspace:
    cases = _cases(PAIRINGS[1], n=300)
    ws = Workspace(tmp_path / "ws").ensure()
    info = DatasetInfo("dermsynth", "dermsynth", ("melanoma", "nevus"), 16, concepts=CRITERIA,
                       artifacts=ARTIFACTS, metadata=("seven_point_score", "skin_tone"))
    rng = np.random.default_rng(0)
    Dataset.write(ws.datasets_dir / "dermsynth", info, cases,
                  rng.integers(0, 255, (len(cases), 16, 16, 3), dtype=np.uint8))
    ws.update_manifest(dataset="dermsynth", layers=["conv2"])
    if tcav:
        _tcav(relied={("ruler", "nevus"): 0.2}).to_parquet(ws.results_dir / "tcav.parquet")
    if model:
        ClassifierModel.build("tiny-cnn", ("melanoma", "nevus")).save(ws.models_dir / "demo")
        ws.update_manifest(model="demo")
    return ws


def _app() -> typer.Typer:
    from workbench.cli import app

    return app


def test_workspace_report_reads_tcav(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    rep = workspace_confounders(ws)
    top = rep.iloc[0]
    assert (top["concept"], top["class"]) == ("ruler", "nevus") and top["tcav_significant"]
    # hair co-occurs with melanoma as strongly, but no TCAV sensitivity: below ruler, score 0;
    # among the zero-score rows the best-supported association comes first
    second = rep.iloc[1]
    assert (second["concept"], second["class"]) == ("hair", "melanoma")
    assert second["score"] == 0 and second["association"] > 0 and top["score"] > 0
    with pytest.raises(Exception, match="not a workspace"):
        workspace_confounders(tmp_path / "nothing")


def test_cli_confounders_json_and_table(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    runner = CliRunner()
    res = runner.invoke(_app(), ["confounders", "--workspace", str(ws.root), "--format", "json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert isinstance(data, list) and data[0]["rank"] == 1
    for key in ("rank", "concept", "class", "lift", "odds_ratio", "p_adjusted", "reliance",
                "clinically_relevant", "score"):
        assert key in data[0]
    assert isinstance(data[0]["clinically_relevant"], bool)
    assert {(d["concept"], d["class"]) for d in data[:2]} == set(PAIRINGS[1])
    assert data[0]["reliance"] == pytest.approx(0.2) and data[0]["concept"] == "ruler"
    res = runner.invoke(_app(), ["confounders", "--workspace", str(ws.root), "--top", "5"])
    assert res.exit_code == 0 and "Ranked confounders" in res.stdout and "ruler" in res.stdout
    res = runner.invoke(_app(), ["confounders", "-w", str(ws.root), "--top", "5"], env={"COLUMNS": "80"})
    lines = res.stdout.splitlines()
    assert max(len(x) for x in lines) <= 80 and sum(x.lstrip().startswith(("1 ", "2 ")) for x in lines) == 2
    for table in ("cooccurrence", "pairs"):
        res = runner.invoke(_app(), ["confounders", "-w", str(ws.root), "--table", table,
                                     "--split", "train", "--format", "csv", "--correction", "bh"])
        assert res.exit_code == 0, res.output
        assert len(res.stdout.splitlines()) > 5
    res = runner.invoke(_app(), ["confounders", "--workspace", str(tmp_path / "none")])
    assert res.exit_code == 1 and "not a workspace" in res.output
    res = runner.invoke(_app(), ["confounders", "-w", str(ws.root), "--max-twins", "0"])
    assert res.exit_code == 1 and "--max-twins" in res.output


def test_cli_clusters_and_name_cluster(tmp_path: Path) -> None:
    from store import Store

    ws = _workspace(tmp_path, tcav=False, model=True)
    runner = CliRunner()
    res = runner.invoke(_app(), ["clusters", "-w", str(ws.root), "--format", "json", "--k-max", "4"])
    assert res.exit_code == 0, res.output
    clusters = json.loads(res.stdout)
    assert clusters and {"cluster", "purity", "lift", "p_adjusted", "exemplar_case_ids"} <= set(clusters[0])
    assert (ws.results_dir / "clusters.json").is_file()
    from concepts.discovery import ClusteringResult

    saved = ClusteringResult.load(ws.results_dir / "clusters.json")
    assert saved.split == "train" and saved.test_split == "val" and saved.layer == "pool"
    assert saved.holdout is not None and saved.holdout.any()
    bad = runner.invoke(_app(), ["clusters", "-w", str(ws.root), "--test-split", "train"])
    assert bad.exit_code == 1 and "must differ" in bad.output
    cid = str(clusters[0]["cluster"])
    res = runner.invoke(_app(), ["name-cluster", "-w", str(ws.root), "--cluster", cid, "--name",
                                 "odd_texture", "--description", "odd texture"])
    assert res.exit_code == 0, res.output
    assert "added concept 'odd_texture'" in res.stdout
    ev = Store.for_workspace(ws.root).events_frame()
    assert (ev["action"] == "concept_named").sum() == 1
    res = runner.invoke(_app(), ["name-cluster", "-w", str(ws.root), "--cluster", "999", "--name",
                                 "x", "--no-record"])
    assert res.exit_code == 1 and "no cluster 999" in res.output


# ---------------------------------------------------------------------- causal reliance (flip rates)
def _flips(rates: dict[tuple[str, str], float], n: int = 150) -> pd.DataFrame:
    """A flip-rate table: the given (artifact, class) rates, 0 for every other artifact x class."""
    rows = [{"concept": a, "class": c, "flip_rate": rates.get((a, c), 0.0), "n": n}
            for a in ARTIFACTS for c in ("melanoma", "nevus")]
    return pd.DataFrame(rows)


def test_flip_rate_reliance_changes_the_order() -> None:
    """Co-occurrence is fixed; the counterfactual flip rate alone decides which artifact leads,
    and it outranks TCAV where both exist (causal evidence first)."""
    cooc = attribute_class_table(_cases(PAIRINGS[0]))
    ink, patch = ("ink", "melanoma"), ("patch", "nevus")

    def order(flips: pd.DataFrame, tcav: pd.DataFrame | None = None) -> list[tuple[str, str]]:
        rep = rank_confounders(cooc, tcav, flip_rates=flips)
        return list(zip(rep["concept"], rep["class"], strict=True))

    o_ink = order(_flips({ink: 0.4}))
    o_patch = order(_flips({patch: 0.4}))
    assert o_ink[0] == ink and o_patch[0] == patch
    assert o_ink.index(patch) > o_ink.index(ink) and o_patch.index(ink) > o_patch.index(patch)
    rep = rank_confounders(cooc, _tcav(relied={patch: 0.3}), flip_rates=_flips({ink: 0.4}))
    row = {(r["concept"], r["class"]): r for r in rep.to_dict("records")}
    # TCAV calls patch sensitive, but adding the patch flips no prediction: R = 0 from the flip rate
    assert row[patch]["reliance_source"] == "flip_rate" and row[patch]["reliance_strength"] == 0
    assert row[patch]["score"] == 0 and row[patch]["reliance"] == pytest.approx(0.3)
    assert row[ink]["score"] == pytest.approx(row[ink]["association"] * 0.4)
    assert "flip rate" in row[ink]["evidence"] and row[ink]["flip_n"] == 150
    # criteria have no twins: their reliance comes from TCAV (or none)
    assert row[("pigment_network", "melanoma")]["reliance_source"] in ("tcav", "none")
    assert set(rep["reliance_source"]) <= {"flip_rate", "tcav", "none"}
    # a flip rate with n = 0 (or not finite) is no evidence: that pair falls back to TCAV
    fl = _flips({ink: 0.4}).assign(n=lambda d: np.where(d["concept"] == "patch", 0, d["n"]))
    rep2 = rank_confounders(cooc, _tcav(relied={patch: 0.3}), flip_rates=fl)
    p2 = rep2[(rep2["concept"] == "patch") & (rep2["class"] == "nevus")].iloc[0]
    assert p2["reliance_source"] == "tcav" and p2["score"] > 0
    with pytest.raises(DataError, match="flip-rate table lacks"):
        rank_confounders(cooc, flip_rates=pd.DataFrame({"concept": ["ink"]}))


def test_artifact_flip_table_paired_twins(tmp_path: Path) -> None:
    """Real-data twins (a twin column): flips toward the class the twins look like are counted
    only among originals predicted otherwise."""
    from concepts.discovery import artifact_flip_table

    n = 40
    marked = np.arange(n) % 2 == 1
    cases = pd.DataFrame({
        "case_id": [f"c{i}" for i in range(n)], "label": ["ab"[i % 2] for i in range(n)],
        "split": ["val"] * n, "mark": marked.astype(int),
        "mark_twin": [f"c{i + 1}" if not marked[i] else "" for i in range(n)],
    })
    images = np.where(marked[:, None, None, None], 200, 20).astype(np.uint8) * np.ones((n, 8, 8, 3), np.uint8)
    info = DatasetInfo("real", "folder", ("a", "b"), 8, artifacts=("mark",))
    ds = Dataset.write(tmp_path / "real", info, cases, images)
    tab = artifact_flip_table(lambda im: (im.mean(axis=(1, 2, 3)) < 100).astype(int), ds, max_twins=5)
    a = tab[tab["class"] == "a"].iloc[0]
    b = tab[tab["class"] == "b"].iloc[0]
    assert a["n_twins"] == 5 and a["n"] == 5 and a["flip_rate"] == 1.0 and a["method"].startswith("pairs")
    assert b["n"] == 0 and math.isnan(b["flip_rate"])


def test_workspace_flip_rates_are_measured_for_every_artifact_and_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import graph._confounders as gc

    ws = _workspace(tmp_path, model=True)
    rep = workspace_confounders(ws, max_twins=12)
    arts = rep[rep["reliance_source"] == "flip_rate"]
    # every annotated artifact measured (toward the class(es) some original was not predicted as)
    assert set(arts["concept"]) == set(ARTIFACTS)
    assert (arts["flip_n"] <= 12).all() and arts["flip_rate"].between(0, 1).all()
    cache = ws.results_dir / gc.FLIP_CACHE_FILE
    entries = json.loads(cache.read_text())
    assert len(entries) == 1 and len(next(iter(entries.values()))) == len(ARTIFACTS) * 2

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("recomputed despite the cache")

    monkeypatch.setattr(gc, "artifact_flip_table", boom)
    again = workspace_confounders(ws, max_twins=12)
    pd.testing.assert_frame_equal(rep, again)
    with pytest.raises(AssertionError, match="recomputed"):
        workspace_confounders(ws, max_twins=11)  # another key: recomputed
    cache.write_text("[not json")  # a malformed cache is recomputed, never trusted
    with pytest.raises(AssertionError, match="recomputed"):
        workspace_confounders(ws, max_twins=12)
    monkeypatch.undo()
    no_twins = workspace_confounders(ws, flip_rates=False)
    assert "flip_rate" not in set(no_twins["reliance_source"])
