"""The concept bank: building, balance across classes, versioned ids, persistence."""

from __future__ import annotations

import json

import numpy as np
import pytest

from concepts import ARTIFACTS, CRITERIA, ConceptError, DataError, Workspace
from concepts.bank import Concept, ConceptBank, ExampleSet, label_confounding
from tests.support.synth import CLASSES, make_concept_sets, make_dataset


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("bank")
    return make_dataset(root, n=200), make_concept_sets(root, n_per=12, pool=40)


def test_from_concept_sets_uses_positives_twins_and_random_pool(synth):
    _, cs = synth
    bank = ConceptBank.from_concept_sets(cs)
    assert bank.names == ["ink", "patch", "veil"]  # known artifacts in ARTIFACTS order, then customs
    patch = bank["patch"]
    assert patch.group == "artifact" and patch.twins and bank["veil"].group == "custom"
    assert len(patch.positive) == len(patch.negative) == 12
    assert patch.counterpart == "random" and patch.negative_name == "random"
    assert bank.random_pool is not None and len(bank.random_pool) == 40
    imgs = bank.image_set(patch.positive)
    assert imgs.images.shape == (12, 64, 64, 3)
    assert bank.image_set(patch.positive).key == imgs.key  # stable cache key
    assert bank.check_balance(patch) is None
    explicit = ConceptBank.from_concept_sets(cs, counterpart="negative")
    assert explicit["patch"].counterpart == "negative" and explicit["patch"].id != patch.id


def test_from_real_dermsynth_concept_sets(tmp_path):
    from concepts.dermsynth import DermSynthConfig, generate_dermsynth

    res = generate_dermsynth(
        DermSynthConfig(n_images=40, image_size=32, concept_examples=6, random_pool=12), tmp_path, workers=1
    )
    bank = ConceptBank.from_concept_sets(res.concept_sets)
    assert bank.names == [*CRITERIA, *ARTIFACTS]
    assert {c.group for c in bank if c.name in CRITERIA} == {"criterion"}
    assert all(c.twins for c in bank)  # DermSynth's negatives are counterfactual twins
    assert all(len(c.positive) == 6 for c in bank) and len(bank.random_pool) == 12
    assert all(bank.check_balance(c) is None for c in bank)
    with pytest.raises(DataError, match="not a concept-sets data set"):
        ConceptBank.from_concept_sets(res.main)


def test_column_concepts_are_balanced_across_classes(synth):
    ds, _ = synth
    bank = ConceptBank.from_columns(ds, split="train", max_per_class=30)
    # patch: 90 % of nevi and 2 % of melanomas -> too few class-matched pairs: skipped, and
    # refused with an explanation when asked for explicitly
    assert set(bank.names) == {"veil", "ink"}
    with pytest.raises(ConceptError, match="class-matched"):
        ConceptBank.from_columns(ds, columns=["patch"])
    for con in bank:
        pos = bank.labels(con.positive)
        neg = bank.labels(con.negative)
        # same class mix on both sides: the CAV cannot learn the label
        np.testing.assert_array_equal(np.bincount(pos, minlength=2), np.bincount(neg, minlength=2))
        assert bank.confounding(con) == 0.0 and bank.check_balance(con) is None
        # the CAVs train against those matched negatives, not against the class-balanced pool
        assert con.counterpart == "negative" and con.negative_name == f"not_{con.name}"
        assert not set(con.positive.case_ids) & set(con.negative.case_ids)
    pool = bank.labels(bank.random_pool)
    assert abs(np.mean(pool) - 0.5) < 0.05


def test_random_pool_is_kept_apart_from_the_concept_sets(tmp_path):
    ds = make_dataset(tmp_path, n=400)
    bank = ConceptBank.from_columns(ds, split="train", max_per_class=30)
    pool = set(bank.random_pool.case_ids)
    assert len(pool) >= 60
    for con in bank:
        assert pool.isdisjoint(con.positive.case_ids) and pool.isdisjoint(con.negative.case_ids)
    # explicit exclusion, and a clear error when nothing is left
    ids = ds.cases["case_id"].astype(str).tolist()
    bank.set_random_pool_from_dataset(ds, split=None, exclude_case_ids=ids[:390])
    assert set(bank.random_pool.case_ids) <= set(ids[390:])
    with pytest.raises(ConceptError, match="no cases left"):
        bank.set_random_pool_from_dataset(ds, split=None, exclude_case_ids=ids)


def test_concepts_from_a_folder_and_from_picked_cases(synth, tmp_path):
    from PIL import Image

    ds, _ = synth
    bank = ConceptBank(root=tmp_path / "concepts")
    folder = tmp_path / "crops"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):  # different sizes: centre-cropped and resized to the data set's size
        Image.fromarray(rng.integers(0, 255, (40 + 8 * i, 50, 3), dtype=np.uint8)).save(folder / f"c{i}.png")
    con = bank.add_from_folder("crops", folder, image_size=64, group="artifact")
    assert con.origin == "folder" and con.counterpart == "random" and len(con.positive) == 6
    assert bank.image_set(con.positive).images.shape == (6, 64, 64, 3)
    with pytest.raises(ConceptError, match="no images"):
        bank.add_from_folder("empty", tmp_path / "concepts", image_size=64)  # only bank files there
    mel = ds.cases.loc[ds.cases["label"] == "melanoma", "case_id"].tolist()[:10]
    picked = bank.add_from_cases("picked", "custom", "", ds, mel, match_classes=True)
    assert picked.counterpart == "negative" and not set(picked.negative.case_ids) & set(mel)
    assert bank.labels(picked.negative).tolist() == [0] * 10  # the positives' class mix
    assert bank.check_balance(picked) is None


def test_confounded_example_sets_are_flagged(synth):
    ds, _ = synth
    bank = ConceptBank.from_columns(ds, columns=["veil"])
    ids = ds.cases["case_id"].to_numpy()
    tr = ds.indices("train")
    patch_rows = tr[ds.cases["patch"].to_numpy()[tr] == 1]  # drawn from the biased split: mostly nevi
    con = bank.add_from_cases("patch_biased", "artifact", "patch from train", ds, ids[patch_rows][:40].tolist())
    warning = bank.check_balance(con)
    assert warning is not None and "class share" in warning
    assert label_confounding(np.array([0, 0]), np.array([1, 1]), 2) == 1.0
    assert label_confounding(None, np.array([1]), 2) is None


def test_ids_change_with_examples_and_bank_roundtrips(synth, tmp_path):
    ds, cs = synth
    bank = ConceptBank.from_concept_sets(cs, root=tmp_path / "concepts")
    ids = ds.cases["case_id"].tolist()
    c1 = bank.add_from_cases("cluster_7", "custom", "named by a dermatologist", ds, ids[:10])
    assert c1.counterpart == "random" and c1.origin == "cases"
    c_neg = bank.add_from_cases("cluster_8", "custom", "", ds, ids[:10], ids[10:20])
    assert c_neg.counterpart == "negative"
    with pytest.raises(ConceptError, match="already exists"):
        bank.add_from_cases("cluster_7", "custom", "", ds, ids[:11])
    c2 = bank.add_from_cases("cluster_7", "custom", "named by a dermatologist", ds, ids[:11], replace=True)
    assert c2.id != c1.id  # new examples: new id, cached CAVs of c1 are never reused
    same = Concept(c2.name, c2.group, "another description", c2.positive)
    assert same.id == c2.id  # the description is not part of the version
    img = np.random.default_rng(0).integers(0, 255, (5, 16, 16, 3), dtype=np.uint8)
    c3 = bank.add_from_images("drawn", "custom", "uploaded", img)
    path = bank.save()
    assert path == tmp_path / "concepts" / "bank.json"
    rev = json.loads(path.read_text())["revision"]
    bank.save()
    assert json.loads(path.read_text())["revision"] == rev  # unchanged content: same revision
    back = ConceptBank.load(tmp_path / "concepts", datasets_dir=ds.root.parent)
    assert back.names == bank.names and back["cluster_7"].id == c2.id
    np.testing.assert_array_equal(back.image_set(back["drawn"].positive).images, img)
    assert back.image_set(back["cluster_7"].positive).key == bank.image_set(c2.positive).key
    assert c3.id == back["drawn"].id
    back.remove("drawn")
    back.save()
    assert json.loads(path.read_text())["revision"] == rev + 1
    assert "drawn" not in ConceptBank.load(path, datasets_dir=ds.root.parent)


def test_user_errors(synth, tmp_path):
    ds, _ = synth
    bank = ConceptBank()
    with pytest.raises(ConceptError, match="not in data set"):
        bank.add_from_cases("x", "custom", "", ds, ["nope"])
    with pytest.raises(ConceptError, match="unknown group"):
        bank.add_from_cases("x", "colour", "", ds, ds.cases["case_id"].tolist()[:5])
    with pytest.raises(ConceptError, match="invalid concept name"):
        bank.add_from_cases("random", "custom", "", ds, ds.cases["case_id"].tolist()[:5])
    with pytest.raises(ConceptError, match="no column"):
        bank.add_from_column(ds, "nope")
    with pytest.raises(ConceptError, match="no concept 'nope'"):
        bank["nope"]
    with pytest.raises(ConceptError, match="no concept bank"):
        ConceptBank.load(tmp_path)
    (tmp_path / "bank.json").write_text("{not json")
    with pytest.raises(ConceptError, match="corrupt"):
        ConceptBank.load(tmp_path)
    ex = ExampleSet.from_rows(ds, [0, 1])
    assert ExampleSet.from_json(ex.to_json()) == ex
    lonely = ConceptBank([Concept("a", "custom", "", ex)])
    with pytest.raises(ConceptError, match="does not know where data sets live"):
        lonely.image_set(ex)


def test_workspace_default_bank_is_built_once(synth, tmp_path):
    ds, cs = synth
    ws = Workspace(tmp_path / "ws").ensure()
    import shutil

    shutil.copytree(ds.root, ws.datasets_dir / ds.info.name)
    shutil.copytree(cs.root, ws.datasets_dir / cs.info.name)
    ws.update_manifest(dataset=ds.info.name, concept_sets=cs.info.name)
    bank = ConceptBank.for_workspace(ws)
    assert (ws.concepts_dir / "bank.json").is_file() and bank.names == ["ink", "patch", "veil"]
    bank.add_from_cases("mine", "custom", "", ws.dataset(), ds.cases["case_id"].tolist()[:8])
    bank.save()
    assert "mine" in ConceptBank.for_workspace(ws)  # loaded, not rebuilt
    ws.update_manifest(concept_sets=None)
    cols = ConceptBank.for_workspace(ws, rebuild=True)  # no concept sets: annotated columns
    assert cols["veil"].origin == "column" and len(cols.random_pool) > 0
    assert ds.classes == CLASSES


def test_few_examples_note_cautions_below_the_recommended_count() -> None:
    from concepts.bank import MIN_EXAMPLES, RECOMMENDED_EXAMPLES, few_examples_note

    assert few_examples_note(RECOMMENDED_EXAMPLES) is None and few_examples_note(500) is None
    note = few_examples_note(MIN_EXAMPLES, check="`workbench intervene --mask x`")
    assert note is not None and f"Only {MIN_EXAMPLES} examples" in note and "intervene --mask x" in note
