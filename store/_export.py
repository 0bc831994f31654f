"""Export of the event log for auditors (DuckDB ``COPY ... TO``) and verification of exports.

An export holds every column of the ``events`` table, chain fields included, so it can be
verified on its own with :func:`verify_file` (no database needed). JSON columns are exported
as JSON *text* in all three formats; CSV distinguishes SQL NULL (empty field) from the empty
string (``""``).

Every row also carries the export's own record (version 2 exports):

``export_version``
    2.
``export_complete``
    True for an unfiltered export. A complete export must run from seq 1 to
    ``export_head_seq`` without a gap, so deleting its first, a middle or its last row fails.
``export_n_rows``
    Rows written: deleting rows from a filtered export fails too.
``export_head_seq``, ``export_head_hash``
    The store's head when the export was made (an anchor that leaves the machine).
``export_filters``
    The filters, as JSON text.

CSV formula injection: a text cell that starts with ``= + - @``, a tab, a carriage return or
an apostrophe is written with one extra leading apostrophe (``'=HYPERLINK(...)``), so a
spreadsheet shows it as text instead of running it. :func:`read_export` removes exactly one
leading apostrophe from every cell of a version-2 CSV, which restores the original values, so
the hashes of a CSV export still verify. Parquet and JSON lines keep the original text.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from store._chain import GENESIS_HASH, VerifyResult, verify_event_rows
from store._conn import rollback_quietly
from store._errors import NotFoundError, StoreError, ValidationError
from store._formats import EXPORT_FORMATS
from store._schema import EVENT_COLUMNS

__all__ = [
    "EXPORT_META_COLUMNS",
    "EXPORT_VERSION",
    "ExportMeta",
    "file_sha256",
    "neutralise_csv_cell",
    "read_export",
    "resolve_format",
    "verify_file",
    "write_export",
]

#: Version of the export layout written by this module (2: with ``export_*`` columns).
EXPORT_VERSION = 2
#: Columns every version-2 export adds to the event columns.
EXPORT_META_COLUMNS: tuple[str, ...] = ("export_version", "export_complete", "export_n_rows",
                                        "export_head_seq", "export_head_hash", "export_filters")
#: Leading characters a spreadsheet may run as a formula, plus the escape character itself.
CSV_RISKY_LEADS = ("=", "+", "-", "@", "\t", "\r", "'")
_CSV_RISKY_SQL = "'^[=+@''\t\r-]'"  # SQL literal of the same set as an RE2 class
_EXTENSIONS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl",
               ".ndjson": "jsonl", ".json": "jsonl"}
_COPY_OPTIONS = {
    "csv": "(FORMAT csv, HEADER true, DELIMITER ',', QUOTE '\"', ESCAPE '\"')",
    "parquet": "(FORMAT parquet)",
    "jsonl": "(FORMAT json)",
}


def neutralise_csv_cell(value: str) -> str:
    """``value`` with one leading apostrophe when a spreadsheet could run it as a formula."""
    return "'" + value if value.startswith(CSV_RISKY_LEADS) else value


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


@dataclass(frozen=True)
class ExportMeta:
    """What an export holds (also written into every row as the ``export_*`` columns).

    Attributes
    ----------
    n_rows, first_seq, last_seq
        Rows written and their seq range.
    complete
        True for an unfiltered export: the whole chain from seq 1 to the head.
    head_seq, head_hash
        The store's head when the export was made.
    filters
        The filters applied (empty for a complete export).
    """

    n_rows: int
    first_seq: int | None
    last_seq: int | None
    complete: bool
    head_seq: int
    head_hash: str
    filters: Mapping[str, str]


def _select_list(fmt: str) -> str:
    """Event columns plus the export record; CSV text cells neutralised (see module doc)."""
    if fmt == "csv":
        cols = ["seq"] + [
            f"CASE WHEN regexp_matches({c}, {_CSV_RISKY_SQL}) THEN '''' || {c} ELSE {c} END AS {c}"
            for c in EVENT_COLUMNS if c != "seq"
        ]
    else:
        cols = list(EVENT_COLUMNS)
    meta = [f"{EXPORT_VERSION} AS export_version", "?::BOOLEAN AS export_complete",
            "?::BIGINT AS export_n_rows", "?::BIGINT AS export_head_seq",
            "?::VARCHAR AS export_head_hash", "?::VARCHAR AS export_filters"]
    return ", ".join(cols + meta)


def write_export(
    con: duckdb.DuckDBPyConnection, tmp: Path, fmt: str, where: str, params: list[Any],
    filters: Mapping[str, str],
) -> ExportMeta:
    """Write the filtered events to ``tmp`` (a temporary name the caller renames into place).

    Counting, reading the head and copying happen in one transaction, so the numbers describe
    exactly the rows written. On failure ``tmp`` is removed.

    Raises
    ------
    StoreError
        DuckDB could not write the file.
    """
    try:
        con.execute("BEGIN TRANSACTION")
        try:
            n, first, last = con.execute(
                f"SELECT count(*), min(seq), max(seq) FROM events{where}", params
            ).fetchone() or (0, None, None)
            head = con.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
            head_seq, head_hash = (int(head[0]), str(head[1])) if head else (0, GENESIS_HASH)
            meta = ExportMeta(int(n), first, last, not where, head_seq, head_hash, dict(filters))
            meta_params = [meta.complete, meta.n_rows, head_seq, head_hash,
                           json.dumps(dict(meta.filters), sort_keys=True)]
            con.execute(
                f"COPY (SELECT {_select_list(fmt)} FROM events{where} ORDER BY seq) TO ? "
                f"{_COPY_OPTIONS[fmt]}",
                [*meta_params, *params, str(tmp)],
            )
            con.execute("COMMIT")
        except BaseException:
            rollback_quietly(con)
            tmp.unlink(missing_ok=True)
            raise
    except duckdb.Error as exc:
        raise StoreError(f"export failed: {exc}") from None
    return meta


def _read_jsonl(path: Path) -> tuple[list[dict[str, Any]], set[str]]:
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
    return rows, columns


def _read_table(path: Path, fmt: str) -> tuple[list[dict[str, Any]], set[str]]:
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
    except duckdb.Error as exc:
        raise ValidationError(f"cannot read {path} as {fmt}: {exc}") from None
    finally:
        con.close()
    if fmt == "csv" and "export_version" in names:  # undo the formula neutralisation
        rows = [{k: v[1:] if isinstance(v, str) and v.startswith("'") else v
                 for k, v in r.items()} for r in rows]
    return rows, set(names)


def read_export(path: Path, fmt: str | None = None) -> list[dict[str, Any]]:
    """Read an exported events file back as a list of row dicts (original cell values).

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
    rows, columns = _read_jsonl(path) if fmt == "jsonl" else _read_table(path, fmt)
    missing = [c for c in EVENT_COLUMNS if c not in columns]
    if missing:
        raise ValidationError(
            f"{path} lacks the event columns {missing}; it is not a store export"
        )
    return rows


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    return {"true": True, "false": False}.get(str(value).strip().lower())


def _export_record(rows: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, str]:
    """The export record shared by every row, or (None, why it is missing or inconsistent)."""
    if "export_version" not in rows[0]:
        return None, ""
    records = {tuple(str(r.get(c)) for c in EXPORT_META_COLUMNS) for r in rows}
    if len(records) != 1:
        return None, "the export_* columns differ between rows: the file was edited"
    first = rows[0]
    rec = {"complete": _as_bool(first.get("export_complete")),
           "n_rows": _as_int(first.get("export_n_rows")),
           "head_seq": _as_int(first.get("export_head_seq")),
           "head_hash": first.get("export_head_hash")}
    if None in rec.values():
        return None, "the export_* columns are not valid: the file was edited"
    if not rec["complete"] and str(first.get("export_filters")).strip() in ("{}", ""):
        return None, "the export is marked partial but records no filter: the file was edited"
    return rec, ""


def _check_record(rows: list[dict[str, Any]], rec: dict[str, Any],
                  expected_head: str | None) -> VerifyResult:
    if rec["n_rows"] != len(rows):
        return VerifyResult(False, len(rows), None,
                            f"the export holds {len(rows)} rows but was written with "
                            f"{rec['n_rows']}: rows were deleted or added", GENESIS_HASH, 0,
                            bool(rec["complete"]))
    res = verify_event_rows(rows, require_complete=bool(rec["complete"]),
                            expected_head=expected_head)
    if not res.ok:
        return res
    if rec["complete"] and (res.head_seq, res.head_hash) != (rec["head_seq"], rec["head_hash"]):
        return VerifyResult(False, res.n_events, res.head_seq + 1,
                            f"the export is complete up to head #{rec['head_seq']} but ends at "
                            f"event #{res.head_seq}: rows were removed from the end",
                            res.head_hash, res.head_seq, True)
    if res.head_seq > rec["head_seq"]:
        return VerifyResult(False, res.n_events, res.head_seq,
                            f"event #{res.head_seq} lies beyond the export's head "
                            f"#{rec['head_seq']}: the row was added", res.head_hash,
                            res.head_seq, res.complete)
    return res


def verify_file(
    path: str | os.PathLike[str], fmt: str | None = None, *, expected_head: str | None = None
) -> VerifyResult:
    """Verify the hash chain of an exported file (csv, parquet or jsonl) on its own.

    Every row's hash is recomputed; links (``prev_hash``) are checked between rows with
    consecutive ``seq``. A complete export (``export_complete``) must run from seq 1 to its
    recorded head without a gap; every export must hold the number of rows it was written
    with. Exports made before the ``export_*`` columns existed are checked like filtered ones
    (gaps allowed) and say so in ``note``.

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
        return VerifyResult(True, 0, None, "", GENESIS_HASH, 0, False,
                            note="an empty file: nothing to verify")
    rec, problem = _export_record(rows)
    if problem:
        return VerifyResult(False, len(rows), None, problem, GENESIS_HASH, 0, False)
    if rec is None:
        res = verify_event_rows(rows, require_complete=False, expected_head=expected_head)
        if res.ok:
            return VerifyResult(True, res.n_events, None, "", res.head_hash, res.head_seq,
                                res.complete, note="an export without export_* columns: "
                                "deleted rows cannot be detected")
        return res
    return _check_record(rows, rec, expected_head)
