"""Schema: numbered SQL migrations with recorded checksums, and the column layout.

Migrations live in ``store/migrations/NNNN_name.sql`` (package data). Each is applied once, in
its own transaction, and recorded in ``schema_version`` with the sha256 of its text (line
endings normalised to ``\\n``). At every open the recorded checksums are compared with the
shipped files: a migration that changed after it was applied, or that the store recorded but
this installation lacks, raises :class:`~store.MigrationError`; nothing is re-run silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import duckdb

from store._canonical import sha256_hex
from store._errors import MigrationError

__all__ = [
    "EVENT_COLUMNS",
    "JSON_EVENT_COLUMNS",
    "REF_TABLES",
    "Migration",
    "RefTable",
    "load_migrations",
    "migrate",
    "utc_now_iso",
]

#: Columns of ``events``, in order. All are hashed except ``hash`` itself.
EVENT_COLUMNS: tuple[str, ...] = (
    "seq",
    "event_id",
    "ts",
    "actor_id",
    "actor_role",
    "actor_name",
    "actor_source",
    "action",
    "model_id",
    "weights_sha_before",
    "weights_sha_after",
    "dataset_hash",
    "intervention_id",
    "concept",
    "spec",
    "rationale",
    "evidence",
    "metric_deltas",
    "records",
    "project_version",
    "prev_hash",
    "hash",
)
#: Event columns holding JSON text; they enter the hash as parsed JSON values.
JSON_EVENT_COLUMNS: frozenset[str] = frozenset({"spec", "evidence", "metric_deltas", "records"})

ColumnKind = Literal["text", "int", "float", "json"]


@dataclass(frozen=True)
class RefTable:
    """An append-only reference table: its payload columns (hashed) and their kinds."""

    name: str
    columns: tuple[tuple[str, ColumnKind], ...]

    @property
    def names(self) -> tuple[str, ...]:
        """Payload column names, in order."""
        return tuple(c for c, _ in self.columns)


REF_TABLES: dict[str, RefTable] = {
    t.name: t
    for t in (
        RefTable(
            "models",
            (("model_id", "text"), ("architecture", "text"), ("weights_sha256", "text"),
             ("meta", "json")),
        ),
        RefTable(
            "datasets",
            (("dataset_id", "text"), ("content_hash", "text"), ("splits", "json"),
             ("meta", "json")),
        ),
        RefTable(
            "concepts",
            (("concept_id", "text"), ("version", "int"), ("examples_hash", "text"),
             ("meta", "json")),
        ),
        RefTable(
            "cav_runs",
            (("run_id", "text"), ("concept_id", "text"), ("concept_version", "int"),
             ("model_id", "text"), ("layer", "text"), ("dataset_hash", "text"),
             ("seed", "int"), ("accuracy", "float"), ("params", "json")),
        ),
        RefTable(
            "tcav_results",
            (("concept", "text"), ("layer", "text"), ("target", "text"),
             ("tcav_score", "float"), ("p_value", "float"), ("p_adj", "float"),
             ("n_runs", "int"), ("extra", "json")),
        ),
        RefTable("interventions", (("intervention_id", "text"), ("spec", "json"))),
        RefTable(
            "intervention_effects",
            (("intervention_id", "text"), ("metrics_before", "json"),
             ("metrics_after", "json"), ("reliance", "json")),
        ),
    )
}

_NAME_RE = re.compile(r"^(\d{4})_([A-Za-z0-9_]+)\.sql$")

_BOOTSTRAP = """
CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER PRIMARY KEY,
    name       VARCHAR NOT NULL,
    sha256     VARCHAR NOT NULL,
    applied_at VARCHAR NOT NULL
)
"""


def utc_now_iso(now: datetime | None = None) -> str:
    """Fixed-width UTC ISO-8601 timestamp with microseconds: ``2026-01-31T12:00:00.000000Z``."""
    now = now or datetime.now(UTC)
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Migration:
    """One numbered SQL migration file."""

    version: int
    name: str
    sql: str
    sha256: str


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """Read the migration files (the packaged ones unless ``directory`` is given).

    Raises
    ------
    MigrationError
        If a file name is malformed or the numbering has gaps or duplicates.
    """
    if directory is None:
        root = resources.files("store") / "migrations"
        entries = [(p.name, p.read_bytes()) for p in root.iterdir() if p.name.endswith(".sql")]
    else:
        entries = [(p.name, p.read_bytes()) for p in Path(directory).glob("*.sql")]
    migrations: list[Migration] = []
    for name, raw in sorted(entries):
        m = _NAME_RE.match(name)
        if not m:
            raise MigrationError(
                f"migration file {name!r} is not named NNNN_name.sql; rename it"
            )
        text = raw.decode("utf-8").replace("\r\n", "\n")
        migrations.append(Migration(int(m.group(1)), name, text, sha256_hex(text.encode())))
    for expected, mig in enumerate(migrations, start=1):
        if mig.version != expected:
            raise MigrationError(
                f"migration {expected:04d} is missing from this installation (found "
                f"{mig.name} instead); reinstall concept-workbench"
            )
    if not migrations:
        raise MigrationError("no migrations found; reinstall concept-workbench")
    return migrations


def migrate(con: duckdb.DuckDBPyConnection, migrations: list[Migration], where: str) -> int:
    """Check recorded migrations against ``migrations`` and apply the pending ones.

    Parameters
    ----------
    con
        An open read-write connection (no transaction in progress).
    migrations
        From :func:`load_migrations`.
    where
        The store path, for messages.

    Returns
    -------
    int
        The schema version after migrating.

    Raises
    ------
    MigrationError
        A recorded migration changed or is missing, or applying a pending one failed (that
        migration is rolled back).
    """
    _check_is_store(con, where)
    con.execute(_BOOTSTRAP)
    recorded = con.execute(
        "SELECT version, name, sha256 FROM schema_version ORDER BY version"
    ).fetchall()
    _check_recorded(recorded, migrations, where)
    done = {v for v, _, _ in recorded}
    for mig in migrations:
        if mig.version not in done:
            _apply(con, mig, where)
    return max(m.version for m in migrations)


def _check_is_store(con: duckdb.DuckDBPyConnection, where: str) -> None:
    """Refuse a DuckDB file that has tables but no ``schema_version`` (not a store)."""
    tables = {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
        ).fetchall()
    }
    if "schema_version" not in tables and tables:
        raise MigrationError(
            f"{where} is a DuckDB file but not a workbench store (it has tables "
            f"{sorted(tables)[:5]} and no schema_version); point the store at a new file"
        )


def _check_recorded(
    recorded: list[tuple[Any, ...]], migrations: list[Migration], where: str
) -> None:
    """Every recorded migration must be shipped, unchanged, by this installation."""
    by_version = {m.version: m for m in migrations}
    for version, name, sha in recorded:
        mig = by_version.get(version)
        if mig is None:
            raise MigrationError(
                f"{where} was migrated with {name}, which this installation does not ship "
                "(the store is newer than the code); upgrade concept-workbench"
            )
        if mig.name != name or mig.sha256 != sha:
            raise MigrationError(
                f"migration {mig.name} differs from the one applied to {where} as {name} "
                f"(recorded sha256 {sha[:12]}..., file {mig.sha256[:12]}...); applied "
                "migrations must never change: restore the original file and add a new "
                "numbered migration instead"
            )


def _apply(con: duckdb.DuckDBPyConnection, mig: Migration, where: str) -> None:
    """Apply one pending migration in its own transaction (rolled back on failure)."""
    try:
        con.execute("BEGIN TRANSACTION")
        con.execute(mig.sql)
        con.execute(
            "INSERT INTO schema_version (version, name, sha256, applied_at) "
            "VALUES (?, ?, ?, ?)",
            [mig.version, mig.name, mig.sha256, utc_now_iso()],
        )
        con.execute("COMMIT")
    except duckdb.Error as exc:
        con.execute("ROLLBACK")
        raise MigrationError(f"applying {mig.name} to {where} failed: {exc}") from exc
