"""Interventions on the demo model (EfficientNet-Lite0, logistic head on pooled features) and
DermSynth with ink planted on melanoma (slow).

Validity of the default mask (pattern CAV at ``pool``, absent level = mean projection of the
concept-absent twins): it must cut the ink-add flip rate on nevi by half,
raise the worst-group accuracy on ``test_debiased`` and cost at most 2 points on ``val`` cases
without a planted artifact, where a random direction does nothing; the biased ``val`` accuracy
falls (the shortcut paid there). A test-time fix from 4 images per class of a domain where ink
accompanies nevi must raise the held-out balanced accuracy.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch

from concepts import Dataset, Workspace, extract_activations
from concepts.dermsynth import DermSynthConfig, generate_dermsynth, parse_confounder
from interventions import (
    ConceptEdit,
    ConceptLibrary,
    InterventionSpec,
    WhatIf,
    apply_spec,
    measure_effect,
    patch,
    propose_fix,
    select_few_shot,
)
from interventions._directions import random_direction
from tests.support.workspaces import WorkspaceFactory, build_demo_into, demo_spec
from workbench.services import DemoConfig

pytestmark = pytest.mark.slow

CRITERIA = {"pigment_network", "blue_whitish_veil", "vascular_structures", "pigmentation", "streaks",
            "dots_and_globules", "regression_structures"}


@pytest.fixture(scope="module")
def demo(workspace_factory: WorkspaceFactory, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    # the demo's defaults (2000 images at 128 px, 60 twin pairs per concept), ink planted alone
    cfg = DemoConfig(dermsynth=DermSynthConfig(confounders=(parse_confounder("ink:melanoma:0.6"),)), architecture="efficientnet-lite0")
    return Workspace(workspace_factory.copy(demo_spec(cfg), build_demo_into(cfg), tmp_path_factory.mktemp("iv_demo") / "ws"))


@pytest.fixture(scope="module")
def lib(demo: Workspace) -> ConceptLibrary:
    return ConceptLibrary.for_workspace(demo)


def _mask(lib: ConceptLibrary, d: object) -> InterventionSpec:
    return InterventionSpec(lib.model.model_id, "pool", (ConceptEdit(d, "mask"),))  # type: ignore[arg-type]


def test_masking_ink_removes_the_shortcut(demo: Workspace, lib: ConceptLibrary) -> None:
    model, ds = lib.model, demo.dataset()
    ink = lib.direction("ink", "pool")
    assert ink.method == "pattern" and ink.concept_id == lib.concept("ink").id
    spec = _mask(lib, ink)
    test = WhatIf.from_dataset(model, ds, "test_debiased", "pool", cache=demo.activation_cache)
    val = WhatIf.from_dataset(model, ds, "val", "pool", cache=demo.activation_cache)
    tb, ta = test.evaluate(None).metrics, test.evaluate(spec).metrics
    vb, va = val.evaluate(None).metrics, val.evaluate(spec).metrics
    fb, fa = tb["flip_rates"]["ink"], ta["flip_rates"]["ink"]
    print(f"ink flip (add to nevi, test_debiased): {fb:.3f} -> {fa:.3f} ({100 * (fb - fa) / fb:.0f}% less)")
    print(f"worst-group test_debiased: {tb['worst_group_accuracy']:.3f} -> {ta['worst_group_accuracy']:.3f}")
    print(f"clean val: {vb['clean_accuracy']:.3f} -> {va['clean_accuracy']:.3f}; "
          f"biased val: {vb['accuracy']:.3f} -> {va['accuracy']:.3f}")
    # the unpatched flip rate is the demo build's own measurement (full forward passes)
    summary = demo.manifest()["demo_summary"]
    assert fb == pytest.approx(summary["flip_rates"]["ink"]["add"], abs=0.01)
    assert fb > 0.15
    assert (fb - fa) / fb >= 0.5
    assert ta["worst_group_accuracy"] > tb["worst_group_accuracy"]
    assert vb["clean_accuracy"] - va["clean_accuracy"] <= 0.02
    assert va["accuracy"] < vb["accuracy"]  # the biased val set rewarded the shortcut
    absent = lib._acts(lib.concept("ink").negative, "pool")  # type: ignore[arg-type]
    for seed in range(3):
        r = _mask(lib, random_direction("pool", model.model_id, absent, seed=seed))
        rb = test.evaluate(r).metrics
        print(f"random {seed}: flip {rb['flip_rates']['ink']:.3f}, worst group {rb['worst_group_accuracy']:.3f}")
        assert (fb - rb["flip_rates"]["ink"]) / fb < 0.2
        assert rb["worst_group_accuracy"] <= tb["worst_group_accuracy"] + 0.02


def test_neutral_strength_is_bit_identical_on_the_demo_model(demo: Workspace, lib: ConceptLibrary) -> None:
    model, ds = lib.model, demo.dataset()
    spec = _mask(lib, lib.direction("ink", "pool")).with_strengths({"ink": 0.0})
    x = model.preprocess(np.asarray(ds.images[:8]))
    buf = io.BytesIO()
    torch.save(model.module.state_dict(), buf)
    with torch.inference_mode():
        base = model.module(x)
        assert torch.equal(patch(model, spec)(x), base)
        with apply_spec(model, spec.with_strengths({"ink": 1.0})):
            edited = model.module(x)
        assert not torch.equal(edited, base)
        assert torch.equal(model.module(x), base)
    after = io.BytesIO()
    torch.save(model.module.state_dict(), after)
    assert after.getvalue() == buf.getvalue()


def test_effect_report_with_tcav_on_the_patched_model(demo: Workspace, lib: ConceptLibrary) -> None:
    spec = _mask(lib, lib.direction("ink", "pool"))
    rep = measure_effect(lib.model, spec, demo.dataset(), "val", cache=demo.activation_cache, bank=lib.bank,
                         tcav_layers=demo.layers(), tcav_runs=6)
    tcav = rep.reliance["tcav"]
    print(tcav)
    assert tcav["layer"] == "block15"
    row = next(r for r in tcav["rows"] if r["concept"] == "ink" and r["class"] == "melanoma")
    assert row["score_after"] < row["score_before"]
    assert set(tcav["alignment"]["ink"]) == {"before", "after"}
    assert rep.reliance["flip_rates"]["ink"]["reduction"] >= 0.5
    assert len(rep.flipped_cases) == rep.to_json()["n_flipped"] > 0


def test_fix_from_four_images_per_class_raises_held_out_accuracy(
    demo: Workspace, lib: ConceptLibrary, tmp_path: Path
) -> None:
    """A new domain where ink accompanies nevi (a seed the method was not tuned on): over eight
    draws of 4 + 4 labelled images the fix raises the held-out balanced accuracy on average,
    never lowers it by more than a point, masks ink in most draws, never amplifies an artifact
    or masks a criterion, and keeps the source clean accuracy within 2 points."""
    new = generate_dermsynth(
        DermSynthConfig(n_images=400, seed=11, confounders=(parse_confounder("ink:nevus:0.6"),), concept_examples=2,
                        random_pool=2),
        tmp_path,
    ).main
    model = lib.model
    assert Dataset.load(tmp_path / "dermsynth").info.extra["planted_confounders"][0]["cls"] == "nevus"
    y = new.labels(np.arange(len(new.cases)))
    acts = extract_activations(model, np.asarray(new.images), ["pool"])["pool"]
    source = WhatIf.from_dataset(model, demo.dataset(), "val", "pool", cache=demo.activation_cache,
                                 twin_artifacts=[])
    dirs = lib.directions(lib.concepts, "pool")
    gains, inked = [], 0
    for draw in range(8):
        few, rest = select_few_shot(y, 4, seed=draw)
        p = propose_fix(model, dirs, acts[few], y[few], source=source,
                        held_out=WhatIf(model, "pool", acts[rest], y[rest]))
        assert p.held_out is not None
        gain = p.held_out["after"]["balanced_accuracy"] - p.held_out["before"]["balanced_accuracy"]
        print(draw, p.spec.describe() if p.spec else "none", f"{100 * gain:+.1f} points", p.notes)
        gains.append(gain)
        inked += "ink" in p.proposed
        for e in p.edits:
            assert e["operation"] == ("amplify" if e["concept"] in CRITERIA else "mask")
            assert 0.0 <= e["stability"] <= 1.0 and e["gain_interval"][0] <= e["gain_interval"][1]
        assert p.source_drop is not None and p.source_drop <= 0.02
    print("mean gain", 100 * np.mean(gains), "ink masked in", inked)
    assert np.mean(gains) >= 0.02
    assert min(gains) >= -0.01
    assert inked >= 5
