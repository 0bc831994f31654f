"""Store schema: numbered migrations, recorded checksums, checks at open."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

import duckdb
import pytest

from store import Actor, MigrationError, NotFoundError, Store, StoreError
from store._schema import load_migrations

DERM = Actor.from_oidc("sub-derm", "dermatologist", "Dr Derm")


@pytest.fixture()
def migrations(tmp_path: Path) -> Path:
    """A private copy of the packaged migrations that a test may change."""
    src = resources.files("store") / "migrations"
    dst = tmp_path / "migrations"
    dst.mkdir()
    for entry in src.iterdir():
        if entry.name.endswith(".sql"):
            (dst / entry.name).write_bytes(entry.read_bytes())
    return dst


def _recorded(path: Path) -> list[tuple[int, str, str]]:
    con = duckdb.connect(str(path))
    try:
        return con.execute("SELECT version, name, sha256 FROM schema_version ORDER BY version").fetchall()
    finally:
        con.close()


def test_fresh_store_records_every_migration_with_its_checksum(tmp_path: Path) -> None:
    store = Store(tmp_path / "store.duckdb")
    shipped = load_migrations()
    assert [m.name for m in shipped][:2] == ["0001_init.sql", "0002_reference.sql"]
    assert store.schema_version == len(shipped)
    assert _recorded(store.path) == [(m.version, m.name, m.sha256) for m in shipped]
    con = duckdb.connect(str(store.path))
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    con.close()
    assert {"events", "models", "datasets", "concepts", "cav_runs", "tcav_results",
            "interventions", "intervention_effects", "schema_version"} <= tables


def test_reopening_does_not_rerun_migrations(tmp_path: Path) -> None:
    store = Store(tmp_path / "store.duckdb")
    store.append_event(DERM, "concept_named", concept="ruler")
    before = _recorded(store.path)
    again = Store(tmp_path / "store.duckdb")
    assert _recorded(again.path) == before
    assert again.verify().n_events == 1


def test_changed_migration_file_is_an_error(tmp_path: Path, migrations: Path) -> None:
    path = tmp_path / "store.duckdb"
    Store(path, migrations_dir=migrations)
    sql = migrations / "0001_init.sql"
    sql.write_text(sql.read_text() + "\n-- tweaked\n")
    with pytest.raises(MigrationError, match=r"0001_init\.sql.*must never change"):
        Store(path, migrations_dir=migrations)


def test_changed_recorded_checksum_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "store.duckdb"
    Store(path)
    con = duckdb.connect(str(path))
    con.execute("UPDATE schema_version SET sha256 = ? WHERE version = 2", ["0" * 64])
    con.close()
    with pytest.raises(MigrationError, match=r"0002_reference\.sql"):
        Store(path)


def test_migration_missing_from_installation_is_an_error(tmp_path: Path, migrations: Path) -> None:
    path = tmp_path / "store.duckdb"
    (migrations / "0003_notes.sql").write_text("CREATE TABLE notes (note VARCHAR);\n")
    Store(path, migrations_dir=migrations)
    assert [r[0] for r in _recorded(path)] == [1, 2, 3]
    with pytest.raises(MigrationError, match=r"0003_notes\.sql.*upgrade"):
        Store(path)  # the packaged set lacks 0003


def test_gap_in_migration_numbers_is_an_error(tmp_path: Path, migrations: Path) -> None:
    (migrations / "0002_reference.sql").rename(migrations / "0003_reference.sql")
    with pytest.raises(MigrationError, match="0002 is missing"):
        Store(tmp_path / "store.duckdb", migrations_dir=migrations)


def test_badly_named_migration_is_an_error(tmp_path: Path, migrations: Path) -> None:
    (migrations / "3_oops.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=r"NNNN_name\.sql"):
        Store(tmp_path / "store.duckdb", migrations_dir=migrations)


def test_pending_migration_is_applied_once(tmp_path: Path, migrations: Path) -> None:
    path = tmp_path / "store.duckdb"
    Store(path, migrations_dir=migrations).append_event(DERM, "concept_named", concept="x")
    (migrations / "0003_notes.sql").write_text("CREATE TABLE notes (note VARCHAR);\n")
    store = Store(path, migrations_dir=migrations)
    assert store.schema_version == 3
    assert Store(path, migrations_dir=migrations).schema_version == 3
    assert store.verify().ok


def test_failing_migration_is_rolled_back(tmp_path: Path, migrations: Path) -> None:
    path = tmp_path / "store.duckdb"
    Store(path, migrations_dir=migrations)
    (migrations / "0003_bad.sql").write_text(
        "CREATE TABLE half (x INTEGER);\nCREATE TABLE events (dup INTEGER);\n"
    )
    with pytest.raises(MigrationError, match=r"0003_bad\.sql"):
        Store(path, migrations_dir=migrations)
    con = duckdb.connect(str(path))
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    versions = [r[0] for r in con.execute("SELECT version FROM schema_version").fetchall()]
    con.close()
    assert "half" not in tables and versions == [1, 2]


def test_foreign_duckdb_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE sales (x INTEGER)")
    con.close()
    with pytest.raises(MigrationError, match="not a workbench store"):
        Store(path)


def test_garbage_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "store.duckdb"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot open the store"):
        Store(path)


def test_missing_store_with_create_false(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no store at"):
        Store(tmp_path / "nope" / "store.duckdb", create=False)
    assert not (tmp_path / "nope").exists()


def test_for_workspace_uses_store_duckdb(tmp_path: Path) -> None:
    store = Store.for_workspace(tmp_path / "ws")
    assert store.path == (tmp_path / "ws" / "store.duckdb").absolute()
    assert store.path.exists()
    shutil.rmtree(tmp_path / "ws")
