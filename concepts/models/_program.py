"""Load ``torch.export`` programs (``.pt2``) from untrusted files without running their code.

``torch.export.load`` in torch 2.13 is **not** safe on its own for a file from outside:

* pickled weights and constants (``use_pickle: true`` in the payload configs) are read with
  ``torch.load(weights_only=False)``; torchbind and "opaque" constants with ``pickle.loads``;
  the sample inputs fall back to ``weights_only=False`` when the safe load fails;
* symbolic-shape expressions (``expr_str``, range-constraint keys) go through
  ``sympy.sympify``, which calls ``eval``;
* a graph node's ``target`` is resolved by ``getattr`` walks from ``torch``, ``_operator`` or
  ``math`` (``torch.os.system`` resolves) and called by the module's forward;
* pytree specs may name a module to import (``defaultdict`` factories, enums);
* strings of the graph end up in generated Python source (a ``\\r`` in a stack trace ends a
  comment line).

:func:`check_program_archive` therefore inspects the archive (with the same zip reader torch
uses) against an allow-list before :func:`load_program` hands the *same bytes* to
``torch.export.load``: one model, only the standard members, no pickled payloads, sample
inputs that load with ``weights_only=True``, graph targets limited to ``torch.ops.aten`` and
``_operator.getitem``, shape expressions limited to symbols, integers and arithmetic, and no
control characters that could break out of a comment.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from concepts._errors import ModelError, UnsafeCheckpointError

__all__ = ["MAX_PROGRAM_BYTES", "check_program_archive", "load_program", "program_bytes"]

#: Largest ``.pt2`` file read (bytes).
MAX_PROGRAM_BYTES = 2 * 1024**3

_MEMBER_RES = tuple(
    re.compile(p)
    for p in (
        r"archive_format",
        r"archive_version",
        r"byteorder",
        r"\.data/version",
        r"\.data/serialization_id",
        r"models/model\.json",
        r"data/weights/model_weights_config\.json",
        r"data/weights/weight_[0-9]+",
        r"data/constants/model_constants_config\.json",
        r"data/constants/tensor_[0-9]+",
        r"data/sample_inputs/model\.pt",
    )
)
_TARGET_RE = re.compile(
    r"torch\.ops\.aten\.(?!__)[A-Za-z_][A-Za-z0-9_]*\.(?!__)[A-Za-z_][A-Za-z0-9_]*|_operator\.getitem"
)
_BLOCKED_OPS = ("from_file", "_from_file")
# a sympy expression of shape symbols, integers and arithmetic only (no names that reach builtins)
_SYM_TOKEN_RE = re.compile(
    r"\s+|Symbol\('[a-z][0-9]+'(?:, [a-z]+=(?:True|False))*\)|[a-z][0-9]+|[0-9]+|[-+*/%(),]"
    r"|\b(?:Max|Min|Mod|PythonMod|FloorDiv|CleanDiv|CeilToInt|FloorToInt|TruncToInt|IntTrueDiv"
    r"|PowByNatural|oo|int_oo|True|False)\b"
)
_BAD_CHARS_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x85\u2028\u2029]")
_SPEC_KEYS = ("in_spec", "out_spec")


def _refuse(source: str, why: str) -> UnsafeCheckpointError:
    return UnsafeCheckpointError(
        f"{source}: refused — {why}; only plain torch.export programs are accepted "
        "(torch.export.save of a program with tensor weights and aten operators)"
    )


def program_bytes(path: str | Path) -> bytes:
    """The bytes of a ``.pt2`` file (size-limited).

    Raises
    ------
    ModelError
        Missing or too large.
    """
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"program not found: {p}")
    if p.stat().st_size > MAX_PROGRAM_BYTES:
        raise ModelError(f"{p}: larger than {MAX_PROGRAM_BYTES >> 20} MiB")
    return p.read_bytes()


def _members(data: bytes, source: str) -> dict[str, bytes]:
    """Archive members (without the root folder) as torch's own zip reader sees them."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise ModelError(f"{source}: not a torch.export program (not a zip archive: {exc})") from exc
    if len(names) != len(set(names)):
        raise _refuse(source, "the archive holds duplicate member names")
    from torch.export.pt2_archive._package import PT2ArchiveReader

    try:
        with PT2ArchiveReader(io.BytesIO(data)) as reader:  # type: ignore[arg-type]
            listed = reader.get_file_names()
            out = {n: reader.read_bytes(n) for n in listed}
    except (RuntimeError, AssertionError, ValueError) as exc:
        raise ModelError(f"{source}: not a torch.export program ({str(exc).splitlines()[0]})") from exc
    if len(listed) != len(names):
        raise _refuse(source, "the zip directory and torch's reader disagree")
    return out


def _strings(obj: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """Every (enclosing key, string) pair of a JSON value, keys included."""
    if isinstance(obj, str):
        yield key, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield "<key>", str(k)
            yield from _strings(v, str(k))
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v, key)


def _check_sym_expr(expr: str, source: str) -> None:
    pos = 0
    while pos < len(expr):
        m = _SYM_TOKEN_RE.match(expr, pos)
        if m is None or m.end() == pos:
            raise _refuse(source, f"a shape expression holds more than symbols and arithmetic ({expr[:60]!r})")
        pos = m.end()


def _check_spec(spec: str, source: str) -> None:
    if "__enum__" in spec or "default_factory" in spec:
        raise _refuse(source, "an input/output spec names code to import")


def _check_graph(model: dict[str, Any], source: str) -> None:
    for key, s in _strings(model):
        if _BAD_CHARS_RE.search(s) or ("\n" in s and key != "stack_trace"):
            raise _refuse(source, "a graph string holds control characters")
        if key == "target":
            op = s.split(".")[3] if s.startswith("torch.ops.aten.") else ""
            if not _TARGET_RE.fullmatch(s) or op in _BLOCKED_OPS:
                raise _refuse(source, f"the graph calls {s[:80]!r}, not an aten operator")
        elif key == "expr_str":
            _check_sym_expr(s, source)
        elif key in _SPEC_KEYS:
            _check_spec(s, source)
    for k in (model.get("range_constraints") or {}):
        _check_sym_expr(str(k), source)
    graph = model.get("graph_module", {}).get("graph", {})
    if graph.get("custom_obj_values"):
        raise _refuse(source, "the program holds custom (torchbind) objects")


def _check_payload_config(raw: bytes, prefix: str, source: str) -> None:
    try:
        config = json.loads(raw)["config"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{source}: malformed payload config ({exc})") from exc
    if not isinstance(config, dict):
        raise ModelError(f"{source}: malformed payload config")
    for entry in config.values():
        if not isinstance(entry, dict) or entry.get("use_pickle") is not False:
            raise _refuse(source, "a weight or constant is stored as a pickle")
        if not str(entry.get("path_name", "")).startswith(prefix):
            raise _refuse(source, "a constant is not a tensor")


def check_program_archive(data: bytes, source: str = "program") -> None:
    """Refuse a ``.pt2`` archive that ``torch.export.load`` could not load without running code.

    Parameters
    ----------
    data
        The archive's bytes (pass the same bytes to ``torch.export.load`` afterwards).
    source
        Name used in messages (the file's path).

    Raises
    ------
    UnsafeCheckpointError
        Anything outside the allow-list described in the module docstring.
    ModelError
        Not a ``.pt2`` archive.
    """
    members = _members(data, source)
    for name in members:
        if not any(r.fullmatch(name) for r in _MEMBER_RES):
            raise _refuse(source, f"unexpected archive member {name[:80]!r} (only one plain program is read)")
    for need in ("archive_format", "archive_version", "models/model.json", "data/sample_inputs/model.pt",
                 "data/weights/model_weights_config.json", "data/constants/model_constants_config.json"):
        if need not in members:
            raise ModelError(f"{source}: not a torch.export program ({need} missing)")
    _check_payload_config(members["data/weights/model_weights_config.json"], "weight_", source)
    _check_payload_config(members["data/constants/model_constants_config.json"], "tensor_", source)
    sample = members["data/sample_inputs/model.pt"]
    if sample:
        try:
            torch.load(io.BytesIO(sample), map_location="cpu", weights_only=True)
        except Exception as exc:  # any failure would make torch retry with weights_only=False
            raise _refuse(source, "its sample inputs need arbitrary unpickling") from exc
    try:
        model = json.loads(members["models/model.json"])
    except ValueError as exc:
        raise ModelError(f"{source}: malformed program graph ({exc})") from exc
    if not isinstance(model, dict):
        raise ModelError(f"{source}: malformed program graph")
    _check_graph(model, source)


def load_program(data: bytes, source: str = "program") -> torch.export.ExportedProgram:
    """Check ``data`` with :func:`check_program_archive`, then ``torch.export.load`` it.

    Raises
    ------
    UnsafeCheckpointError, ModelError
    """
    check_program_archive(data, source)
    try:
        return torch.export.load(io.BytesIO(data))
    except Exception as exc:  # torch raises many types on a malformed archive
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(f"{source}: cannot load the torch.export program ({first})") from exc
