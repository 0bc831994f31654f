"""The demo builder and the `workbench demo` / `workbench info` commands."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from concepts import Workspace
from workbench.cli import app


def test_small_workspace_is_complete(small_workspace: Path) -> None:
    ws = Workspace(small_workspace)
    man = ws.manifest()
    assert man["model"] == "demo" and man["dataset"] == "dermsynth"
    ds = ws.dataset()
    assert set(ds.splits) == {"train", "val", "test_debiased"}
    model = ws.model()
    assert model.model_id == man["demo_summary"]["model_id"]
    summary = man["demo_summary"]
    for key in ("val_accuracy", "test_debiased_accuracy", "flip_rates"):
        assert key in summary
    assert set(summary["flip_rates"]) == {"ink", "patch"}
    _check_flip_rates(ws, summary["flip_rates"])
    # the trained model beats chance on the biased val split
    assert summary["val_accuracy"] > 0.6


def _check_flip_rates(ws: Workspace, flips: dict) -> None:
    """The recorded flip rates are reproduced from the model and the twins, and adding a planted
    artifact flips more predictions towards its class than adding an unplanted one (hair)."""
    import numpy as np

    from concepts.discovery import counterfactual_flip_rate

    model, ds = ws.model(), ws.dataset()

    def predict(images: np.ndarray) -> np.ndarray:
        return model.predict_proba(images).argmax(axis=1)

    test = ds.indices("test_debiased")
    labels = ds.cases["label"].to_numpy()
    for art in ("ink", "patch"):
        cls = flips[art]["class"]
        rows = test[(ds.cases[art].to_numpy()[test] == 0) & (labels[test] != cls)]
        fr = counterfactual_flip_rate(predict, ds, rows, art, direction="add", to_class=cls)
        assert fr.n == flips[art]["add_n"] and fr.rate == flips[art]["add"]
        rows_h = rows[ds.cases["hair"].to_numpy()[rows] == 0]
        hair = counterfactual_flip_rate(predict, ds, rows_h, "hair", direction="add", to_class=cls)
        assert fr.n_to_class / fr.n > hair.n_to_class / max(hair.n, 1), (art, fr, hair)


def test_demo_build_is_cached(small_workspace: Path) -> None:
    from concepts.dermsynth import DermSynthConfig
    from workbench.services._demo import DemoConfig, build_demo

    cfg = DemoConfig(
        dermsynth=DermSynthConfig(n_images=400, image_size=64, concept_examples=16, random_pool=60),
        architecture="tiny-cnn",
        epochs=12,
    )
    again = build_demo(Workspace(small_workspace), cfg)
    assert again["reused"] is True


def test_info_command_prints_summary(small_workspace: Path) -> None:
    r = CliRunner().invoke(app, ["info", "--workspace", str(small_workspace), "--format", "json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["demo"] is True and data["model"]["architecture"] == "tiny-cnn"
    assert data["model"]["how"]["origin"] == "demo"
    assert data["headline"]["split"] == "test_debiased"  # the demo's debiased test split
    assert set(data["evaluation"]["metrics"]) == {"val", "test_debiased"}


def test_info_on_missing_workspace_is_a_clear_error(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["info", "--workspace", str(tmp_path / "none")])
    assert r.exit_code == 1
    assert "workbench demo" in r.output
    assert "Traceback" not in r.output


def test_demo_rejects_bad_confounder(tmp_path: Path) -> None:
    r = CliRunner().invoke(
        app, ["demo", "--no-serve", "--workspace", str(tmp_path / "w"), "--confounder", "glitter:melanoma"]
    )
    assert r.exit_code == 1
    assert "unknown artifact" in r.output
