"""DermSynth: sampling statistics, planted confounders, rendering, twins and the written sets."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import chi2_contingency

from concepts import DataError
from concepts.data import ARTIFACTS, CRITERIA, Dataset, DatasetInfo
from concepts.dermsynth import (
    CRITERION_FREQUENCIES,
    DERMSYNTH_CLASSES,
    DERMSYNTH_CONCEPTS_KIND,
    DERMSYNTH_KIND,
    DermSynthConfig,
    DermSynthResult,
    PlantedConfounder,
    artifact_region,
    draw_artifact,
    draw_artifact_with_mask,
    generate_dermsynth,
    parse_confounder,
    render_case,
    render_twins,
    sample_dermsynth,
)

SMALL = DermSynthConfig(n_images=120, image_size=64, concept_examples=10, random_pool=20, seed=3)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[DermSynthResult, list[tuple[str, int, int]]]:
    calls: list[tuple[str, int, int]] = []
    res = generate_dermsynth(SMALL, tmp_path_factory.mktemp("ds"), lambda s, d, t: calls.append((s, d, t)),
                             workers=1)
    return res, calls


def _crosstab(cases: pd.DataFrame, artifact: str) -> np.ndarray:
    tab = pd.crosstab(cases["label"], cases[artifact]).reindex(
        index=list(DERMSYNTH_CLASSES), columns=[0, 1], fill_value=0)
    return tab.to_numpy()


# ------------------------------------------------------------------------------ sampling
def test_default_config_counts_without_rendering() -> None:
    main, conc = sample_dermsynth(DermSynthConfig())
    assert len(main) == 2000
    assert main["case_id"].is_unique and conc["case_id"].is_unique
    assert main.groupby("split").size().to_dict() == {"test_debiased": 400, "train": 1200, "val": 400}
    assert (main["label"] == "melanoma").sum() == 800
    assert main["label"].isin(DERMSYNTH_CLASSES).all()
    test = main[main["split"] == "test_debiased"]
    for artifact in ("ink", "patch"):  # planted: worst-group cells large enough
        assert _crosstab(test, artifact).min() >= 20
    sets = conc[conc["concept_set"] != "random"]
    assert set(sets["concept_set"]) == set(CRITERIA) | set(ARTIFACTS)
    counts = sets.groupby(["concept_set", "polarity", "label"]).size()
    assert (counts == 30).all() and len(counts) == 13 * 2 * 2
    rnd = conc[conc["concept_set"] == "random"]
    assert len(rnd) == 500 and (rnd["label"] == "melanoma").sum() == 250
    assert (rnd["polarity"] == "random").all() and (conc["split"] == "concepts").all()
    assert not set(main["render_seed"]) & set(conc["render_seed"])
    for artifact in ARTIFACTS:  # concept rows: artifacts independent of the class
        rows = conc[conc["concept_set"] != artifact]
        assert rows[artifact].mean() == pytest.approx(0.05, abs=0.015)
        assert chi2_contingency(_crosstab(rows, artifact))[1] > 0.01, artifact
    assert main["render_seed"].is_unique
    assert set(main["skin_tone"]) == {"light", "medium", "dark"}
    for col in (*CRITERIA, *ARTIFACTS):
        assert set(main[col].unique()) <= {0, 1}


def test_marginal_criterion_frequencies_match_reference() -> None:
    main, _ = sample_dermsynth(DermSynthConfig(n_images=20000, seed=11))
    mel = main["label"] == "melanoma"
    for crit, (p_mel, p_non) in CRITERION_FREQUENCIES.items():
        assert main.loc[mel, crit].mean() == pytest.approx(p_mel, abs=0.025), crit
        assert main.loc[~mel, crit].mean() == pytest.approx(p_non, abs=0.02), crit
    # mild positive correlation between criteria within a class (shared latent severity)
    corr = main.loc[mel, list(CRITERIA)].corr().to_numpy()[np.triu_indices(len(CRITERIA), 1)]
    assert 0.0 < corr.mean() < 0.2
    # the 7-point rule separates the classes well but not perfectly (like derm7pt: 0.93 / 0.82)
    flagged = main["seven_point_score"] >= 3
    assert 0.84 <= flagged[mel].mean() <= 0.95
    assert 0.76 <= (~flagged[~mel]).mean() <= 0.88


def test_planted_prevalence_in_train_val_and_independence_in_test() -> None:
    cfg = DermSynthConfig(n_images=6000, seed=5)
    main, _ = sample_dermsynth(cfg)
    biased = main[main["split"].isin(["train", "val"])]
    test = main[main["split"] == "test_debiased"]
    for conf in cfg.confounders:
        in_cls = biased["label"] == conf.cls
        assert biased.loc[in_cls, conf.artifact].mean() == pytest.approx(conf.prevalence, abs=0.03)
        assert biased.loc[~in_cls, conf.artifact].mean() == pytest.approx(cfg.base_rate, abs=0.015)
        assert chi2_contingency(_crosstab(biased, conf.artifact))[1] < 1e-10
        for cls in DERMSYNTH_CLASSES:
            rate = test.loc[test["label"] == cls, conf.artifact].mean()
            assert rate == pytest.approx(cfg.debiased_rate, abs=0.005)
    for artifact in ARTIFACTS:
        assert chi2_contingency(_crosstab(test, artifact))[1] > 0.01, artifact
        if cfg.planted(artifact) is None:
            assert biased[artifact].mean() == pytest.approx(cfg.base_rate, abs=0.012)
            assert chi2_contingency(_crosstab(biased, artifact))[1] > 0.01, artifact


def test_non_default_pairing_is_honoured() -> None:
    cfg = DermSynthConfig(n_images=4000, confounders=(parse_confounder("ruler:nevus:0.7"),), seed=2)
    assert cfg.confounders == (PlantedConfounder("ruler", "nevus", 0.7),)
    main, _ = sample_dermsynth(cfg)
    train = main[main["split"] == "train"]
    nev = train["label"] == "nevus"
    assert train.loc[nev, "ruler"].mean() == pytest.approx(0.7, abs=0.03)
    assert train.loc[~nev, "ruler"].mean() == pytest.approx(0.05, abs=0.02)
    for cls in DERMSYNTH_CLASSES:  # ink is no longer planted: base rate everywhere
        assert train.loc[train["label"] == cls, "ink"].mean() == pytest.approx(0.05, abs=0.02)
    # strings are parsed too
    assert DermSynthConfig(confounders=("ruler:nevus:0.7",)).confounders == cfg.confounders  # type: ignore[arg-type]


def test_sampling_is_deterministic_and_main_set_ignores_concept_settings() -> None:
    a_main, a_conc = sample_dermsynth(SMALL)
    b_main, b_conc = sample_dermsynth(SMALL)
    pd.testing.assert_frame_equal(a_main, b_main)
    pd.testing.assert_frame_equal(a_conc, b_conc)
    c_main, _ = sample_dermsynth(replace(SMALL, concept_examples=12))
    pd.testing.assert_frame_equal(a_main, c_main)
    d_main, _ = sample_dermsynth(replace(SMALL, seed=4))
    assert not d_main["render_seed"].equals(a_main["render_seed"])


# ------------------------------------------------------------------------------ confounder parsing
def test_parse_confounder_valid() -> None:
    assert parse_confounder("ruler:melanoma:0.6") == PlantedConfounder("ruler", "melanoma", 0.6)
    assert parse_confounder("ink:nevus") == PlantedConfounder("ink", "nevus", 0.6)
    assert parse_confounder(" hair : nevus : 1 ") == PlantedConfounder("hair", "nevus", 1.0)
    assert str(parse_confounder("gel_bubble:melanoma:0.25")) == "gel_bubble:melanoma:0.25"
    assert str(parse_confounder("ink:melanoma")) == "ink:melanoma:0.6"
    assert parse_confounder("ink:benign", classes=("benign", "malignant")).cls == "benign"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rulers:melanoma", "unknown artifact 'rulers'"),
        ("ruler:benign:0.5", "unknown class 'benign'"),
        ("ruler:melanoma:0", "(0, 1]"),
        ("ruler:melanoma:1.5", "(0, 1]"),
        ("ruler:melanoma:-0.2", "(0, 1]"),
        ("ruler:melanoma:nan", "(0, 1]"),
        ("ruler:melanoma:lots", "not a number"),
        ("ruler", "ARTIFACT:CLASS[:PREVALENCE]"),
        ("ruler:melanoma:0.5:1", "ARTIFACT:CLASS[:PREVALENCE]"),
        (":melanoma", "ARTIFACT:CLASS[:PREVALENCE]"),
        ("", "ARTIFACT:CLASS[:PREVALENCE]"),
    ],
)
def test_parse_confounder_errors(text: str, message: str) -> None:
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace("[", r"\[")) as err:
        parse_confounder(text)
    if "artifact" in message:
        assert "gel_bubble" in str(err.value)  # lists the valid ones


def test_config_validation() -> None:
    with pytest.raises(DataError, match="n_images"):
        DermSynthConfig(n_images=5)
    with pytest.raises(DataError, match="planted twice"):
        DermSynthConfig(confounders=(parse_confounder("ink:melanoma"), parse_confounder("ink:nevus")))
    with pytest.raises(DataError, match="unknown class"):
        DermSynthConfig(confounders=(PlantedConfounder("ink", "benign"),))
    with pytest.raises(DataError, match="base_rate"):
        DermSynthConfig(base_rate=1.5)
    with pytest.raises(DataError, match="melanoma_share"):
        DermSynthConfig(melanoma_share=1.0)
    with pytest.raises(DataError, match="unknown artifact"):
        PlantedConfounder("scar", "melanoma")
    with pytest.raises(DataError, match=r"\(0, 1\]"):
        PlantedConfounder("ink", "melanoma", 0.0)
    cfg = DermSynthConfig(confounders=(parse_confounder("ruler:nevus:0.7"),), base_rate=0.1)
    assert DermSynthConfig.from_json(cfg.to_json()) == cfg
    assert DermSynthConfig.from_json({"n_images": 300}) == DermSynthConfig(n_images=300)
    with pytest.raises(DataError, match="unknown DermSynth setting"):
        DermSynthConfig.from_json({"n_imgs": 300})


# ------------------------------------------------------------------------------ generation
def test_generated_sets_are_written_and_consistent(
    small: tuple[DermSynthResult, list[tuple[str, int, int]]], tmp_path: Path
) -> None:
    res, calls = small
    main, conc = res.main, res.concept_sets
    assert main.images.shape == (120, 64, 64, 3) and main.images.dtype == np.uint8
    assert len(conc) == 13 * 2 * 10 + 20
    assert main.info.kind == DERMSYNTH_KIND and conc.info.kind == DERMSYNTH_CONCEPTS_KIND
    assert main.classes == ("melanoma", "nevus") and main.info.concepts == CRITERIA
    assert main.info.artifacts == ARTIFACTS and "skin_tone" in main.info.metadata
    assert DermSynthConfig.from_json(main.info.extra["config"]) == SMALL
    assert main.info.extra["planted_confounders"][0] == {"artifact": "ink", "cls": "melanoma", "prevalence": 0.6}
    assert main.root.name == "dermsynth" and conc.root.name == "dermsynth_concepts"
    reloaded = Dataset.load(main.root)
    pd.testing.assert_frame_equal(reloaded.cases, sample_dermsynth(SMALL)[0])
    assert set(main.splits) == {"train", "val", "test_debiased"}
    for stage in ("sample", "render:main", "render:concepts", "write"):
        last = [c for c in calls if c[0] == stage][-1]
        assert last[1] == last[2] > 0, stage
    assert ("render:main", 120, 120) in calls


def test_generation_is_deterministic_across_runs_and_workers(
    small: tuple[DermSynthResult, list[tuple[str, int, int]]], tmp_path: Path
) -> None:
    res, _ = small
    again = generate_dermsynth(SMALL, tmp_path, workers=2)  # a process pool this time
    assert np.array_equal(np.asarray(again.main.images), np.asarray(res.main.images))
    assert np.array_equal(np.asarray(again.concept_sets.images), np.asarray(res.concept_sets.images))
    pd.testing.assert_frame_equal(again.main.cases, res.main.cases)
    assert again.main.info.content_hash == res.main.info.content_hash
    assert again.concept_sets.info.content_hash == res.concept_sets.info.content_hash
    other = sample_dermsynth(replace(SMALL, seed=4))[0]
    assert not np.array_equal(render_case(other.iloc[0], 64), np.asarray(res.main.images[0]))


def test_concept_sets_are_balanced_twins(small: tuple[DermSynthResult, list[tuple[str, int, int]]]) -> None:
    conc = small[0].concept_sets
    cases = conc.cases
    for concept in (*CRITERIA, *ARTIFACTS):
        pos = cases[(cases["concept_set"] == concept) & (cases["polarity"] == "positive")]
        neg = cases[(cases["concept_set"] == concept) & (cases["polarity"] == "negative")]
        assert len(pos) == len(neg) == 10
        assert (pos[concept] == 1).all() and (neg[concept] == 0).all()
        for part in (pos, neg):
            assert (part["label"] == "melanoma").sum() == 5
        # twins: the same lesion and everything else equal, pair by pair
        others = [c for c in (*CRITERIA, *ARTIFACTS, "label", "render_seed", "pair") if c != concept]
        assert pos[others].reset_index(drop=True).equals(neg[others].reset_index(drop=True))
        if concept in ARTIFACTS:  # negatives are the positives with the artifact removed
            ip = np.flatnonzero((cases["concept_set"] == concept) & (cases["polarity"] == "positive"))
            ineg = np.flatnonzero((cases["concept_set"] == concept) & (cases["polarity"] == "negative"))
            assert np.array_equal(render_twins(conc, ip[:2], concept, present=False),
                                  np.asarray(conc.images[ineg[:2]]))
    rnd = cases[cases["concept_set"] == "random"]
    assert len(rnd) == 20 and (rnd["label"] == "melanoma").sum() == 10 and (rnd["pair"] == -1).all()


def test_render_case_reproduces_stored_images(small: tuple[DermSynthResult, list[tuple[str, int, int]]]) -> None:
    for ds in (small[0].main, small[0].concept_sets):
        has_art = np.flatnonzero(ds.cases[list(ARTIFACTS)].sum(axis=1).to_numpy() > 0)[:4]
        for i in [0, 1, 2, *has_art.tolist()]:
            assert np.array_equal(render_case(ds.cases.iloc[i], 64), np.asarray(ds.images[i])), i
    row = small[0].main.cases.iloc[0].to_dict()
    assert np.array_equal(render_case(row, 64), np.asarray(small[0].main.images[0]))
    # a different size draws the same lesion at another resolution
    assert render_case(row, 96).shape == (96, 96, 3)


def test_twins_differ_only_where_the_artifact_is_drawn(
    small: tuple[DermSynthResult, list[tuple[str, int, int]]]
) -> None:
    main = small[0].main
    for artifact in ARTIFACTS:
        idx = np.flatnonzero(main.cases[artifact].to_numpy() == 0)[:3]
        twins = render_twins(main, idx, artifact, present=True)
        assert twins.shape == (3, 64, 64, 3)
        for k, i in enumerate(idx):
            row = main.cases.iloc[i]
            orig = np.asarray(main.images[i])
            region = artifact_region(row, 64, artifact)
            diff = (twins[k] != orig).any(-1)
            assert diff.any(), artifact
            assert not (diff & ~region).any(), artifact
            if artifact in ("ink", "patch", "gel_bubble", "ruler"):
                assert diff.mean() < 0.5
        # and back: forcing the artifact absent restores the original rows
        assert np.array_equal(render_twins(main, idx, artifact, present=False), np.asarray(main.images[idx]))


def test_render_errors(small: tuple[DermSynthResult, list[tuple[str, int, int]]], tmp_path: Path) -> None:
    main = small[0].main
    with pytest.raises(DataError, match="render_seed"):
        render_case({"label": "nevus"}, 64)
    with pytest.raises(DataError, match="label"):
        render_case({"render_seed": 1, "label": "benign"}, 64)
    with pytest.raises(DataError, match="valid artifacts"):
        render_case({"render_seed": 1, "label": "nevus"}, 64, {"scar": True})
    with pytest.raises(DataError, match="valid artifacts"):
        render_twins(main, [0], "scar")
    with pytest.raises(DataError, match="row positions"):
        render_twins(main, [10_000], "ink")
    plain = Dataset.write(
        tmp_path / "plain",
        DatasetInfo(name="plain", kind="folder", classes=("a", "b"), image_size=8),
        pd.DataFrame({"case_id": ["x"], "label": ["a"], "split": ["train"]}),
        np.zeros((1, 8, 8, 3), np.uint8),
    )
    with pytest.raises(DataError, match="draw_artifact"):
        render_twins(plain, [0], "ink")


# ------------------------------------------------------------------------------ draw_artifact
def test_draw_artifact_on_an_odd_size_image() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    keep = image.copy()
    for artifact in ARTIFACTS:
        out = draw_artifact(image, artifact, np.random.default_rng(1))
        assert out.shape == image.shape and out.dtype == np.uint8
        assert (out != image).any(), artifact
        assert np.array_equal(image, keep)  # input untouched
        assert np.array_equal(out, draw_artifact(image, artifact, np.random.default_rng(1)))
        again, mask = draw_artifact_with_mask(image, artifact, np.random.default_rng(1))
        assert np.array_equal(again, out) and mask.shape == (37, 53)
        assert not ((out != image).any(-1) & ~mask).any()
        _, mask0 = draw_artifact_with_mask(np.zeros_like(image), artifact, np.random.default_rng(1))
        assert np.array_equal(mask, mask0)  # the region does not depend on the pixels
    with pytest.raises(DataError, match="ruler, ink, hair, dark_corner, patch, gel_bubble"):
        draw_artifact(image, "sticker", rng)
    with pytest.raises(DataError, match="uint8"):
        draw_artifact(image.astype(np.float32), "ink", rng)
    with pytest.raises(DataError, match=r"\(H, W, 3\)"):
        draw_artifact(image[..., 0], "ink", rng)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(h=st.integers(1, 90), w=st.integers(1, 90), artifact=st.sampled_from(ARTIFACTS), seed=st.integers(0, 99))
def test_draw_artifact_any_size(h: int, w: int, artifact: str, seed: int) -> None:
    image = np.full((h, w, 3), 180, np.uint8)
    out = draw_artifact(image, artifact, np.random.default_rng(seed))
    assert out.shape == (h, w, 3) and out.dtype == np.uint8


def test_artifacts_are_clearly_visible_at_128px() -> None:
    base = render_case({"render_seed": 3, "label": "nevus"}, 128)
    for artifact in ARTIFACTS:
        for seed in range(12):
            out = draw_artifact(base, artifact, np.random.default_rng(seed))
            strong = np.abs(out.astype(int) - base.astype(int)).sum(-1) > 60
            assert strong.mean() > 0.005, (artifact, seed)
            if artifact == "ink":  # a salient purple/blue stroke
                r, g, b = out[strong].mean(axis=0)
                assert b > g + 40 and b > r, (seed, r, g, b)
            if artifact == "patch":  # a bright, saturated sticker
                px = out[strong].astype(int)
                assert (px.max(-1) - px.min(-1)).mean() > 100
            if artifact == "dark_corner":
                assert out[0, 0].max() < 40 and out[-1, -1].max() < 40
