"""The clinical knowledge graph: the 7-point checklist, diagnoses and artifacts (networkx).

Queries score cases on the checklist, give the clinical relation expected between any concept
and any class, explain it with paths, and hold a model's TCAV reliance against it
(:func:`alignment_report`). See ``docs/graph.md``.
"""

from graph._align import (
    ALIGNMENT_CATEGORIES,
    COOCCURRENCE_EVIDENCE_COLUMNS,
    TCAV_COLUMNS,
    AlignmentFinding,
    AlignmentReport,
    alignment_report,
)
from graph._confounders import (
    CONFOUNDER_COLUMNS,
    RELEVANCE_WEIGHTS,
    confounder_report,
    rank_confounders,
    workspace_confounders,
    workspace_flip_rates,
)
from graph._cooccur import COOCCURRENCE_COLUMNS, add_cooccurrence, cooccurrence_table
from graph._expectation import Expectation
from graph._io import (
    GRAPH_FORMATS,
    dump_graph,
    from_node_link,
    read_graph,
    to_node_link,
    write_graph,
)
from graph._model import ClinicalGraph, Neighbor, PathStep
from graph._schema import EXPECTATION_RELATIONS, NODE_KINDS, RELATIONS, validate_graph
from graph._scoring import RuleSummary, checklist_scores, implied_checklist, rule_summary
from graph._taxonomy import (
    TAXONOMY_FIELDS,
    USER_RELATIONS,
    TaxonomyError,
    extend_graph,
    read_taxonomy,
)

__all__ = [
    "ALIGNMENT_CATEGORIES",
    "CONFOUNDER_COLUMNS",
    "COOCCURRENCE_COLUMNS",
    "COOCCURRENCE_EVIDENCE_COLUMNS",
    "EXPECTATION_RELATIONS",
    "GRAPH_FORMATS",
    "NODE_KINDS",
    "RELATIONS",
    "RELEVANCE_WEIGHTS",
    "TAXONOMY_FIELDS",
    "TCAV_COLUMNS",
    "USER_RELATIONS",
    "AlignmentFinding",
    "AlignmentReport",
    "ClinicalGraph",
    "Expectation",
    "Neighbor",
    "PathStep",
    "RuleSummary",
    "TaxonomyError",
    "add_cooccurrence",
    "alignment_report",
    "checklist_scores",
    "confounder_report",
    "cooccurrence_table",
    "dump_graph",
    "extend_graph",
    "from_node_link",
    "implied_checklist",
    "rank_confounders",
    "read_graph",
    "read_taxonomy",
    "rule_summary",
    "to_node_link",
    "validate_graph",
    "workspace_confounders",
    "workspace_flip_rates",
    "write_graph",
]
