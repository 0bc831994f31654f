"""Run by tests/concepts/models/test_engine_ray.py in a child process: the Ray engine against a local Ray
cluster on loopback (a head and two worker nodes). Prints one JSON line with what it measured.

A child process keeps Ray's driver threads (metrics, logging) out of the pytest process, where
they raced CPython 3.11's parser in later Streamlit AppTests.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

# Loopback only: without this Ray rewrites 127.0.0.1 to the host's external address, which a
# sandbox or firewall may block (read by Ray at import and by the node processes it starts).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import numpy as np
import ray

from concepts import ActivationCache, ClassifierModel, ImageSet
from concepts.models import PID_DIR_ENV, Compute

LAYERS = ["conv2", "pool"]


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (n, 64, 64, 3), dtype=np.uint8)


def _local_and_ray(root: Path, n: int, batch_size: int, progress: Any = None) -> dict[str, Any]:
    m = ClassifierModel.build("tiny-cnn", ("a", "b"))
    iset = ImageSet.from_array("x", _images(n))
    local = ActivationCache(root / "local", batch_size=batch_size)
    local.get(m, LAYERS, iset)
    remote = ActivationCache(root / "ray", batch_size=batch_size, compute=Compute(engine="ray"), ray_min_rows=0)
    remote.get(m, LAYERS, iset, progress=progress)
    same = {layer: local.path(m, layer, iset).read_bytes() == remote.path(m, layer, iset).read_bytes()
            for layer in LAYERS}
    keys = all(local.path(m, la, iset).name == remote.path(m, la, iset).name for la in LAYERS)
    return {"identical": same, "same_key": keys, "misses": remote.misses,
            "leftovers": len(list((root / "ray").rglob(".tmp-*"))),
            "staged": len(list((root / "ray" / "_ray_inputs").glob("*.npy")))}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def main() -> None:
    from ray._private import ray_constants
    from ray.cluster_utils import Cluster

    ray_constants.ENABLE_RAY_CLUSTER = False
    tmp = Path(tempfile.mkdtemp(prefix="ray-engine-"))
    pid_dir = tmp / "actor-pids"
    pid_dir.mkdir()
    os.environ[PID_DIR_ENV] = str(pid_dir)  # inherited by the raylets, hence by the actors
    small = {"object_store_memory": 80 * 1024 * 1024, "node_ip_address": "127.0.0.1"}
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False, **small})
    out: dict[str, Any] = {}
    try:
        for _ in range(2):
            c.add_node(num_cpus=1, **small)
        c.wait_for_nodes()
        ray.init(address=c.address, log_to_driver=False)
        out["plain"] = _local_and_ray(tmp / "plain", n=70, batch_size=16)  # 70: a short last batch
        before = set(os.listdir(pid_dir))
        killed: list[int] = []

        def kill_one_worker(_stage: str, done: int, total: int) -> None:
            if killed or done < total // 5:
                return
            alive = [p for p in sorted(int(p) for p in set(os.listdir(pid_dir)) - before) if _alive(p)]
            if alive:
                os.kill(alive[0], signal.SIGKILL)
                killed.append(alive[0])

        out["killed"] = _local_and_ray(tmp / "killed", n=600, batch_size=4, progress=kill_one_worker)
        out["killed"]["n_killed"] = len(killed)
        out["killed"]["actors_started"] = len(set(os.listdir(pid_dir)) - before)
    finally:
        ray.shutdown()
        c.shutdown()
    sys.stdout.write("RESULT " + json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
