"""concepts.tcav."""

from typing import TYPE_CHECKING

from concepts._lazy import lazy_exports

if TYPE_CHECKING:
    from concepts.tcav._cav import (
        CAV,
        MIN_EXAMPLES,
        PROBES,
        CAVSet,
        CAVTrainer,
        ProbeTask,
        cav_cosine,
        fit_cav_batch,
        fit_cavs,
    )
    from concepts.tcav._core import (
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
    from concepts.tcav._run import TABLE_COLUMNS, TCAVReport, TCAVSetup, default_layers, run_tcav
    from concepts.tcav._scores import (
        attribution_map,
        channel_profile,
        concept_map_from_activations,
        concept_maps,
        concept_scores,
    )
    from concepts.tcav._significance import (
        CORRECTIONS,
        STATISTICS,
        TESTS,
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
    "MIN_EXAMPLES",
    "PROBES",
    "STATISTICS",
    "TABLE_COLUMNS",
    "TESTS",
    "CAVSet",
    "CAVTrainer",
    "ConceptSides",
    "ProbeTask",
    "SignificanceConfig",
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
    "shared_logit_share",
    "tcav_scores",
]
