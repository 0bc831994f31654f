"""DuckDB persistence of the workbench's intervention history.

Append-only, attributed, tamper-evident (a sha256 hash chain over canonical JSON) and
exportable for audit. One DuckDB file per workspace (``<workspace>/store.duckdb``). This
package imports none of the other workbench packages; specs are plain JSON dicts.

Example
-------
>>> from store import Actor, Store
>>> s = Store.for_workspace("workspace")                      # doctest: +SKIP
>>> derm = Actor.from_oidc("sub-123", "dermatologist", "Dr A")  # doctest: +SKIP
>>> ev = s.record_intervention(derm, {"op": "suppress", "concept": "ruler"})  # doctest: +SKIP
>>> s.verify().ok                                             # doctest: +SKIP
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from store._lazy import lazy_exports

if TYPE_CHECKING:
    from store._anchors import Anchor
    from store._atomic import atomic_path
    from store._canonical import canonical_json, replace_nonfinite
    from store._chain import VerifyResult
    from store._errors import (
        ChainError,
        MigrationError,
        NotFoundError,
        PermissionDenied,
        StoreBusyError,
        StoreError,
        ValidationError,
    )
    from store._export import (
        neutralise_csv_cell,
        read_export,
        verify_file,
    )
    from store._fields import blank
    from store._finite import finite_or_none, to_jsonable
    from store._formats import EXPORT_FORMATS
    from store._model import Event, EventFilter
    from store._outpath import safe_output_path, write_atomic
    from store._report_common import auc_interval, balanced_interval, wilson
    from store._roles import PERMISSIONS, Action, Actor, Role, os_user_name
    from store._store import Store

__all__ = [
    "EXPORT_FORMATS",
    "PERMISSIONS",
    "Action",
    "Actor",
    "Anchor",
    "ChainError",
    "Event",
    "EventFilter",
    "MigrationError",
    "NotFoundError",
    "PermissionDenied",
    "Role",
    "Store",
    "StoreBusyError",
    "StoreError",
    "ValidationError",
    "VerifyResult",
    "atomic_path",
    "auc_interval",
    "balanced_interval",
    "blank",
    "canonical_json",
    "finite_or_none",
    "lazy_exports",
    "neutralise_csv_cell",
    "os_user_name",
    "read_export",
    "replace_nonfinite",
    "safe_output_path",
    "to_jsonable",
    "verify_file",
    "wilson",
    "write_atomic",
]

__getattr__, __dir__ = lazy_exports(__name__, __file__)
