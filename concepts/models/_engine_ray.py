"""The Ray engine of activation extraction (``--engine ray``).

Ray Data ``map_batches`` runs over row ranges of the images (the same batch boundaries as the
local engine) with an actor pool that holds the model: one actor per CPU slot, or per GPU when
the device is a GPU. Each actor memory-maps the images' ``.npy`` (the data set's own file when
the image set is one, else a copy staged once under ``<cache>/_ray_inputs/<image-set key>.npy``;
on a multi-node cluster the workspace must lie on a file system every node mounts) and returns
the activations with their row indices. The driver writes them into the cache's temporary
``.npy`` by row index (:class:`concepts.models._batches.RowWriter`), so the result is bit for bit
the file of the local engine, and a batch computed twice after a retry lands on the same rows.

Workers that die are replaced by Ray (Ray Data gives its actor pools ``max_restarts=-1`` and
``max_task_retries=-1``); rows
still missing after a pass (a range whose retries ran out) are run again, up to
:data:`MAX_PASSES` passes; the written-rows bitmap must be complete before the file is renamed
into place. ``import ray`` happens only here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from concepts._errors import ComputeError
from concepts.data import ImageSet
from concepts.models._classifier import ClassifierModel
from concepts.models._compute import Compute
from store import atomic_path

if TYPE_CHECKING:
    from concepts._progress import ProgressFn
    from concepts.models._batches import RowWriter

__all__ = ["MAX_PASSES", "ray_extract"]

#: Passes over the missing rows before a run is declared failed.
MAX_PASSES = 3
#: Column of the row index in the batches the actors return.
_ROW = "__row__"
#: When set (tests only), each actor writes a file named after its process id into this folder.
PID_DIR_ENV = "WORKBENCH_RAY_PID_DIR"


class _Extractor:
    """Ray Data actor: holds the model, reads row ranges of the images file, returns activations."""

    def __init__(self, model: Any, images_path: str, layers: list[str], device: str, precision: str):
        import ray

        from concepts.models._compute import resolve_device

        # the model travels once through the object store (Ray Data passes the reference as is)
        self.model: ClassifierModel = ray.get(model) if isinstance(model, ray.ObjectRef) else model
        self.model.module.to(resolve_device(device))
        self.images = np.load(images_path, mmap_mode="r")
        self.layers = layers
        self.precision = precision
        pid_dir = os.environ.get(PID_DIR_ENV)
        if pid_dir:
            Path(pid_dir, str(os.getpid())).touch()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from concepts.models._batches import forward_batch

        rows: list[np.ndarray] = []
        acts: dict[str, list[np.ndarray]] = {layer: [] for layer in self.layers}
        for start, stop in zip(batch["start"].tolist(), batch["stop"].tolist(), strict=True):
            out = forward_batch(self.model, self.images[start:stop], self.layers, self.precision)
            rows.append(np.arange(start, stop, dtype=np.int64))
            for layer in self.layers:
                acts[layer].append(out[layer])
        return {_ROW: np.concatenate(rows), **{f"a:{la}": np.concatenate(v) for la, v in acts.items()}}


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ComputeError("--engine ray needs Ray: pip install 'concept-workbench[ray]' "
                           "(or pip install 'ray[data]'), or use --engine local") from exc
    return ray


def _connect(ray: Any, address: str | None) -> None:
    """Connect to ``address`` (or start a local instance), unless this process is connected."""
    if ray.is_initialized():
        return
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": os.environ.get("PYTHONPATH", "")}})
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ComputeError(f"cannot reach the Ray cluster at {address or '(local)'}: {exc} — start one "
                           "with `ray start --head` and pass --ray-address HOST:PORT") from exc


def _images_file(image_set: ImageSet, staging_dir: Path) -> Path:
    """A ``.npy`` holding exactly the image set's images: its own backing file or a staged copy."""
    imgs = image_set.images
    fname = getattr(imgs, "filename", None)
    if isinstance(imgs, np.memmap) and fname and Path(fname).suffix == ".npy":
        try:
            whole = np.load(fname, mmap_mode="r")
            if whole.shape == imgs.shape and whole.dtype == imgs.dtype and whole.offset == imgs.offset:
                return Path(fname)
        except (OSError, ValueError):
            pass
    staged = staging_dir / f"{image_set.key}.npy"
    if staged.is_file():
        return staged
    staging_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(staged, prefix=".tmp-", suffix=".npy", mode=0o644) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=imgs.shape)
        for start in range(0, len(imgs), 1024):
            out[start : start + 1024] = imgs[start : start + 1024]
        out.flush()
        del out
    return staged


def _ranges(missing: np.ndarray, n: int, batch_size: int) -> list[dict[str, int]]:
    """Batch-aligned row ranges that hold a missing row (the local engine's boundaries)."""
    starts = sorted({int(r) // batch_size * batch_size for r in missing})
    return [{"start": s, "stop": min(s + batch_size, n)} for s in starts]


def _slots(ray: Any, device: str) -> tuple[int, dict[str, float]]:
    """Actor count and per-actor resources: one per GPU, else one per CPU slot."""
    res = ray.cluster_resources()
    if device.startswith("cuda") or (device == "auto" and res.get("GPU", 0) >= 1):
        return max(1, int(res.get("GPU", 0))), {"num_gpus": 1, "num_cpus": 1}
    return max(1, int(res.get("CPU", 1))), {"num_cpus": 1}


def ray_extract(
    model: ClassifierModel,
    image_set: ImageSet,
    layers: list[str],
    writer: RowWriter,
    *,
    batch_size: int,
    compute: Compute,
    staging_dir: Path,
    progress: ProgressFn | None = None,
    stage: str = "activations",
) -> None:
    """Fill ``writer`` with the activations of ``image_set`` computed by a Ray actor pool.

    Raises
    ------
    ComputeError
        Ray is not installed, the cluster cannot be reached, or rows are still missing after
        :data:`MAX_PASSES` passes.
    """
    ray = _import_ray()
    _connect(ray, compute.ray_address)
    n = len(image_set)
    if n == 0:
        return
    path = _images_file(image_set, staging_dir)
    device = "cpu" if compute.device == "auto" and not ray.cluster_resources().get("GPU") else compute.device
    model_ref = ray.put(model)
    error = ""
    for _ in range(MAX_PASSES):
        missing = writer.missing()
        if not len(missing):
            return
        error = _one_pass(ray, model_ref, str(path), layers, writer, _ranges(missing, n, batch_size),
                          device, compute.precision, progress, stage) or error
    if len(writer.missing()):
        raise ComputeError(f"the Ray run left {len(writer.missing())} of {n} rows missing after "
                           f"{MAX_PASSES} passes ({error or 'no error reported'}) — check the "
                           "cluster (`ray status`) and run the command again, or use --engine local")


def _one_pass(
    ray: Any, model_ref: Any, path: str, layers: list[str], writer: RowWriter, ranges: list[dict[str, int]],
    device: str, precision: str, progress: ProgressFn | None, stage: str,
) -> str | None:
    """One Ray Data pipeline over ``ranges``; writes every batch that comes back.

    Returns the first line of the Ray error that ended the pass early, else ``None``."""
    size, resources = _slots(ray, device)
    ds = ray.data.from_items(ranges, override_num_blocks=len(ranges))
    out = ds.map_batches(
        _Extractor,
        fn_constructor_args=(model_ref, path, layers, device, precision),
        batch_size=1,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=min(size, len(ranges))),
        **resources,  # Ray Data restarts dead actors and retries their tasks without limit by default
    )
    try:
        for batch in out.iter_batches(batch_size=None, batch_format="numpy"):
            _write_runs(writer, batch, layers)
            if progress is not None:
                progress(stage, int(writer.written.sum()), writer.n)
    except ray.exceptions.RayError as exc:  # the next pass runs the rows still missing
        return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    return None


def _write_runs(writer: RowWriter, batch: dict[str, np.ndarray], layers: list[str]) -> None:
    """Write a returned batch run by run of consecutive row indices."""
    rows = np.asarray(batch[_ROW], dtype=np.int64)
    if not len(rows):
        return
    order = np.argsort(rows, kind="stable")
    rows = rows[order]
    cuts = np.flatnonzero(np.diff(rows) != 1) + 1
    for idx in np.split(np.arange(len(rows)), cuts):
        writer.write(int(rows[idx[0]]), {la: np.asarray(batch[f"a:{la}"])[order[idx]] for la in layers})
