"""Export of the event log for auditors (DuckDB ``COPY ... TO``) and verification of exports.

An export holds every column of the ``events`` table, chain fields included, so it can be
verified on its own with :func:`verify_file` (no database needed). JSON columns are exported
as JSON *text* in all three formats; CSV distinguishes SQL NULL (empty field) from the empty
string (``""``).
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import duckdb

from store._chain import GENESIS_HASH, VerifyResult, verify_event_rows
from store._conn import rollback_quietly
from store._errors import NotFoundError, StoreError, ValidationError
from store._schema import EVENT_COLUMNS

__all__ = ["EXPORT_FORMATS", "file_sha256", "read_export", "resolve_format", "verify_file",
           "write_export"]

#: Supported export formats.
EXPORT_FORMATS: tuple[str, ...] = ("csv", "parquet", "jsonl")
_EXTENSIONS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl",
               ".ndjson": "jsonl", ".json": "jsonl"}
_COPY_OPTIONS = {
    "csv": "(FORMAT csv, HEADER true, DELIMITER ',', QUOTE '\"', ESCAPE '\"')",
    "parquet": "(FORMAT parquet)",
    "jsonl": "(FORMAT json)",
}
_COLS = ", ".join(EVENT_COLUMNS)


def resolve_format(path: Path, fmt: str | None) -> str:
    """The export format: ``fmt`` if given, else from ``path``'s extension.

    Raises
    ------
    ValidationError
        Unknown format or extension.
    """
    if fmt is None:
        guessed = _EXTENSIONS.get(Path(path).suffix.lower())
        if guessed is None:
            raise ValidationError(
                f"cannot tell the format of {path}; name it .csv, .parquet or .jsonl or pass "
                "a format"
            )
        return guessed
    norm = fmt.strip().lower()
    if norm == "json":
        norm = "jsonl"
    if norm not in EXPORT_FORMATS:
        raise ValidationError(f"unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")
    return norm


def file_sha256(path: Path) -> str:
    """sha256 hex of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_export(
    con: duckdb.DuckDBPyConnection, out: Path, fmt: str, where: str, params: list[Any]
) -> tuple[int, int | None, int | None]:
    """Write the filtered events to ``out`` atomically; return (n_rows, first_seq, last_seq).

    The file is written to a temporary sibling and renamed into place, so a failed export
    never leaves a partial file under ``out``. Counting and copying happen in one transaction,
    so the numbers describe exactly the rows written.
    """
    out = Path(out)
    if out.is_dir():
        raise ValidationError(f"{out} is a directory; give a file name for the export")
    if not out.parent.is_dir():
        raise ValidationError(f"the folder {out.parent} does not exist; create it first")
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex}.tmp")
    try:
        con.execute("BEGIN TRANSACTION")
        try:
            n, first, last = con.execute(
                f"SELECT count(*), min(seq), max(seq) FROM events{where}", params
            ).fetchone() or (0, None, None)
            con.execute(
                f"COPY (SELECT {_COLS} FROM events{where} ORDER BY seq) TO ? {_COPY_OPTIONS[fmt]}",
                [*params, str(tmp)],
            )
            con.execute("COMMIT")
        except BaseException:
            rollback_quietly(con)
            raise
        os.replace(tmp, out)
    except duckdb.Error as exc:
        raise StoreError(f"export to {out} failed: {exc}") from None
    except OSError as exc:
        raise StoreError(f"export to {out} failed: {exc}") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return int(n), first, last


def read_export(path: Path, fmt: str | None = None) -> list[dict[str, Any]]:
    """Read an exported events file back as a list of row dicts.

    Raises
    ------
    NotFoundError
        The file does not exist.
    ValidationError
        The file cannot be parsed or lacks event columns.
    """
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"no such export file: {path}")
    fmt = resolve_format(path, fmt)
    if fmt == "jsonl":
        rows = []
        # split on "\n" only: U+2028 and friends may appear raw inside JSON strings
        for lineno, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise ValidationError(f"{path} line {lineno} is not UTF-8: {exc}") from None
            except json.JSONDecodeError as exc:
                raise ValidationError(f"{path} line {lineno} is not JSON: {exc}") from None
            if not isinstance(obj, dict):
                raise ValidationError(f"{path} line {lineno} is not a JSON object")
            rows.append(obj)
        columns = set().union(*(r.keys() for r in rows)) if rows else set(EVENT_COLUMNS)
    else:
        con = duckdb.connect()
        try:
            if fmt == "csv":
                rel = con.execute(
                    "SELECT * FROM read_csv(?, header = true, all_varchar = true, "
                    "allow_quoted_nulls = false, delim = ',', quote = '\"', escape = '\"')",
                    [str(path)],
                )
            else:
                rel = con.execute("SELECT * FROM read_parquet(?)", [str(path)])
            names = [d[0] for d in rel.description or []]
            rows = [dict(zip(names, r, strict=True)) for r in rel.fetchall()]
            columns = set(names)
        except duckdb.Error as exc:
            raise ValidationError(f"cannot read {path} as {fmt}: {exc}") from None
        finally:
            con.close()
    missing = [c for c in EVENT_COLUMNS if c not in columns]
    if missing:
        raise ValidationError(
            f"{path} lacks the event columns {missing}; it is not a store export"
        )
    return rows


def verify_file(
    path: str | os.PathLike[str], fmt: str | None = None, *, expected_head: str | None = None
) -> VerifyResult:
    """Verify the hash chain of an exported file (csv, parquet or jsonl) on its own.

    Every row's hash is recomputed; links (``prev_hash``) are checked between rows with
    consecutive ``seq``. A filtered export has gaps and yields ``complete=False``; an
    unfiltered one must start at seq 1 and is checked end to end.

    Parameters
    ----------
    path
        The exported file.
    fmt
        Format; guessed from the extension when None.
    expected_head
        Optional head hash anchored elsewhere that must appear in the file.

    Returns
    -------
    VerifyResult
        ``ok`` False names the first bad seq and why. A file that cannot be read at all
        raises instead.
    """
    try:
        rows = read_export(Path(path), fmt)
    except UnicodeDecodeError as exc:
        raise ValidationError(f"{path} is not valid UTF-8: {exc}") from None
    if not rows:
        return VerifyResult(True, 0, None, "", GENESIS_HASH, 0, True)
    return verify_event_rows(rows, require_complete=False, expected_head=expected_head)
