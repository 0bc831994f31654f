"""Store reliability: threaded load, SIGKILL crash, cross-process locking."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from store import Action, Actor, Store, StoreBusyError, StoreError

ROOT = Path(__file__).resolve().parents[2]
DERM = Actor.from_oidc("sub-derm", "dermatologist", "Dr Derm")
ENG = Actor.from_oidc("sub-eng", "engineer", "Eng")


def _python(code: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )


_HOLDER = """
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    con.close()
"""


def _hold(path: Path, seconds: float) -> subprocess.Popen[str]:
    """A separate process that keeps the DuckDB file open for ``seconds``."""
    proc = _python(_HOLDER, str(path), str(seconds))
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_load_16_threads_x_500_appends(tmp_path: Path) -> None:
    store = Store(tmp_path / "store.duckdb")
    n_threads, per_thread = 16, 500
    errors: list[BaseException] = []
    seqs: list[list[int]] = [[] for _ in range(n_threads)]
    start_gate = threading.Barrier(n_threads)

    def worker(k: int) -> None:
        try:
            start_gate.wait()
            for i in range(per_thread):
                ev = store.append_event(
                    DERM, "concept_named", concept=f"c{k}", evidence={"i": i, "thread": k}
                )
                seqs[k].append(ev.seq)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    t0 = time.perf_counter()
    with store.session():
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    elapsed = time.perf_counter() - t0
    assert not errors, errors
    total = n_threads * per_thread
    all_seqs = sorted(s for per in seqs for s in per)
    assert all_seqs == list(range(1, total + 1))  # none lost, none duplicated
    for per in seqs:
        assert per == sorted(per)
    result = store.verify()
    assert result.ok, result
    assert result.n_events == total
    per_concept = store.events_frame().groupby("concept").size()
    assert (per_concept == per_thread).all()
    print(f"\nload: {total} appends from {n_threads} threads in {elapsed:.1f} s "
          f"({total / elapsed:.0f} events/s)")


def test_threads_without_session_use_short_connections(tmp_path: Path) -> None:
    store = Store(tmp_path / "store.duckdb")
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            for _ in range(10):
                store.append_event(DERM, "concept_named", concept=f"c{k}")
                store.head_hash()
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert store.verify().n_events == 40
    # no connection left open: another process can open the file right away
    proc = _hold(tmp_path / "store.duckdb", 0)
    proc.wait(timeout=30)
    assert proc.returncode == 0


_WRITER = """
    import sys
    from store import Actor, Store
    store = Store(sys.argv[1])
    actor = Actor.from_oidc("sub-writer", "dermatologist", "Writer")
    def loop():
        i = 0
        while True:
            ev = store.append_event(actor, "concept_named", concept="c%d" % i,
                                    rationale="r" * 500, evidence={"i": i})
            print(ev.seq, flush=True)
            i += 1
    if sys.argv[2] == "session":
        with store.session():
            loop()
    else:
        loop()
"""


@pytest.mark.parametrize("mode", ["session", "short"])
def test_sigkill_mid_stream_loses_nothing_acknowledged(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "store.duckdb"
    Store(path)  # create the schema first
    proc = _python(_WRITER, str(path), mode)
    assert proc.stdout is not None
    acked: list[int] = []
    want = 60 if mode == "session" else 25
    while len(acked) < want:
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else "writer died"
        acked.append(int(line))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    # anything printed before the kill but not yet read is also acknowledged
    acked += [int(x) for x in proc.stdout.read().split()]

    store = Store(path)
    result = store.verify()
    assert result.ok, result
    seqs = [e.seq for e in store.events()]
    assert seqs == list(range(1, len(seqs) + 1))
    assert set(acked) <= set(seqs)
    # at most one event committed but not yet acknowledged when the process died
    assert len(seqs) - len(acked) in (0, 1)
    for ev in store.events():
        assert ev.rationale == "r" * 500 and ev.evidence == {"i": ev.seq - 1}


def test_lock_held_briefly_is_waited_for(tmp_path: Path) -> None:
    path = tmp_path / "store.duckdb"
    store = Store(path, busy_timeout=30)
    proc = _hold(path, 1.0)
    try:
        t0 = time.perf_counter()
        ev = store.append_event(DERM, "concept_named", concept="ruler")
        waited = time.perf_counter() - t0
    finally:
        proc.wait(timeout=30)
    assert ev.seq == 1
    assert waited > 0.3  # it really had to wait for the other process
    assert store.verify().ok


def test_lock_held_too_long_raises_store_busy(tmp_path: Path) -> None:
    path = tmp_path / "store.duckdb"
    store = Store(path, busy_timeout=0.5)
    proc = _hold(path, 30)
    try:
        with pytest.raises(StoreBusyError) as info:
            store.append_event(DERM, "concept_named", concept="ruler")
        msg = str(info.value)
        assert "busy" in msg and str(path) in msg and f"process {proc.pid}" in msg
        assert "Could not set lock" not in msg  # never the raw DuckDB error
        with pytest.raises(StoreBusyError):
            store.verify()
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert store.verify().n_events == 0  # nothing was written


_APPENDER = """
    import sys
    from store import Actor, Store
    store = Store(sys.argv[1], busy_timeout=60)
    actor = Actor.from_oidc("sub-" + sys.argv[2], "dermatologist", sys.argv[2])
    for i in range(int(sys.argv[3])):
        store.append_event(actor, "concept_named", concept="c%d" % i)
    print("done", flush=True)
"""


@pytest.mark.parametrize("round_", [0, 1])
def test_three_processes_appending_lose_nothing(tmp_path: Path, round_: int) -> None:
    """Every acknowledged event is in the file. With DuckDB's own lock alone, 3 processes x 40
    open-commit-close appends lost a committed event in 2 of 8 such runs (4 of 10 with plain
    DuckDB inserts); the store's side-file lock (store/_conn.py) closes that gap."""
    path = tmp_path / "store.duckdb"
    Store(path)
    procs = [_python(_APPENDER, str(path), name, "40") for name in ("a", "b", "c")]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        assert out.strip() == "done"
    store = Store(path)
    result = store.verify()
    assert result.ok and result.n_events == 120
    by_actor = store.events_frame().groupby("actor_id").size().to_dict()
    assert by_actor == {"sub-a": 40, "sub-b": 40, "sub-c": 40}


_SIDE_HOLDER = """
    import fcntl, os, sys, time
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_a_store_process_holding_the_side_lock_keeps_others_waiting(tmp_path: Path) -> None:
    """Another store process has the file (its side lock held): appends here wait, then fail
    in one line naming that process; nothing is written; threads of this process share the
    lock once it is free."""
    path = tmp_path / "store.duckdb"
    store = Store(path, busy_timeout=0.5)
    proc = _python(_SIDE_HOLDER, str(path) + ".lock", "60")
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        with pytest.raises(StoreBusyError, match=f"process {proc.pid}"):
            store.append_event(DERM, "concept_named", concept="ruler")
    finally:
        proc.kill()
        proc.wait(timeout=30)
    patient = Store(path, busy_timeout=30)
    with patient.session():  # this process holds the file; its other threads still get in
        done: list[int] = []
        threads = [threading.Thread(target=lambda: done.append(store.append_event(
            DERM, "concept_named", concept="hair").seq)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    assert sorted(done) == [1, 2, 3, 4] and store.verify().n_events == 4


def test_a_linked_lock_file_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    """A workspace from elsewhere is untrusted: its lock file may not point anywhere else."""
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "store.duckdb.lock").symlink_to(target)
    with pytest.raises(StoreError, match="lock file"):
        Store(ws / "store.duckdb")
    assert target.read_text() == "keep me"


def _other_process_can_open(path: Path) -> bool:
    res = subprocess.run(
        [sys.executable, "-c", f"import duckdb; duckdb.connect({str(path)!r}).close()"],
        capture_output=True, text=True, timeout=60,
    )
    return res.returncode == 0


def test_session_keeps_other_processes_out_until_closed(tmp_path: Path) -> None:
    path = tmp_path / "store.duckdb"
    store = Store(path)
    assert _other_process_can_open(path)  # Store() itself holds nothing
    with store.session():
        store.append_event(DERM, "concept_named", concept="x")
        assert not _other_process_can_open(path)
    assert _other_process_can_open(path)


def test_group_commit_isolates_refusals(tmp_path: Path) -> None:
    """Concurrent appends with prechecks: each refusal stays with its caller, the rest commit."""
    store = Store(tmp_path / "store.duckdb")
    eng = ENG
    outcomes: dict[str, list[str]] = {"ok": [], "refused": []}
    lock = threading.Lock()

    def worker(k: int) -> None:
        for i in range(10):
            iid = f"iv-{k}-{i}"
            store.record_intervention(DERM, {"op": "suppress", "k": k}, intervention_id=iid)
            for target in (iid, f"missing-{k}-{i}"):
                try:
                    store.append_event(eng, "applied", intervention_id=target, rationale="r")
                    with lock:
                        outcomes["ok"].append(target)
                except Exception as exc:
                    assert "unknown intervention" in str(exc)
                    with lock:
                        outcomes["refused"].append(target)

    with store.session():
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sorted(outcomes["ok"]) == sorted(f"iv-{k}-{i}" for k in range(8) for i in range(10))
    assert len(outcomes["refused"]) == 80
    result = store.verify()
    assert result.ok and result.n_events == 160
    assert len(store.table("interventions")) == 80


def test_a_database_error_in_a_batch_fails_only_its_event(tmp_path: Path) -> None:
    import duckdb

    from store import blank
    from store._fields import event_fields
    from store._refs import RefInsert
    from store._schema import REF_TABLES
    from store._writer import Pending, _commit

    store = Store(tmp_path / "store.duckdb")

    class Broken(RefInsert):
        def insert(self, con: duckdb.DuckDBPyConnection, seq: int) -> None:
            con.execute("INSERT INTO no_such_table VALUES (1)")

    def plain(i: int) -> Pending:
        return Pending(event_fields(DERM, Action.CONCEPT_NAMED, **blank(concept=f"c{i}")))

    good = RefInsert.build(REF_TABLES["models"], [
        {"model_id": "m", "architecture": "a", "weights_sha256": "a" * 64}])
    bad = Broken(good.table, good.payloads, good.stored, good.row_hashes)
    batch = [plain(0), Pending(event_fields(ENG, Action.MODEL_REGISTERED, **blank()), ref=bad),
             plain(1), plain(2)]
    with store._write_lock:
        _commit(store._shared, store._connection, batch, "test", "0.0.0")
    assert all(p.done.is_set() for p in batch)
    assert [p.error is None for p in batch] == [True, False, True, True]
    assert "nothing written" in str(batch[1].error)
    result = store.verify()
    assert result.ok and result.n_events == 3
    assert [e.concept for e in store.events()] == ["c0", "c1", "c2"]


def test_head_cache_is_dropped_when_the_session_ends(tmp_path: Path) -> None:
    path = tmp_path / "store.duckdb"
    store = Store(path)
    with store.session():
        store.append_event(DERM, "concept_named", concept="a")
    proc = _python(_APPENDER, str(path), "other", "2")  # another process appends meanwhile
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    with store.session(), store.session():  # re-entrant
        ev = store.append_event(DERM, "concept_named", concept="b")
    assert ev.seq == 4
    assert store.verify().ok


def test_two_stores_on_one_file_in_one_process(tmp_path: Path) -> None:
    a, b = Store(tmp_path / "store.duckdb"), Store(tmp_path / "store.duckdb")
    with a.session():
        for i in range(5):
            a.append_event(DERM, "concept_named", concept=f"a{i}")
            b.append_event(DERM, "concept_named", concept=f"b{i}")
    assert a.verify().ok and b.verify().n_events == 10
