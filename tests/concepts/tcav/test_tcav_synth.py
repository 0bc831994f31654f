"""Tests of the tiny synthetic "dermoscopy" world (tests/support/synth.py) the CAV / TCAV tests use."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.synth import (
    CONCEPTS,
    make_concept_sets,
    render,
)


# --------------------------------------------------------------------------- tests of the world
def test_twins_differ_only_in_the_concept():
    a = render(5, True, {"patch": True}).astype(int)
    b = render(5, True, {"patch": False}).astype(int)
    diff = np.abs(a - b).sum(-1) > 0
    assert 0 < diff.mean() < 0.1  # a 13x13 corner square, nothing else


@pytest.mark.parametrize("concept", CONCEPTS)
def test_concept_sets_are_balanced_across_classes(tmp_path, concept):
    cs = make_concept_sets(tmp_path, n_per=10, pool=20)
    sub = cs.cases[cs.cases["concept_set"] == concept]
    counts = sub.groupby(["polarity", "label"]).size()
    assert counts.nunique() == 1
