"""Fixtures shared by the fast intervention tests."""

from __future__ import annotations

import pytest

from concepts import ClassifierModel, extract_activations
from tests.support.tiny_interventions import random_images, tiny_model


@pytest.fixture(scope="module")
def tiny() -> ClassifierModel:
    return tiny_model()


@pytest.fixture(scope="module")
def conv3_dim(tiny: ClassifierModel) -> int:
    return int(extract_activations(tiny, random_images(1), ["conv3"])["conv3"][0].size)
