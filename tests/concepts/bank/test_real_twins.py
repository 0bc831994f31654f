"""Metrics from a data set's own annotations, the positive class, and counterfactual twins
made from real images (user-supplied pairs, artifact transplant, inpainting).

Every image here is made by the test: plain skin-coloured squares with a dark lesion, and a
violet stroke as the artifact. The model is a two-feature staged network whose first feature is
the image's violet share, so the ground truth of every flip is known.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn

from concepts import ClassifierModel, DataError, Dataset, DatasetInfo
from concepts.bank import (
    TwinSet,
    inpaint,
    load_masks,
    paired_twins,
    real_twins,
    threshold_maps,
    transplant,
    transplant_twins,
)
from concepts.discovery import counterfactual_flip_rate
from concepts.importers import import_folder, import_isic
from concepts.models import Preprocessing, StagedNet, classification_metrics, default_positive_class
from interventions import (
    ConceptDirection,
    ConceptEdit,
    InterventionSpec,
    direction_from_examples,
    measure_effect,
)

SIZE = 32
CLASSES = ("melanoma", "nevus")


# ---------------------------------------------------------------------------------- images
def _lesion(rng: np.random.Generator) -> np.ndarray:
    img = np.empty((SIZE, SIZE, 3), np.uint8)
    img[:] = (200 + rng.integers(-10, 10), 150 + rng.integers(-10, 10), 130)
    c, r = SIZE // 2 + rng.integers(-3, 4), 6 + rng.integers(0, 4)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    img[(yy - c) ** 2 + (xx - c) ** 2 < r * r] = (90, 60, 50)
    return img


def _stroke_mask(rng: np.random.Generator) -> np.ndarray:
    m = np.zeros((SIZE, SIZE), bool)
    row = int(rng.integers(2, SIZE - 5))
    m[row : row + 3, 3 : SIZE - 3] = True
    return m


VIOLET = np.array([140, 60, 200], np.uint8)


def _mark(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = img.copy()
    out[mask] = VIOLET
    return out


def _violet_model(threshold: float) -> ClassifierModel:
    """``pool`` = (violet share, darkness); the head says melanoma when violet > threshold."""

    class Feats(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            violet = ((x[:, 2] - x[:, 1]) > 0.6).float().mean(dim=(1, 2))
            dark = (x.mean(dim=1) < -0.3).float().mean(dim=(1, 2))
            return torch.stack([violet, dark], dim=1)

    fc = nn.Linear(2, 2)
    with torch.no_grad():
        fc.weight.copy_(torch.tensor([[100.0, 0.0], [0.0, 0.0]]))
        fc.bias.copy_(torch.tensor([-100.0 * threshold, 0.0]))
    return ClassifierModel(StagedNet([("pool", Feats()), ("fc", fc)]), "violet", CLASSES, Preprocessing(SIZE))


# ---------------------------------------------------------------------------------- a folder
@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """24 cases (12 melanoma, 12 nevus) in a test split; 6 carry ink with a mask file; every
    case has a twin image: a clean case with a stroke drawn on, a marked case without it."""
    rng = np.random.default_rng(0)
    root = tmp_path / "src"
    (root / "img").mkdir(parents=True)
    rows = []
    for i in range(24):
        label = CLASSES[i % 2]
        img = _lesion(rng)
        ink = int(i in (0, 2, 4, 6, 9, 11))
        mask_rel = twin_rel = ""
        m = _stroke_mask(rng)
        twin_rel = f"twins/{i}.png"
        (root / "twins").mkdir(exist_ok=True)
        if ink:  # the twin is the clean original
            Image.fromarray(img).save(root / twin_rel)
            img = _mark(img, m)
            mask_rel = f"masks/{i}.png"
            (root / "masks").mkdir(exist_ok=True)
            Image.fromarray((m * 255).astype(np.uint8)).save(root / mask_rel)
        else:  # the twin carries a stroke
            Image.fromarray(_mark(img, m)).save(root / twin_rel)
        Image.fromarray(img).save(root / "img" / f"c{i}.png")
        rows.append({"case_id": f"c{i}", "path": f"img/c{i}.png", "label": label, "split": "test",
                     "ink": ink, "mask": mask_rel, "ink_twin": twin_rel})
    pd.DataFrame(rows).to_csv(root / "cases.csv", index=False)
    return root


@pytest.fixture
def ds(folder: Path, tmp_path: Path) -> Dataset:
    return import_folder(folder / "cases.csv", tmp_path / "ds", image_size=SIZE)


# ---------------------------------------------------------------------------------- metrics
def _memory_ds(tmp_path: Path, labels: list[str], flags: dict[str, list[int]], classes: tuple[str, ...]) -> Dataset:
    n = len(labels)
    cases = pd.DataFrame({"case_id": [f"r{i}" for i in range(n)], "label": labels, "split": "test", **flags})
    info = DatasetInfo(name="m", kind="folder", classes=classes, image_size=4, artifacts=tuple(flags))
    return Dataset.write(tmp_path / "m", info, cases, np.zeros((n, 4, 4, 3), np.uint8))


def test_worst_group_and_clean_accuracy_come_from_the_annotations(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    n = 200
    y = rng.integers(0, 2, n)
    ink = (rng.random(n) < 0.3).astype(int)
    ruler = (rng.random(n) < 0.2).astype(int)
    d = _memory_ds(tmp_path, [CLASSES[k] for k in y], {"ink": ink.tolist(), "ruler": ruler.tolist()}, CLASSES)
    # a model right everywhere except on nevi with ink, which it calls melanoma
    pred = np.where((y == 1) & (ink == 1), 0, y)
    proba = np.eye(2)[pred]
    m = classification_metrics(d, np.arange(n), proba)  # no planted config, no group list given
    assert m.worst_group == "nevus / with ink"
    assert m.worst_group_accuracy == 0.0
    clean = (ink == 0) & (ruler == 0)
    assert m.n_clean == int(clean.sum()) and m.clean_accuracy == 1.0
    assert m.group_n["nevus / with ink"] == int(((y == 1) & (ink == 1)).sum())
    assert m.group_accuracy["melanoma / with ruler"] == 1.0
    assert set(m.to_json()) >= {"worst_group", "group_accuracy", "clean_accuracy", "positive_class"}


def test_positive_class_is_melanoma_when_present(tmp_path: Path) -> None:
    assert default_positive_class(("non_melanoma", "melanoma")) == "melanoma"
    assert default_positive_class(("NV", "MEL")) == "MEL"
    assert default_positive_class(("a", "b")) == "a"
    d = _memory_ds(tmp_path, ["b", "a", "a", "b"], {}, ("a", "b"))
    proba = np.eye(2)[[1, 1, 0, 1]]
    assert classification_metrics(d, np.arange(4), proba, positive_class="b").sensitivity == 1.0
    assert classification_metrics(d, np.arange(4), proba).sensitivity == 0.5
    with pytest.raises(DataError, match="positive class 'melanoma' is not one of"):
        classification_metrics(d, np.arange(4), proba, positive_class="melanoma")


def test_isic_binary_import_reports_melanoma_sensitivity(tmp_path: Path) -> None:
    diag = ["MEL", "NV", "BCC"]
    root = tmp_path / "isic"
    (root / "images").mkdir(parents=True)
    cases = {f"ISIC_{i:07d}": diag[i % 3] for i in range(12)}
    lines = ["image," + ",".join(diag)]
    for i, (img, dx) in enumerate(cases.items()):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(
            root / "images" / f"{img}.png")
        lines.append(f"{img}," + ",".join("1.0" if d == dx else "0.0" for d in diag))
    (root / "gt.csv").write_text("\n".join(lines) + "\n")
    d = import_isic(root / "gt.csv", root / "images", tmp_path / "out", image_size=16, binary=True)
    assert d.classes == ("non_melanoma", "melanoma")
    y = d.labels()
    is_mel = y == d.classes.index("melanoma")
    pred = np.where(is_mel, d.classes.index("melanoma"), d.classes.index("non_melanoma"))
    pred[np.flatnonzero(is_mel)[0]] = d.classes.index("non_melanoma")  # miss one melanoma
    m = classification_metrics(d, np.arange(len(d)), np.eye(2)[pred])
    assert m.positive_class == "melanoma"
    assert m.sensitivity == pytest.approx((is_mel.sum() - 1) / is_mel.sum())
    assert m.specificity == 1.0


# ---------------------------------------------------------------------------------- pixels
def test_transplant_keeps_outside_and_copies_inside() -> None:
    rng = np.random.default_rng(3)
    dst, src = _lesion(rng), rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    m = _stroke_mask(rng)
    out = transplant(dst, src, m)
    assert np.array_equal(out[~m], dst[~m]) and np.array_equal(out[m], src[m])
    with pytest.raises(DataError, match="does not fit"):
        transplant(dst, src, m[:-1])


def test_inpaint_fills_from_the_surroundings_only() -> None:
    img = np.full((SIZE, SIZE, 3), (200, 150, 130), np.uint8)
    m = _stroke_mask(np.random.default_rng(4))
    marked = _mark(img, m)
    out = inpaint(marked, m, dilate=0)
    assert np.array_equal(out[~m], marked[~m])
    assert np.array_equal(out, img)  # a uniform background is restored exactly
    assert np.array_equal(threshold_maps(np.arange(16.0).reshape(1, 4, 4), quantile=0.8)[0].sum(), 3)


# ---------------------------------------------------------------------------------- twins
def test_masks_load_aligned_and_transplant_twins(ds: Dataset) -> None:
    idx = ds.indices("test")
    marked = idx[ds.cases["ink"].to_numpy()[idx] == 1]
    masks = load_masks(ds, marked, "mask")
    assert masks.shape == (len(marked), SIZE, SIZE) and masks.any(axis=(1, 2)).all()
    for r, m in zip(marked, masks, strict=True):  # the mask covers exactly the violet pixels
        img = np.asarray(ds.images[r])
        assert np.array_equal(np.all(img == VIOLET, axis=2), m)
    add, rem = transplant_twins(ds, idx, "ink", masks, marked, seed=1)
    assert add.direction == "add" and rem.direction == "remove"
    assert add.method.startswith("transplant") and rem.method.startswith("inpaint")
    assert len(add) == int((ds.cases["ink"] == 0).sum()) and len(rem) == len(marked)
    donor_pos = {cid: i for i, cid in enumerate(ds.cases["case_id"].to_numpy()[marked])}
    for r, img, src in zip(add.rows, add.images, add.sources, strict=True):
        m = masks[donor_pos[src]]
        orig = np.asarray(ds.images[r])
        assert np.array_equal(img[~m], orig[~m]) and np.all(img[m] == VIOLET)
    for img in rem.images:
        assert not np.all(img == VIOLET, axis=2).any()
    with pytest.raises(DataError, match="outside the image folder"):
        bad = ds.cases.copy()
        bad.loc[0, "mask"] = "../../etc/passwd"
        load_masks(Dataset(ds.root, ds.info, bad, ds.images), [0], "mask")


def test_user_supplied_twin_pairs(ds: Dataset) -> None:
    cases = ds.cases.copy()
    cases.loc[1, "ink_twin"] = "c0"  # a case id names the twin
    d = Dataset(ds.root, ds.info, cases, ds.images)
    add, rem = paired_twins(d, d.indices("test"), "ink", "ink_twin")
    assert add.method == "pairs:ink_twin"
    assert len(add) + len(rem) == len(d)
    assert np.array_equal(add.images[list(add.rows).index(1)], np.asarray(d.images[0]))
    assert all(np.all(img == VIOLET, axis=2).any() for r, img in zip(add.rows, add.images, strict=True) if r != 1)
    auto = real_twins(d, d.indices("test"), "ink")  # finds <artifact>_twin by name
    assert [t.method for t in auto] == ["pairs:ink_twin", "pairs:ink_twin"]
    cases.loc[2, "ink_twin"] = "nowhere.png"
    with pytest.raises(DataError, match="neither a case id nor a readable image"):
        paired_twins(Dataset(ds.root, ds.info, cases, ds.images), [2], "ink", "ink_twin")


def test_flip_rates_from_real_twins_and_their_fix(ds: Dataset) -> None:
    idx = ds.indices("test")
    ink = ds.cases["ink"].to_numpy().astype(bool)
    model = _violet_model(threshold=0.02)  # any stroke (>= 3 rows of 26 px) is above 2 %
    add, rem = real_twins(ds, idx, "ink", twin_column="ink_twin")
    predict = lambda im: model.predict_proba(im).argmax(axis=1)  # noqa: E731
    fr_add = counterfactual_flip_rate(predict, ds, idx, "ink", twins=add, to_class="melanoma")
    fr_rem = counterfactual_flip_rate(predict, ds, idx, "ink", twins=rem)
    # ground truth: the model says melanoma exactly when violet is present
    assert (fr_add.n, fr_add.rate, fr_add.method) == (int((~ink).sum()), 1.0, "pairs:ink_twin")
    assert fr_add.n_to_class == fr_add.n and fr_rem.rate == 1.0 and fr_rem.direction == "remove"
    with pytest.raises(DataError, match="not DermSynth data"):
        counterfactual_flip_rate(predict, ds, idx, "ink")
    # measure_effect on the same twins: masking the violet feature removes every flip
    from concepts import extract_activations

    h = extract_activations(model, np.asarray(ds.images[idx]), ["pool"])["pool"]
    d = direction_from_examples("ink", "pool", model.model_id, h[ink[idx]], h[~ink[idx]], method="pattern")
    spec = InterventionSpec(model.model_id, "pool", (ConceptEdit(d, "mask"),))
    rep = measure_effect(model, spec, ds, "test", twin_column="ink_twin", positive_class="melanoma")
    fr = rep.reliance["flip_rates"]
    assert set(fr) == {"ink", "ink:remove"}
    assert fr["ink"]["before"] == 1.0 and fr["ink:remove"]["before"] == 1.0
    assert fr["ink"]["method"] == "pairs:ink_twin" and fr["ink:remove"]["direction"] == "remove"
    assert fr["ink"]["after"] < 0.5 * fr["ink"]["before"]
    assert rep.before["worst_group"] is not None and rep.before["clean_accuracy"] is not None
    # transplant from the mask column gives twins too, and the report says so
    rep2 = measure_effect(model, spec, ds, "test", mask_column="mask")
    assert rep2.reliance["flip_rates"]["ink"]["method"] == "transplant:mask-column:mask"
    assert rep2.reliance["flip_rates"]["ink"]["before"] == 1.0


def test_no_twin_source_says_so(ds: Dataset) -> None:
    model = _violet_model(threshold=0.02)
    cases = ds.cases.drop(columns=["mask", "ink_twin"])
    d = Dataset(ds.root, ds.info, cases, ds.images)
    h = np.random.default_rng(0).random((10, 2)).astype(np.float32)
    dirn = direction_from_examples("ink", "pool", model.model_id, h[:5] + 1, h[5:], method="pattern")
    spec = InterventionSpec(model.model_id, "pool", (ConceptEdit(dirn, "mask"),))
    rep = measure_effect(model, spec, d, "test")
    assert rep.reliance["flip_rates"] == {}
    assert "no twin column" in rep.reliance["twins_note"]


def test_twinset_validates() -> None:
    with pytest.raises(DataError, match="direction"):
        TwinSet("ink", "sideways", np.zeros(0, int), np.zeros((0, 2, 2, 3), np.uint8), "x")


def test_transplant_direction_points_at_the_artifact(ds: Dataset) -> None:
    from interventions import direction_from_twins

    model = _violet_model(threshold=0.02)
    idx = ds.indices("test")
    sets = real_twins(ds, idx, "ink", mask_column="mask")
    d = direction_from_twins(model, ds.images, sets, "pool")
    assert d.method == "transplant" and d.concept == "ink"
    assert d.n_present == d.n_absent == sum(len(t) for t in sets)
    assert abs(float(d.vector[0])) > 0.9 and d.mu1 is not None and d.mu1 > d.mu0  # the violet feature
    assert d.accuracy == 1.0  # every pair is ordered along it
    pairs = direction_from_twins(model, ds.images, real_twins(ds, idx, "ink", twin_column="ink_twin"), "pool")
    assert pairs.method == "twin" and float(pairs.vector @ d.vector) > 0.9
    # masking it removes the add and the remove flips of the user-supplied real twins
    spec = InterventionSpec(model.model_id, "pool", (ConceptEdit(d, "mask"),))
    fr = measure_effect(model, spec, ds, "test", twin_column="ink_twin").reliance["flip_rates"]
    assert fr["ink"]["after"] <= 0.5 * fr["ink"]["before"]
    assert fr["ink:remove"]["after"] <= 0.5 * fr["ink:remove"]["before"]


def test_mask_levels(ds: Dataset, tmp_path: Path) -> None:
    from interventions import mask_edit, population_level

    model = _violet_model(threshold=0.02)
    cases = ds.cases.copy()
    cases["split"] = ["train" if i % 3 else "test" for i in range(len(cases))]
    d2 = Dataset.write(tmp_path / "split", ds.info, cases, np.asarray(ds.images))
    sets = real_twins(d2, d2.indices("train"), "ink", mask_column="mask")
    d = direction_from_twins_(model, d2, sets)
    comp = d.project(model.activations(model.preprocess(np.asarray(d2.images[d2.indices("train")])),
                                       ["pool"])["pool"].numpy())
    y = d2.labels(d2.indices("train"))
    want = np.mean([comp[y == k].mean() for k in (0, 1)])
    assert population_level(model, d, d2) == pytest.approx(want, rel=1e-5)
    assert population_level(model, d, d2, balanced=False) == pytest.approx(comp.mean(), rel=1e-5)
    e = mask_edit(model, d, "balanced", dataset=d2)
    assert e.operation == "set" and e.target_level() == pytest.approx(want, rel=1e-4)
    assert mask_edit(model, d, "absent").operation == "mask"
    spec = InterventionSpec(model.model_id, "pool", (e,))
    assert InterventionSpec.from_json(spec.to_json()).edits[0].target_level() == e.target_level()
    from interventions import InterventionError

    with pytest.raises(InterventionError, match="unknown mask level"):
        mask_edit(model, d, "middle", dataset=d2)
    with pytest.raises(InterventionError, match="needs the data set"):
        mask_edit(model, d, "mean")


def direction_from_twins_(model: ClassifierModel, d: Dataset, sets: list[TwinSet]) -> ConceptDirection:
    from interventions import direction_from_twins

    return direction_from_twins(model, d.images, sets, "pool")


def test_bench_real_is_skipped_without_a_path() -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[3]
    out = subprocess.run([sys.executable, str(root / "bench" / "real.py")], capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 0 and "skipped" in out.stdout


def test_best_layer_takes_the_best_separating_and_deeper_on_ties() -> None:
    from types import SimpleNamespace

    from interventions import ConceptLibrary

    lib = ConceptLibrary.__new__(ConceptLibrary)
    lib.model = SimpleNamespace(layers=["a", "b", "c"])  # type: ignore[assignment]
    accs = {"a": 0.6, "b": 0.9, "c": 0.9}
    lib.direction = lambda c, lay, m=None: SimpleNamespace(accuracy=accs[lay])  # type: ignore[method-assign, assignment, misc, return-value]
    assert lib.best_layer(["ink"], ["a", "b", "c"]) == ("c", accs)
    accs["c"] = 0.5
    assert lib.best_layer(["ink"], ["c", "a", "b"])[0] == "b"
