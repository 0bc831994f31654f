"""run_tcav end to end on a small synthetic workspace: table, files, CAV reuse, CLI."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from concepts import ClassifierModel, ConceptError, ModelError, Workspace
from concepts.bank import ConceptBank
from concepts.tcav import (
    BASELINE_RUNS_PER_SET,
    TABLE_COLUMNS,
    TCAVConfig,
    TCAVSetup,
    concept_scores,
    random_sets,
    run_tcav,
    run_tcav_stages,
)
from concepts.tcav._plan import plan_analysis
from tests.support.synth import CLASSES, make_concept_sets, make_dataset

RUNS = 4


@pytest.fixture(scope="module")
def ws_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("tcav_ws")
    ws = Workspace(root).ensure()
    ds = make_dataset(ws.datasets_dir, n=160)
    cs = make_concept_sets(ws.datasets_dir, n_per=16, pool=48)
    model = ClassifierModel.build("tiny-cnn", CLASSES, seed=0)
    model.save(ws.models_dir / "demo")
    ws.update_manifest(dataset=ds.info.name, concept_sets=cs.info.name, model="demo",
                       layers=["conv1", "conv2", "pool"])
    return root


@pytest.fixture()
def ws(ws_root, tmp_path):
    dst = tmp_path / "ws"
    shutil.copytree(ws_root, dst)
    return Workspace(dst)


def test_report_table_files_and_reuse(ws):
    rep = run_tcav(ws, runs=RUNS)
    tab = rep.table
    assert list(tab.columns) == list(TABLE_COLUMNS)
    # 3 concepts x 2 classes x 2 layers; 'pool' feeds only the linear head: skipped with a warning
    assert len(tab) == 3 * 2 * 2 and set(tab["layer"]) == {"conv1", "conv2"}
    assert any("'pool'" in w and "same for every input" in w for w in rep.warnings)
    assert any("only" in w and "inputs" in w for w in rep.warnings)
    assert tab["p_adjusted"].ge(tab["p_value"] - 1e-12).all() and tab["p_adjusted"].le(1).all()
    assert tab["significant"].dtype == bool and tab["unstable"].dtype == bool
    assert set(tab["stability_probe"]) == {"ridge"}
    assert ((tab["score_mean"] >= 0) & (tab["score_mean"] <= 1)).all()
    assert tab["verdict"].str.len().gt(0).all()
    # layers x classes x probes x (3 concepts x R runs + R random pseudo-concepts x 4 runs)
    per = BASELINE_RUNS_PER_SET
    assert len(rep.scores) == 2 * 2 * 2 * (3 + per) * RUNS
    saved = pd.read_parquet(ws.results_dir / "tcav.parquet")
    pd.testing.assert_frame_equal(saved, tab)
    assert json.loads((ws.results_dir / "tcav.json").read_text())["settings"]["runs"] == RUNS
    npz = list((ws.results_dir / "cavs" / rep.model_id).rglob("*.npz"))
    assert len(npz) == 2 * 2 * 4  # layers x probes x (3 concepts + random baseline)
    assert rep.settings["cavs_trained"] == 2 * 2 * (3 + per) * RUNS
    cav = rep.cav("patch")
    assert cav.layer == "conv2" and np.linalg.norm(cav.vector) == pytest.approx(1.0, abs=1e-5)
    assert len(rep.cavs[("patch", "conv1")]) == RUNS and len(rep.findings()) == int(tab["significant"].sum())

    again = run_tcav(ws, runs=RUNS)
    assert again.settings["cavs_trained"] == 0  # every CAV reused from results/cavs
    pd.testing.assert_frame_equal(again.table, tab)

    # new examples for one concept -> new id -> only its CAVs are retrained
    bank = ConceptBank.for_workspace(ws)
    ds = ws.dataset()
    old_id = bank["veil"].id
    bank.add_from_cases("veil", "custom", "veil, relabelled", ds, ds.cases["case_id"].tolist()[:20], replace=True)
    bank.save()
    third = run_tcav(ws, runs=RUNS)
    assert third.settings["cavs_trained"] == 2 * 2 * RUNS
    assert third.table.loc[third.table["concept"] == "veil", "concept_id"].iloc[0] != old_id

    scores = concept_scores(ws.model(), [rep.cav(c) for c in ("ink", "patch")],
                            ds.image_set(ds.indices("val")), ws.activation_cache)
    assert scores.shape == (len(ds.indices("val")), 2)


def test_options_and_refusals(ws):
    with pytest.raises(ModelError, match="same for every input"):
        run_tcav(ws, ["pool"], runs=RUNS)
    with pytest.raises(ConceptError, match="at least 2"):
        run_tcav(ws, runs=1)
    with pytest.raises(ConceptError, match="unknown probe"):
        run_tcav(ws, runs=RUNS, probe="svm")
    with pytest.raises(ConceptError, match="no concept"):
        run_tcav(ws, runs=RUNS, concepts=["nope"])
    rep = run_tcav(ws, ["conv2"], runs=RUNS, probe="logistic", stability_probe=None, concepts=["patch"],
                   counterpart="negative", target="centered_logit", save=False)
    assert len(rep.table) == 2 and np.isnan(rep.table["probe_cosine"]).all()
    assert not (ws.results_dir / "tcav.parquet").exists()
    assert rep.cavs[("patch", "conv2")].negatives == ("not_patch",) * RUNS
    # a concept set drawn from the biased split is confounded with the label: flagged, warned
    ds = ws.dataset()
    tr = ds.indices("train")
    rows = tr[ds.cases["patch"].to_numpy()[tr] == 1][:30]  # 90 % of nevi carry a patch
    bank = ConceptBank.for_workspace(ws)
    bank.add_from_cases("patch_train", "artifact", "patch cases from train", ds,
                        ds.cases["case_id"].to_numpy()[rows].tolist())
    bank.save()
    rep = run_tcav(ws, ["conv2"], runs=RUNS, concepts=["patch_train", "ink"], save=False)
    flags = rep.table.groupby("concept")["confounded"].first()
    assert flags["patch_train"] and not flags["ink"]
    assert rep.table.loc[rep.table["concept"] == "patch_train", "verdict"].str.contains("confounded").all()
    assert any("patch_train" in w and "class share" in w for w in rep.warnings)
    setup = TCAVSetup.from_workspace(ws, inputs_per_class=10)
    assert {len(s) for s in setup.inputs.values()} == {10}
    full = TCAVSetup.from_workspace(ws, inputs_per_class=None)
    assert all(len(full.inputs[c]) > 10 for c in full.inputs)
    # the default caps the inputs (their gradients are held in memory): the library and the CLI agree
    import inspect

    from concepts.tcav import MAX_INPUTS_PER_CLASS
    from workbench.cli._tcav import tcav_command

    defaults = [inspect.signature(f).parameters["inputs_per_class"].default
                for f in (TCAVSetup.from_workspace, run_tcav, tcav_command)]
    assert defaults == [MAX_INPUTS_PER_CLASS] * 3 and MAX_INPUTS_PER_CLASS >= 500


def test_random_sets_are_disjoint_where_possible():
    sets = random_sets(50, 10, 7, seed=3)
    assert all(len(s) == len(set(s)) == 10 for s in sets)
    first = np.concatenate(sets[:5])
    assert len(set(first)) == 50  # the first five tile the pool
    np.testing.assert_array_equal(random_sets(50, 10, 7, seed=3)[6], sets[6])


def test_cli_json_csv_and_errors(ws):
    from workbench.cli._tcav import tcav_command

    app = typer.Typer()
    app.command("tcav")(tcav_command)
    app.command("noop")(lambda: None)
    runner = CliRunner()
    res = runner.invoke(app, ["tcav", "--workspace", str(ws.root), "--runs", str(RUNS), "--layers", "conv1,conv2",
                              "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert len(rows) == 12
    for key in ("concept", "class", "layer", "score_mean", "score_std", "random_mean", "effect", "p_value",
                "p_adjusted", "cav_accuracy", "stability", "significant"):
        assert key in rows[0]
    assert all(isinstance(r["significant"], bool) for r in rows)
    res = runner.invoke(app, ["tcav", "-w", str(ws.root), "--runs", str(RUNS), "-c", "patch", "--format", "csv"])
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[0].startswith("concept,group,class,layer,score_mean")
    res = runner.invoke(app, ["tcav", "-w", str(ws.root), "--runs", str(RUNS), "--layers", "pool"])
    assert res.exit_code == 1 and "same for every input" in res.output
    res = runner.invoke(app, ["tcav", "-w", str(ws.root), "--format", "xml"])
    assert res.exit_code != 0


# --------------------------------------------------------------------------- the stages
@pytest.mark.parametrize(("settings", "error", "match"), [
    ({"runs": 1}, ConceptError, "at least 2"),
    ({"probe": "svm"}, ConceptError, "unknown probe"),
    ({"target": "softmax"}, ConceptError, "unknown target"),
    ({"stability_probe": "svm"}, ConceptError, "unknown stability probe"),
    ({"counterpart": "twins"}, ConceptError, "counterpart must be"),
    ({"concepts": ("nope",)}, ConceptError, "no concept"),
    ({"classes": ("basal_cell",)}, ConceptError, "unknown class"),
])
def test_plan_refuses_bad_settings(ws, settings, error, match):
    setup = TCAVSetup.from_workspace(ws, inputs_per_class=10)
    with pytest.raises(error, match=match):
        plan_analysis(setup, None, TCAVConfig(**settings))


def test_plan_refuses_unknown_layer_and_fixes_what_is_analysed(ws):
    setup = TCAVSetup.from_workspace(ws, inputs_per_class=10)
    with pytest.raises(ModelError):
        plan_analysis(setup, ["conv9"], TCAVConfig())
    plan = plan_analysis(setup, ["conv2", "conv1", "conv2"], TCAVConfig(probe="ridge", concepts=("ink", "patch")))
    assert plan.layers == ("conv2", "conv1") and plan.layers_named  # deduplicated, order kept
    assert plan.probes == ("ridge", "pattern")  # 'auto' pairs ridge with pattern, main probe first
    assert [c.name for c in plan.concepts] == ["ink", "patch"]
    assert plan.classes == CLASSES
    assert any("only 10 inputs" in w for w in plan.warnings)
    default = plan_analysis(setup, None, TCAVConfig(stability_probe=None))
    assert default.layers == ("conv1", "conv2", "pool") and not default.layers_named  # the workspace's layers
    assert default.probes == ("pattern",)


def test_stages_with_a_config_equal_run_tcav(ws):
    """run_tcav(**settings) is run_tcav_stages(setup, layers, TCAVConfig(**settings)): same table,
    scores and CAVs, key by key."""
    setup = TCAVSetup.from_workspace(ws)
    kwargs = {"runs": RUNS, "probe": "ridge", "concepts": ["patch", "ink"], "save": False, "seed": 2}
    rep = run_tcav(setup, ["conv2"], **kwargs)
    config = TCAVConfig(runs=RUNS, probe="ridge", concepts=("patch", "ink"), save=False, seed=2)
    staged = run_tcav_stages(setup, ["conv2"], config)
    pd.testing.assert_frame_equal(staged.table, rep.table, check_exact=True)
    pd.testing.assert_frame_equal(staged.scores, rep.scores, check_exact=True)
    assert list(staged.cavs) == [("patch", "conv2"), ("ink", "conv2")] == list(rep.cavs)
    np.testing.assert_array_equal(staged.cavs[("ink", "conv2")].vectors, rep.cavs[("ink", "conv2")].vectors)
    assert set(staged.stability_cavs) == set(rep.stability_cavs)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.runs = 3  # type: ignore[misc]
