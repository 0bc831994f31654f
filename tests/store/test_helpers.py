"""The shared helpers of the store layer: atomic writes and finite-float cleaning."""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pytest

from store import atomic_path, finite_or_none, to_jsonable


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_atomic_path_replaces_the_target_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    target.write_text("old")
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        tmp.write_text('{"new": 1}')
        assert target.read_text() == "old"  # nothing visible before the block ends
    assert json.loads(target.read_text()) == {"new": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_atomic_path_keeps_the_target_when_the_writer_fails(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="half way"), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("half way")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_path_permissions(tmp_path: Path) -> None:
    private = tmp_path / "private.bin"
    with atomic_path(private) as tmp:
        tmp.write_bytes(b"x")
    assert _mode(private) == 0o600  # as tempfile.mkstemp

    shared = tmp_path / "shared.bin"
    with atomic_path(shared, private=False) as tmp:
        assert not tmp.exists()  # the writer creates it (a database engine may insist)
        tmp.write_bytes(b"x")
    umask = os.umask(0)
    os.umask(umask)
    assert _mode(shared) == 0o666 & ~umask

    kept = tmp_path / "secrets.toml"
    with atomic_path(kept, mode=0o640) as tmp:
        tmp.write_text("a = 1\n")
    assert _mode(kept) == 0o640


def test_atomic_path_with_numpy_needs_the_npy_suffix(tmp_path: Path) -> None:
    target = tmp_path / "a.npy"
    with atomic_path(target, prefix=".tmp-", suffix=".npy") as tmp:
        np.save(tmp, np.arange(3))
    np.testing.assert_array_equal(np.load(target), np.arange(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy"]


@pytest.mark.parametrize(
    ("value", "want"),
    [(1, 1.0), (np.float32(0.5), 0.5), ("2.5", 2.5), (float("nan"), None), (np.inf, None),
     (-math.inf, None), (None, None), ("abc", None), ([1.0], None)],
)
def test_finite_or_none(value: object, want: float | None) -> None:
    got = finite_or_none(value)
    assert got == want and (got is None or type(got) is float)


def test_to_jsonable_cleans_nested_values() -> None:
    data = {
        1: np.float64("nan"),
        "a": (np.int64(3), [np.float32(1.5), float("inf")]),
        "arr": np.array([[1.0, np.nan]]),
        "m": MappingProxyType({"x": np.bool_(True)}),
        "s": "text",
    }
    out = to_jsonable(data)
    assert out == {"1": None, "a": [3, [1.5, None]], "arr": [[1.0, None]], "m": {"x": True},
                   "s": "text"}
    assert type(out["a"][0]) is int and type(out["m"]["x"]) is bool
    json.dumps(out, allow_nan=False)  # strict JSON now
