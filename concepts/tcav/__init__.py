"""CAVs and TCAV with significance testing.

Public entry points: :func:`run_tcav` (a workspace or :class:`TCAVSetup` -> :class:`TCAVReport`),
:class:`CAVTrainer` / :func:`fit_cavs` (single CAVs), :func:`concept_scores` / :func:`concept_maps`
(scoring images), :func:`adjust_pvalues` (the project's one multiple-testing correction).

Private modules, in the order :func:`run_tcav` uses them: ``_setup`` (setup and frozen
config), ``_plan`` (validate and plan; class gradients), ``_compute_cavs`` (activation pool,
run design from ``_design``, batched probes from ``_probes``, ``.npz`` cache), ``_table``
(scores per run; significance table, tests from ``_significance``), ``_save``; ``_core`` holds
the gradient and score maths, ``_cav`` the CAV records, ``_scores`` concept scores and maps.
"""

from typing import TYPE_CHECKING

from store import lazy_exports

if TYPE_CHECKING:
    from concepts.bank import MIN_EXAMPLES
    from concepts.tcav._cav import CAV, CAVSet, CAVTrainer, cav_cosine, fit_cavs
    from concepts.tcav._choices import CORRECTIONS, MAX_INPUTS_PER_CLASS, PROBES, STATISTICS, TESTS
    from concepts.tcav._core import (
        TABLE_COLUMNS,
        TCAVReport,
        TCAVScores,
        check_gradients_vary,
        class_gradients,
        shared_logit_share,
        tcav_scores,
    )
    from concepts.tcav._design import (
        BASELINE_RUNS_PER_SET,
        ConceptSides,
        baseline_means,
        half_sample,
        plan_runs,
        random_sets,
    )
    from concepts.tcav._probes import ProbeTask, fit_cav_batch
    from concepts.tcav._run import run_tcav, run_tcav_stages
    from concepts.tcav._scores import (
        attribution_map,
        channel_profile,
        concept_map_from_activations,
        concept_maps,
        concept_scores,
    )
    from concepts.tcav._setup import TCAVConfig, TCAVSetup, default_layers
    from concepts.tcav._significance import (
        CorrectionError,
        SignificanceConfig,
        adjust_pvalues,
        benjamini_hochberg,
        compare_to_random,
        direction,
        holm,
    )
else:  # each name loads on first use: importing the package stays cheap (no torch)
    __getattr__, __dir__ = lazy_exports(__name__, __file__)

__all__ = [
    "BASELINE_RUNS_PER_SET",
    "CAV",
    "CORRECTIONS",
    "MAX_INPUTS_PER_CLASS",
    "MIN_EXAMPLES",
    "PROBES",
    "STATISTICS",
    "TABLE_COLUMNS",
    "TESTS",
    "CAVSet",
    "CAVTrainer",
    "ConceptSides",
    "CorrectionError",
    "ProbeTask",
    "SignificanceConfig",
    "TCAVConfig",
    "TCAVReport",
    "TCAVScores",
    "TCAVSetup",
    "adjust_pvalues",
    "attribution_map",
    "baseline_means",
    "benjamini_hochberg",
    "cav_cosine",
    "channel_profile",
    "check_gradients_vary",
    "class_gradients",
    "compare_to_random",
    "concept_map_from_activations",
    "concept_maps",
    "concept_scores",
    "default_layers",
    "direction",
    "fit_cav_batch",
    "fit_cavs",
    "half_sample",
    "holm",
    "plan_runs",
    "random_sets",
    "run_tcav",
    "run_tcav_stages",
    "shared_logit_share",
    "tcav_scores",
]
