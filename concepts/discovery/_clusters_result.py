"""The result of a clustering (:func:`concepts.discovery._clusters.cluster_activations`): views, JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from concepts._errors import DataError
from store import atomic_path, to_jsonable

__all__ = ["CLUSTER_COLUMNS", "ClusteringResult"]

#: Columns of :attr:`ClusteringResult.clusters`.
CLUSTER_COLUMNS: tuple[str, ...] = (
    "rank", "cluster", "group", "size", "class", "n_test", "n_test_class", "n_test_hits",
    "n_assigned_other",
    "purity", "lift",
    "odds_ratio", "or_ci_low", "or_ci_high", "haldane", "test", "p_value", "p_adjusted",
    "suspicious", "exemplar_rows", "exemplar_case_ids", "note",
)


@dataclass(frozen=True)
class ClusteringResult:
    """Clusters of one layer's activations, ranked by how strongly they ride with a class.

    Clusters are found on the discovery cases (``~holdout``) and their association with a class
    is tested on the held-out cases only: ``size`` counts discovery members; ``n_test``,
    ``n_test_class`` (held-out cases of the cluster's class), ``n_test_hits`` (held-out cases
    the membership rule accepts, every class alike), ``n_assigned_other`` (of them, cases of
    another class), ``purity``, ``lift``, the odds ratio and the p-values come from the
    held-out 2 x 2 table.

    Attributes
    ----------
    layer, split, dataset, dataset_hash
        What was clustered (``dataset``/``dataset_hash`` empty for bare arrays); ``split`` is
        the discovery split.
    method, scope, pooling
        Settings (see the module docstring).
    k
        Chosen number of clusters per group (a class name, or ``"all"`` for the global scope).
    k_selection
        The stated criterion that chose ``k``.
    silhouette
        Table ``group, k, silhouette`` of every candidate.
    rows, case_ids
        Data-set row positions and case ids of the clustered cases (input order).
    labels
        Class name of each clustered case.
    assignments
        Cluster id of each discovery case (-1 for held-out cases).
    clusters
        One row per cluster, ranked best first (columns :data:`CLUSTER_COLUMNS`).
    classes
        Class names.
    test_split
        The split the associations were tested on.
    holdout
        ``True`` for the held-out (test) cases (``None``: none, a result saved before holdouts).
    membership
        The rule that counts a held-out case as a member (``probe`` or ``centroid``).
    """

    layer: str
    split: str
    method: str
    scope: str
    pooling: str
    k: dict[str, int]
    k_selection: str
    silhouette: pd.DataFrame = field(repr=False)
    rows: np.ndarray = field(repr=False)
    case_ids: tuple[str, ...] = field(repr=False)
    labels: np.ndarray = field(repr=False)
    assignments: np.ndarray = field(repr=False)
    clusters: pd.DataFrame = field(repr=False)
    classes: tuple[str, ...] = ()
    dataset: str = ""
    dataset_hash: str = ""
    test_split: str = ""
    holdout: np.ndarray | None = field(default=None, repr=False)
    membership: str = ""

    # ---------------------------------------------------------------- views
    def _check(self, cluster_id: int) -> int:
        cid = int(cluster_id)
        if cid not in set(self.clusters["cluster"].tolist()):
            raise DataError(
                f"no cluster {cluster_id!r}; this clustering has clusters "
                f"{sorted(self.clusters['cluster'].tolist())}"
            )
        return cid

    def cluster(self, cluster_id: int) -> dict[str, Any]:
        """The ranking row of one cluster as a dict."""
        cid = self._check(cluster_id)
        row = self.clusters[self.clusters["cluster"] == cid].iloc[0]
        return {k: row[k] for k in self.clusters.columns}

    def member_mask(self, cluster_id: int) -> np.ndarray:
        """Boolean mask over the clustered cases: members of the cluster."""
        return np.asarray(self.assignments == self._check(cluster_id))

    def members(self, cluster_id: int) -> np.ndarray:
        """Data-set row positions of the members of a cluster."""
        return np.asarray(self.rows[self.member_mask(cluster_id)])

    def member_case_ids(self, cluster_id: int) -> list[str]:
        """Case ids of the members of a cluster."""
        m = self.member_mask(cluster_id)
        return [c for c, keep in zip(self.case_ids, m, strict=True) if keep]

    def rest_case_ids(self, cluster_id: int) -> list[str]:
        """Case ids of the non-members: the rest of its class (within-class scope) or of all."""
        m = self.member_mask(cluster_id)
        grp = str(self.cluster(cluster_id)["group"])
        same = np.ones(len(m), bool) if self.scope == "global" else (self.labels == grp)
        if self.holdout is not None:
            same &= ~np.asarray(self.holdout, dtype=bool)
        return [c for c, keep in zip(self.case_ids, same & ~m, strict=True) if keep]

    def exemplars(self, cluster_id: int) -> list[int]:
        """Data-set row positions of the members nearest to the centroid (nearest first)."""
        return [int(r) for r in self.cluster(cluster_id)["exemplar_rows"]]

    def suspicious(self) -> pd.DataFrame:
        """The suspicious clusters, ranked."""
        return self.clusters[self.clusters["suspicious"]].reset_index(drop=True)

    # ---------------------------------------------------------------- persistence
    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (NaN -> None)."""
        return {
            "format": "concept-workbench-clusters/1",
            "layer": self.layer, "split": self.split, "method": self.method,
            "scope": self.scope, "pooling": self.pooling, "k": dict(self.k),
            "k_selection": self.k_selection, "classes": list(self.classes),
            "dataset": self.dataset, "dataset_hash": self.dataset_hash,
            "test_split": self.test_split, "membership": self.membership,
            "holdout": None if self.holdout is None else [bool(h) for h in self.holdout],
            "rows": [int(r) for r in self.rows], "case_ids": list(self.case_ids),
            "labels": [str(x) for x in self.labels],
            "assignments": [int(x) for x in self.assignments],
            "silhouette": [{k: to_jsonable(v) for k, v in r.items()} for r in self.silhouette.to_dict("records")],
            "clusters": [{k: to_jsonable(v) for k, v in r.items()} for r in self.clusters.to_dict("records")],
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ClusteringResult:
        """Inverse of :meth:`to_json`."""
        try:
            clusters = pd.DataFrame(list(d["clusters"]), columns=list(CLUSTER_COLUMNS))
            for col in ("n_test", "n_test_class", "n_test_hits"):
                clusters[col] = clusters[col].fillna(0).astype(int)
            for col in ("exemplar_rows", "exemplar_case_ids"):
                clusters[col] = clusters[col].map(tuple)
            for col in ("purity", "lift", "odds_ratio", "or_ci_low", "or_ci_high", "p_value", "p_adjusted"):
                clusters[col] = pd.to_numeric(clusters[col]).astype(float)
            return cls(
                layer=str(d["layer"]), split=str(d["split"]), method=str(d["method"]),
                scope=str(d["scope"]), pooling=str(d["pooling"]),
                k={str(k): int(v) for k, v in dict(d["k"]).items()},
                k_selection=str(d["k_selection"]),
                silhouette=pd.DataFrame(list(d["silhouette"]), columns=["group", "k", "silhouette"]),
                rows=np.asarray(d["rows"], dtype=np.int64),
                case_ids=tuple(str(c) for c in d["case_ids"]),
                labels=np.asarray(d["labels"], dtype=object),
                assignments=np.asarray(d["assignments"], dtype=np.int64),
                clusters=clusters, classes=tuple(d.get("classes", ())),
                dataset=str(d.get("dataset", "")), dataset_hash=str(d.get("dataset_hash", "")),
                test_split=str(d.get("test_split", "")), membership=str(d.get("membership", "")),
                holdout=None if d.get("holdout") is None else np.asarray(d["holdout"], dtype=bool),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"not a saved clustering result ({exc}) — recompute it") from exc

    def save(self, path: str | Path) -> Path:
        """Write the result as JSON (atomic)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(p, private=False) as tmp:
            tmp.write_text(json.dumps(self.to_json(), indent=1))
        return p

    @classmethod
    def load(cls, path: str | Path) -> ClusteringResult:
        """Read a result written by :meth:`save`."""
        p = Path(path)
        if not p.is_file():
            raise DataError(f"no saved clustering at {p} — run `workbench clusters` first")
        try:
            d = json.loads(p.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{p} is corrupt ({exc}) — run `workbench clusters` again") from exc
        return cls.from_json(d)
