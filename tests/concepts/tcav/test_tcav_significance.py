"""Significance: Welch / Mann-Whitney against random, Holm and Benjamini-Hochberg."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from concepts import ConceptError
from concepts.tcav import (
    SignificanceConfig,
    adjust_pvalues,
    benjamini_hochberg,
    compare_to_random,
    direction,
    holm,
)


def test_holm_matches_the_textbook_example():
    p = np.array([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(holm(p), [0.03, 0.06, 0.06, 0.02])
    assert holm(np.array([])).size == 0


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=30))
def test_adjusted_pvalues_are_monotone_and_bounded(ps):
    p = np.array(ps)
    for method in ("holm", "bh"):
        adj = adjust_pvalues(p, method)
        assert (adj >= p - 1e-12).all() and (adj <= 1).all()
        order = np.argsort(p, kind="stable")
        assert (np.diff(adj[order]) >= -1e-12).all()
    assert (holm(p) >= benjamini_hochberg(p) - 1e-12).all()  # FWER control is the stricter one
    np.testing.assert_array_equal(adjust_pvalues(p, "none"), p)


def test_tests_against_random():
    rng = np.random.default_rng(0)
    a = rng.normal(0.8, 0.05, 20)
    b = rng.normal(0.5, 0.1, 20)
    assert compare_to_random(a, b, "welch") == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)
    t = (a.mean() - b.mean()) / (b.std(ddof=1) * np.sqrt(1 + 1 / len(b)))
    assert compare_to_random(a, b) == pytest.approx(2 * stats.t.sf(abs(t), len(b) - 1))
    assert compare_to_random(a, b, "mannwhitney") < 1e-6
    assert compare_to_random(np.ones(5), np.ones(5)) == 1.0
    assert compare_to_random(np.ones(5), np.zeros(5)) == 0.0
    assert compare_to_random(np.ones(5), np.r_[np.zeros(4), 1.0], "welch") < 0.05
    with pytest.raises(ConceptError, match="at least 2"):
        compare_to_random(np.ones(1), b)
    with pytest.raises(ConceptError, match="unknown test"):
        compare_to_random(a, b, "z")
    assert direction(True, 0.2) == "positive" and direction(True, -0.1) == "negative"
    assert direction(False, 0.5) == "none" and direction(True, float("nan")) == "none"


@pytest.mark.parametrize("test", ["prediction", "welch"])
def test_null_pvalues_keep_the_error_rate(test):
    rng = np.random.default_rng(1)
    p = np.array([compare_to_random(rng.normal(0.5, 0.1, 20), rng.normal(0.5, 0.1, 20), test) for _ in range(400)])
    assert (p < 0.05).mean() < 0.08  # calibrated (prediction: conservative) under the null
    assert (holm(p) < 0.05).mean() <= 0.01


def _shifted_concept_rate(test: str, shift_sd: float, runs: int = 20, n: int = 600) -> float:
    """How often a concept ``shift_sd`` random-run SDs from the random mean is significant.

    Its runs share one example set: its score is the set's (shifted) score plus small run-to-run
    noise (a fifth of the random runs' SD), as when only the CAV split changes between runs.
    """
    rng = np.random.default_rng(7)
    hits = 0
    for _ in range(n):
        base = rng.normal(0.5, 0.1, runs)
        concept = 0.5 + shift_sd * 0.1 + rng.normal(0, 0.02, runs)
        hits += compare_to_random(concept, base, test) < 0.05
    return hits / n


def test_a_concept_half_an_sd_from_random_is_not_a_finding():
    """The issue's simulation: 0.5 SD from the random distribution is within what random sets show."""
    assert _shifted_concept_rate("welch", 0.5) > 0.4  # the run-level test over-claims (0.54 measured)
    assert _shifted_concept_rate("prediction", 0.5) <= 0.08  # about the nominal rate
    assert _shifted_concept_rate("prediction", 4.0) > 0.9  # a concept far outside random is found


def test_config_validation():
    with pytest.raises(ConceptError, match="unknown correction"):
        SignificanceConfig(correction="bonferroni")
    with pytest.raises(ConceptError, match="alpha"):
        SignificanceConfig(alpha=1.5)
    with pytest.raises(ConceptError, match="unknown test"):
        SignificanceConfig(test="z")


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=2, max_size=30))
def test_bh_gives_scipys_numbers(ps):
    p = np.array(ps)
    np.testing.assert_array_equal(adjust_pvalues(p, "bh"), stats.false_discovery_control(p, method="bh"))


def test_one_adjustment_for_tcav_and_discovery():
    """Discovery's co-occurrence tables and clusters use the same function; an unknown method is
    both a ConceptError (TCAV callers) and a DataError (co-occurrence callers)."""
    from concepts import DataError
    from concepts.discovery import adjust_pvalues as discovery_adjust

    assert discovery_adjust is adjust_pvalues
    p = [0.01, 0.04, 0.03, 0.005]  # a plain list is accepted
    np.testing.assert_allclose(adjust_pvalues(p, "bh"), [0.02, 0.04, 0.04, 0.02])
    for caught in (ConceptError, DataError):
        with pytest.raises(caught, match="unknown correction 'bonferroni'; choose one of"):
            adjust_pvalues(p, "bonferroni")
