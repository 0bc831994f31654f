"""concepts.discovery."""

from typing import TYPE_CHECKING

from store import lazy_exports

if TYPE_CHECKING:
    from concepts.discovery._cluster_fit import pool_activations
    from concepts.discovery._cluster_workspace import (
        cluster_associations,
        cluster_dataset,
        name_cluster,
    )
    from concepts.discovery._clusters import cluster_activations
    from concepts.discovery._clusters_result import CLUSTER_COLUMNS, ClusteringResult
    from concepts.discovery._cooccurrence import (
        ATTRIBUTE_CLASS_COLUMNS,
        ATTRIBUTE_PAIR_COLUMNS,
        attribute_class_table,
        attribute_pair_table,
    )
    from concepts.discovery._cooccurrence_sql import ALL_SPLITS, AttributeSource
    from concepts.discovery._cooccurrence_stats import (
        Correction,
        check_correction,
        odds_ratio_ci,
        two_by_two_test,
    )
    from concepts.discovery._reliance import (
        FLIP_TABLE_COLUMNS,
        FlipRate,
        artifact_flip_table,
        counterfactual_flip_rate,
        evaluation_split,
        flip_rates_from_twins,
        is_dermsynth,
        planted_confounders,
    )
    from concepts.tcav import adjust_pvalues
else:  # each name loads on first use: importing the package stays cheap (no torch)
    __getattr__, __dir__ = lazy_exports(__name__, __file__)

__all__ = [
    "ALL_SPLITS",
    "ATTRIBUTE_CLASS_COLUMNS",
    "ATTRIBUTE_PAIR_COLUMNS",
    "CLUSTER_COLUMNS",
    "FLIP_TABLE_COLUMNS",
    "AttributeSource",
    "ClusteringResult",
    "Correction",
    "FlipRate",
    "adjust_pvalues",
    "artifact_flip_table",
    "attribute_class_table",
    "attribute_pair_table",
    "check_correction",
    "cluster_activations",
    "cluster_associations",
    "cluster_dataset",
    "counterfactual_flip_rate",
    "evaluation_split",
    "flip_rates_from_twins",
    "is_dermsynth",
    "name_cluster",
    "odds_ratio_ci",
    "planted_confounders",
    "pool_activations",
    "two_by_two_test",
]
