"""Unsupervised route on synthetic activations with a planted cluster, and naming a cluster."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from concepts import ConceptError, DataError, Dataset, DatasetInfo, Workspace
from concepts.discovery import (
    CLUSTER_COLUMNS,
    ClusteringResult,
    cluster_activations,
    name_cluster,
    pool_activations,
)


def _planted(n_a: int = 120, n_b: int = 180, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectors: class offset on dims 0-2; an 'artifact' (+4 on dims 5-9) in 50% of class a and
    3% of class b. Returns (features, labels, artifact flags)."""
    rng = np.random.default_rng(seed)
    lab = np.array(["a"] * n_a + ["b"] * n_b, dtype=object)
    x = rng.normal(size=(n_a + n_b, 20))
    x[lab == "a", :3] += 1.5
    art = np.where(lab == "a", rng.random(len(lab)) < 0.5, rng.random(len(lab)) < 0.03)
    x[art, 5:10] += 4.0
    return x, lab, art


def _conv_planted(seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Conv maps (N, 8, 4, 4): the artifact is a small hot spot in channels 2-3 at one position."""
    rng = np.random.default_rng(seed)
    n = 200
    lab = np.array(["mel"] * 80 + ["nev"] * 120, dtype=object)
    x = rng.normal(size=(n, 8, 4, 4)).astype(np.float32)
    x[lab == "mel", 0] += 0.8
    art = np.where(lab == "mel", rng.random(n) < 0.5, rng.random(n) < 0.04)
    for i in np.flatnonzero(art):
        r, c = rng.integers(0, 4, 2)
        x[i, 2:4, r, c] += 12.0
    return x, lab, art


def test_within_class_recovers_the_planted_cluster() -> None:
    x, lab, art = _planted()
    res = cluster_activations(x, lab, classes=("a", "b"))
    assert list(res.clusters.columns) == list(CLUSTER_COLUMNS)
    top = res.clusters.iloc[0]
    members = res.member_mask(int(top["cluster"]))
    assert art[members].mean() >= 0.8
    assert top["class"] == "a" and top["group"] == "a" and bool(top["suspicious"])
    assert top["lift"] > 1.5 and top["p_adjusted"] < 1e-6
    # the stated k criterion, and a silhouette row per candidate k and class
    assert "silhouette" in res.k_selection and "2..12" in res.k_selection
    assert set(res.silhouette["group"]) == {"a", "b"}
    assert res.k["a"] == int(res.silhouette[res.silhouette.group == "a"].sort_values("silhouette").k.iloc[-1])
    # clusters partition the discovery cases; held-out cases are only tested, never clustered
    hold = res.holdout
    assert hold is not None and 0 < hold.sum() < len(x)
    assert (res.assignments[~hold] >= 0).all() and (res.assignments[hold] == -1).all()
    assert res.clusters["size"].sum() == (~hold).sum()
    assert (res.clusters["n_test"] == hold.sum()).all()
    assert res.clusters["rank"].tolist() == list(range(1, len(res.clusters) + 1))


def test_global_scope_and_spectral() -> None:
    x, lab, art = _planted()
    for kw in ({"scope": "global"}, {"method": "spectral", "k": 3}, {"scope": "global", "method": "spectral", "k_range": (2, 5)}):
        res = cluster_activations(x, lab, **kw)  # type: ignore[arg-type]
        best = max(art[res.member_mask(c)].mean() for c in res.clusters["cluster"])
        assert best >= 0.8, kw
        assert res.method == kw.get("method", "kmeans")


def test_conv_maps_max_pooling_finds_small_hot_spots() -> None:
    x, lab, art = _conv_planted()
    assert pool_activations(x, "mean").shape == (200, 8)
    assert pool_activations(x, "meanmax").shape == (200, 16)
    assert pool_activations(x, "block").shape == (200, 32)
    assert pool_activations(x, "flatten").shape == (200, 128)
    res = cluster_activations(x, lab, pooling="meanmax")
    top = res.clusters.iloc[0]
    assert art[res.member_mask(int(top["cluster"]))].mean() >= 0.8
    assert top["class"] == "mel"


def test_exemplars_are_members_nearest_the_centroid() -> None:
    x, lab, _ = _planted()
    rows = np.arange(1000, 1000 + len(x))
    ids = [f"case{i}" for i in range(len(x))]
    res = cluster_activations(x, lab, rows=rows, case_ids=ids, n_exemplars=5)
    for _, r in res.clusters.iterrows():
        cid = int(r["cluster"])
        ex = res.exemplars(cid)
        assert len(ex) == min(5, int(r["size"]))
        assert set(ex) <= set(res.members(cid).tolist())
        assert list(r["exemplar_case_ids"]) == [ids[i - 1000] for i in ex]
    assert set(res.member_case_ids(0)) <= set(ids)


def test_fixed_k_tiny_class_and_edge_cases() -> None:
    x, lab, _ = _planted()
    res = cluster_activations(x, lab, k=2)
    assert res.k == {"a": 2, "b": 2} and "given" in res.k_selection
    # a class with 3 cases is not clustered, and says so
    lab2 = lab.copy()
    lab2[:3] = "c"
    res2 = cluster_activations(x, lab2, classes=("a", "b", "c"))
    c_rows = res2.clusters[res2.clusters.group == "c"]
    assert len(c_rows) == 1 and "fewer than 4 cases" in c_rows.note.iloc[0]
    assert not c_rows.suspicious.any()
    with pytest.raises(DataError, match="identical activations"):
        cluster_activations(np.ones((50, 4)), lab[np.r_[0:25, 150:175]])
    with pytest.raises(DataError, match="at least two classes"):
        cluster_activations(x, np.array(["a"] * len(x)))
    with pytest.raises(DataError, match="labels"):
        cluster_activations(x, lab[:10])
    with pytest.raises(DataError, match="unknown clustering method"):
        cluster_activations(x, lab, method="dbscan")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="unknown pooling"):
        cluster_activations(x, lab, pooling="median")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="k_range"):
        cluster_activations(x, lab, k_range=(1, 5))
    with pytest.raises(DataError, match="not one of the classes"):
        cluster_activations(x, lab, classes=("a",))
    with pytest.raises(DataError, match="empty"):
        cluster_activations(np.zeros((0, 3)), np.array([], dtype=object))
    with pytest.raises(DataError, match="NaN"):
        cluster_activations(np.where(np.eye(len(x), 20) > 0, np.nan, x), lab)


def test_json_roundtrip(tmp_path: Path) -> None:
    x, lab, _ = _planted()
    res = cluster_activations(x, lab, layer="block10", split="train")
    path = res.save(tmp_path / "clusters.json")
    json.loads(path.read_text())  # valid JSON (no NaN)
    back = ClusteringResult.load(path)
    pd.testing.assert_frame_equal(back.clusters, res.clusters, check_dtype=False)
    np.testing.assert_array_equal(back.assignments, res.assignments)
    assert back.k == res.k and back.layer == "block10"
    with pytest.raises(DataError, match="no saved clustering"):
        ClusteringResult.load(tmp_path / "nope.json")
    with pytest.raises(DataError, match="no cluster"):
        res.cluster(999)


# ---------------------------------------------------------------------- naming a cluster
def _workspace(tmp_path: Path) -> tuple[Workspace, Dataset, np.ndarray, np.ndarray]:
    x, lab, art = _planted(60, 90, seed=2)
    n = len(x)
    cases = pd.DataFrame({
        "case_id": [f"s{i:03d}" for i in range(n)],
        "label": lab.astype(str),
        "split": "train",
        "hair": (np.arange(n) % 3 == 0).astype(int),
    })
    ws = Workspace(tmp_path / "ws").ensure()
    info = DatasetInfo("toy", "test", ("a", "b"), 8, artifacts=("hair",))
    rng = np.random.default_rng(0)
    ds = Dataset.write(ws.datasets_dir / "toy", info, cases, rng.integers(0, 255, (n, 8, 8, 3), dtype=np.uint8))
    ws.update_manifest(dataset="toy")
    return ws, ds, x, art


def test_name_cluster_adds_a_concept_and_records_an_event(tmp_path: Path) -> None:
    from concepts.bank import ConceptBank
    from store import Actor, Store

    ws, ds, x, _ = _workspace(tmp_path)
    res = cluster_activations(x, ds.cases["label"].to_numpy(), classes=ds.classes,
                              rows=np.arange(len(x)), case_ids=ds.cases["case_id"].tolist())
    res = dataclasses.replace(res, dataset="toy", dataset_hash=ds.info.content_hash)
    cid = int(res.clusters.iloc[0]["cluster"])
    actor = Actor.from_oidc("sub-1", "dermatologist", "Dr A")
    concept = name_cluster(ws, res, cid, "blue_marks", "blue marker around the lesion", actor)
    assert set(concept.positive.case_ids) == set(res.member_case_ids(cid))
    assert concept.negative is not None and concept.counterpart == "negative"
    neg_labels = set(ds.cases.set_index("case_id").loc[list(concept.negative.case_ids), "label"])
    assert neg_labels == {res.cluster(cid)["class"]}  # the rest of the cluster's own class
    bank = ConceptBank.load(ws.concepts_dir, datasets_dir=ws.datasets_dir)
    assert "blue_marks" in bank and bank["blue_marks"].origin == "cases"
    events = Store.for_workspace(ws.root).events_frame()
    ev = events[events["action"] == "concept_named"]
    assert len(ev) == 1 and ev["concept"].iloc[0] == "blue_marks"
    # random negatives, no store event without an actor
    c2 = name_cluster(ws, res, cid, "blue_marks_r", "same, random counterparts", negatives="random")
    assert c2.negative is None and c2.counterpart == "random"
    assert len(Store.for_workspace(ws.root).events_frame()) == len(events)
    with pytest.raises(ConceptError, match="already exists"):
        name_cluster(ws, res, cid, "blue_marks", "again")


def test_name_cluster_refuses_stale_or_bare_results(tmp_path: Path) -> None:
    ws, ds, x, _ = _workspace(tmp_path)
    res = cluster_activations(x, ds.cases["label"].to_numpy(), case_ids=ds.cases["case_id"].tolist())
    with pytest.raises(DataError, match="bare arrays"):
        name_cluster(ws, res, 0, "x", "y")
    stale = dataclasses.replace(res, dataset="toy", dataset_hash="0" * 64)
    with pytest.raises(DataError, match="changed since it was clustered"):
        name_cluster(ws, stale, 0, "x", "y")
    ok = dataclasses.replace(res, dataset="toy", dataset_hash=ds.info.content_hash)
    with pytest.raises(DataError, match="no cluster"):
        name_cluster(ws, ok, 999, "x", "y")


# ---------------------------------------------------------------------- no double dipping
def test_pure_noise_flags_at_most_five_percent_of_clusters() -> None:
    """Activations independent of the label: clusters found on half the cases and tested on the
    other half are 'suspicious' at most at the nominal rate (over seeds, 2 and 3 classes)."""
    n_clusters = n_flagged = 0
    for seed in range(24):
        rng = np.random.default_rng(100 + seed)
        n_cls = 2 + seed % 2
        lab = np.array([f"c{i}" for i in rng.integers(0, n_cls, 240)], dtype=object)
        x = rng.normal(size=(240, 12))
        x[:, :2] *= 3.0  # anisotropic noise, so k-means has something to split on
        res = cluster_activations(x, lab, k_range=(2, 6), seed=seed, n_init=2)
        n_clusters += len(res.clusters)
        n_flagged += int(res.clusters["suspicious"].sum())
    assert n_clusters >= 150
    assert n_flagged / n_clusters <= 0.05, (n_flagged, n_clusters)


def test_association_is_tested_on_held_out_cases_only() -> None:
    """The artifact rides with class a on the discovery half only; on the held-out half it is
    equally common in both classes, so its cluster must not be flagged (and is, when the held-out
    half shares the discovery association)."""
    rng = np.random.default_rng(3)
    n = 400
    lab = np.array(["a"] * 160 + ["b"] * 240, dtype=object)
    hold = np.zeros(n, bool)
    hold[rng.permutation(n)[: n // 2]] = True
    x = rng.normal(size=(n, 16))
    x[lab == "a", :3] += 1.0
    p_disc = np.where(lab == "a", 0.5, 0.03)
    for held_rate, flagged in ((0.25, False), (None, True)):
        p = np.where(hold, held_rate if held_rate is not None else p_disc, p_disc)
        art = rng.random(n) < p
        xa = x.copy()
        xa[art, 6:11] += 4.0
        res = cluster_activations(xa, lab, holdout=hold, k=2, test_split="val")
        shares = {int(c): art[res.member_mask(int(c))].mean() for c in res.clusters["cluster"]}
        best = max(shares, key=lambda c: shares[c])
        row = res.cluster(best)
        assert shares[best] >= 0.8 and row["group"] == "a"
        assert bool(row["suspicious"]) is flagged, (held_rate, row)
        assert row["n_test"] == hold.sum() and row["n_test_hits"] > 0
        assert not res.member_mask(best)[hold].any()  # members come from discovery only


def test_membership_rules_and_holdout_errors() -> None:
    x, lab, art = _planted()
    for rule in ("probe", "centroid"):
        res = cluster_activations(x, lab, membership=rule)  # type: ignore[arg-type]
        top = res.clusters.iloc[0]
        assert art[res.member_mask(int(top["cluster"]))].mean() >= 0.8 and bool(top["suspicious"])
        assert res.membership == rule and rule in res.k_selection
    with pytest.raises(DataError, match="membership"):
        cluster_activations(x, lab, membership="nearest")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="both sides"):
        cluster_activations(x, lab, holdout=np.zeros(len(x), bool))
    with pytest.raises(DataError, match="boolean mask"):
        cluster_activations(x, lab, holdout=np.zeros(len(x)))
    with pytest.raises(DataError, match="fraction"):
        cluster_activations(x, lab, holdout_fraction=1.0)


def test_named_cluster_association_enters_the_confounder_report(tmp_path: Path) -> None:
    """Naming records the held-out association; the report ranks the concept with it."""
    from concepts.discovery import cluster_associations
    from graph import workspace_confounders

    ws, ds, x, art = _workspace(tmp_path)
    res = cluster_activations(x, ds.cases["label"].to_numpy(), classes=ds.classes,
                              case_ids=ds.cases["case_id"].tolist())
    res = dataclasses.replace(res, dataset="toy", dataset_hash=ds.info.content_hash)
    top = res.clusters.iloc[0]
    assert bool(top["suspicious"]) and art[res.member_mask(int(top["cluster"]))].mean() >= 0.8
    name_cluster(ws, res, int(top["cluster"]), "blue_marks", "blue marker", group="artifact")
    assoc = cluster_associations(ws)
    assert len(assoc) == 1
    row = assoc.iloc[0]
    assert row["attribute"] == "blue_marks" and row["class"] == top["class"] and row["kind"] == "artifact"
    assert row["or_ci_low"] == pytest.approx(top["or_ci_low"]) and row["testable"]
    assert row["n"] == top["n_test"] and row["n_class"] == top["n_test_class"]
    rep = workspace_confounders(ws)
    mine = rep[rep["concept"] == "blue_marks"].iloc[0]
    assert mine["relevance_weight"] == 1.0 and mine["association"] > 0
    # no TCAV results: ranked on co-occurrence x irrelevance, ahead of the unrelated annotation
    assert mine["score"] > 0 and mine["rank"] == 1


def test_name_cluster_without_annotated_concepts(tmp_path: Path) -> None:
    """A data set with no concept or artifact column: the named cluster starts the bank."""
    x, lab, _ = _planted(60, 90, seed=4)
    n = len(x)
    cases = pd.DataFrame({"case_id": [f"u{i:03d}" for i in range(n)], "label": lab.astype(str),
                          "split": "train"})
    ws = Workspace(tmp_path / "ws").ensure()
    rng = np.random.default_rng(0)
    ds = Dataset.write(ws.datasets_dir / "plain", DatasetInfo("plain", "test", ("a", "b"), 8), cases,
                       rng.integers(0, 255, (n, 8, 8, 3), dtype=np.uint8))
    ws.update_manifest(dataset="plain")
    res = dataclasses.replace(cluster_activations(x, lab, case_ids=cases["case_id"].tolist()),
                              dataset="plain", dataset_hash=ds.info.content_hash)
    cid = int(res.clusters.iloc[0]["cluster"])
    concept = name_cluster(ws, res, cid, "marks", "marks")
    assert set(concept.positive.case_ids) == set(res.member_case_ids(cid))
    held = set(np.asarray(res.case_ids)[res.holdout].tolist())
    assert concept.negative is not None and not (set(concept.negative.case_ids) & held)
