"""The Ray engine against a local Ray cluster on loopback (a head and two worker nodes).

Activations written by the Ray actor pool must be the local engine's file byte for byte, and a
run in which one worker process is killed (SIGKILL) midway must finish with every row written
once. Slow (starting the cluster takes ~10-20 s); skipped when Ray is not installed.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from concepts import ActivationCache, ClassifierModel, ImageSet
from concepts._compute import Compute
from concepts._engine_ray import PID_DIR_ENV

pytestmark = pytest.mark.slow

# Loopback only: without this Ray rewrites 127.0.0.1 to the host's external address, which a
# sandbox or firewall may block (read by Ray at import and by the node processes it starts).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'concept-workbench[ray]'")

LAYERS = ["conv2", "pool"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A head (no CPU: it schedules only) and two 1-CPU worker nodes on 127.0.0.1."""
    from ray._private import ray_constants
    from ray.cluster_utils import Cluster

    ray_constants.ENABLE_RAY_CLUSTER = False  # in case Ray was imported before this module
    pid_dir = tmp_path_factory.mktemp("actor-pids")
    old = os.environ.get(PID_DIR_ENV)
    os.environ[PID_DIR_ENV] = str(pid_dir)  # inherited by the raylets, hence by the actors
    small = {"object_store_memory": 80 * 1024 * 1024, "node_ip_address": "127.0.0.1"}
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False, **small})
    try:
        for _ in range(2):
            c.add_node(num_cpus=1, **small)
        c.wait_for_nodes()
        ray.init(address=c.address, log_to_driver=False)
        yield pid_dir
    finally:
        ray.shutdown()
        c.shutdown()
        if old is None:
            os.environ.pop(PID_DIR_ENV, None)
        else:
            os.environ[PID_DIR_ENV] = old


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (n, 64, 64, 3), dtype=np.uint8)


def _local_and_ray(tmp_path: Path, n: int, batch_size: int, progress: Any = None) -> tuple[ActivationCache, ...]:
    m = ClassifierModel.build("tiny-cnn", ("a", "b"))
    iset = ImageSet.from_array("x", _images(n))
    local = ActivationCache(tmp_path / "local", batch_size=batch_size)
    local.get(m, LAYERS, iset)
    remote = ActivationCache(tmp_path / "ray", batch_size=batch_size, compute=Compute(engine="ray"),
                             ray_min_rows=0)
    remote.get(m, LAYERS, iset, progress=progress)
    for layer in LAYERS:
        a, b = local.path(m, layer, iset), remote.path(m, layer, iset)
        assert a.name == b.name  # the same cache key
        assert a.read_bytes() == b.read_bytes(), f"{layer}: Ray and local files differ"
    assert not list((tmp_path / "ray").rglob(".tmp-*")), "a temporary file was left behind"
    return local, remote


def test_ray_engine_writes_the_local_file_bit_for_bit(cluster: Path, tmp_path: Path) -> None:
    _, remote = _local_and_ray(tmp_path, n=70, batch_size=16)  # 70: a short last batch
    assert remote.misses == 2
    assert len(list((tmp_path / "ray" / "_ray_inputs").glob("*.npy"))) == 1  # images staged once


def test_ray_engine_survives_a_killed_worker(cluster: Path, tmp_path: Path) -> None:
    before = set(os.listdir(cluster))
    killed: list[int] = []

    def kill_one_worker(_stage: str, done: int, total: int) -> None:
        if killed or done < total // 5:
            return
        pids = sorted(int(p) for p in set(os.listdir(cluster)) - before)
        alive = [p for p in pids if _alive(p)]
        assert alive, "no actor process found"
        os.kill(alive[0], signal.SIGKILL)
        killed.append(alive[0])

    _local_and_ray(tmp_path, n=600, batch_size=4, progress=kill_one_worker)
    assert killed, "the run ended before a worker could be killed"
    started = set(os.listdir(cluster)) - before
    assert len(started) >= 3, f"the killed actor was not replaced (actor processes: {sorted(started)})"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True
