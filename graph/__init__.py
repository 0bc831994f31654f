"""The clinical knowledge graph: the 7-point checklist, diagnoses and artifacts (networkx).

Queries score cases on the checklist, give the clinical relation expected between any concept
and any class, explain it with paths, and hold a model's TCAV reliance against it
(:func:`alignment_report`). See ``docs/graph.md``.
"""

from graph._align import AlignmentFinding, AlignmentReport, alignment_report
from graph._confounders import confounder_report, workspace_confounders, workspace_flip_rates
from graph._cooccur import add_cooccurrence
from graph._expectation import Expectation
from graph._io import dump_graph, from_node_link, read_graph, to_node_link, write_graph
from graph._model import ClinicalGraph
from graph._scoring import checklist_scores, implied_checklist, rule_summary
from graph._taxonomy import TaxonomyError, extend_graph

__all__ = [
    "AlignmentFinding",
    "AlignmentReport",
    "ClinicalGraph",
    "Expectation",
    "TaxonomyError",
    "add_cooccurrence",
    "alignment_report",
    "checklist_scores",
    "confounder_report",
    "dump_graph",
    "extend_graph",
    "from_node_link",
    "implied_checklist",
    "read_graph",
    "rule_summary",
    "to_node_link",
    "workspace_confounders",
    "workspace_flip_rates",
    "write_graph",
]
