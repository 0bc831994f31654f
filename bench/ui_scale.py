"""UI at scale: every page of the workbench on a workspace of ``--cases`` cases, server time per page.

Usage: python bench/ui_scale.py [--cases 100000] [--size 32] [--workdir DIR] [--pages cases,audit]
                                [--seed-cases 2000] [--runs 6] [--cli]

1. **The workspace** (built once under ``--workdir``, reused when its marker file says it is
   complete). A page's cost depends on the number of cases, not on pixels, so the images are
   small and the model is the ``tiny-cnn``. It is built with the library's public API, the way a
   user would:

   * ``build_demo`` with a ``--seed-cases`` DermSynth set at ``--size`` px and a tiny-cnn trained
     end to end (the model, the concept sets, the demo manifest);
   * the data set grown to ``--cases`` cases (``Dataset.create`` + ``DatasetWriter.commit``, images
     written chunk by chunk): each split's cases repeated in order, with new case ids. The copy is
     an *imported* data set (``kind="import"``, no ``render_seed``): rendering counterfactual
     twins for every evaluation case (what a DermSynth set of 100k cases would ask for) would take
     an hour here, and a clinic archive of that size is an import, not a DermSynth set;
   * ``analyse_workspace(ws, runs=--runs)``: TCAV (``results/tcav.parquet``), the model and data set
     in the store, flip rates, evaluation, confounder report, co-occurrence tables, clusters and the
     activations the Interventions page and the Case explorer start from.

2. **Every page** (``workbench/pages/*.py`` through ``st.navigation`` in ``workbench/app.py``) is
   opened with ``streamlit.testing.v1.AppTest`` in its own process, as a dermatologist (the
   Test-time fix page as an engineer). The heavy libraries (torch, scikit-learn, plotly, captum,
   networkx) are imported and the data set is loaded and verified first (what a server process does once, on its first page that needs the data
   set; printed apart), the landing page is rendered (as in a browser session), then the page:
   ``first`` is the server time of its first render (empty ``st.cache_data`` /
   ``st.cache_resource`` for what the landing page did not load), ``rerun`` of one more run with
   nothing changed. ``rows`` counts what went to the
   browser: rows of every ``st.dataframe``/``st.table`` plus the options of every select widget;
   ``kB`` is the size of all element messages of the page; ``peak RSS`` the page process's peak
   (the workspace is built in a child process, so that its peak is not carried into the others).
   The Interventions page is also timed with the concept ``ink`` selected for masking (the
   what-if panel), and the Case explorer on its second table page when it has one.

3. With ``--cli``: ``info``, ``confounders``, ``tcav`` (CAVs reused from the build), ``clusters`` and
   ``audit verify`` on the same workspace, each in its own process: wall time and peak RSS. ``tcav``
   and ``clusters`` rewrite ``results/``; the page precompute is run again afterwards
   (``precompute_pages``) so that the next run finds the workspace as built.

Last line: ``slowest_page_s: <s> (<page>)`` (the largest first-render or rerun time). Goal: < 3 s.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "workbench" / "app.py"
MARKER = "ui_scale.json"
#: Page key -> role that opens it (every page is visible to a dermatologist except the fix
#: page's write controls, which need an engineer).
PAGE_ROLES = {"overview": "dermatologist", "concepts": "dermatologist", "graph": "dermatologist",
              "confounders": "dermatologist", "cases": "dermatologist", "interventions": "dermatologist",
              "fix": "engineer", "audit": "dermatologist"}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kilobytes


# ----------------------------------------------------------------------------------- build
def _grow_dataset(ws: Any, n: int) -> str:
    """Write the active data set repeated to ``n`` cases as a new data set; returns its name."""
    from dataclasses import replace

    import numpy as np

    from concepts import Dataset

    src = ws.dataset()
    total = len(src)
    rows: list[np.ndarray] = []
    splits = list(dict.fromkeys(src.cases["split"].astype(str)))  # in order of appearance
    done = 0
    for i, split in enumerate(splits):
        idx = src.indices(split)
        k = n - done if i == len(splits) - 1 else round(n * len(idx) / total)
        rows.append(np.resize(idx, k))
        done += k
    order = np.concatenate(rows)
    cases = src.cases.iloc[order].reset_index(drop=True).drop(columns=["render_seed"], errors="ignore")
    cases["case_id"] = [f"c{i:06d}" for i in range(n)]
    name = f"grown{n}"
    s = src.info.image_size
    extra = {k: v for k, v in src.info.extra.items() if k != "config"}
    meta = tuple(m for m in src.info.metadata if m != "render_seed")
    info = replace(src.info, name=name, kind="import", content_hash="", extra=extra, metadata=meta)
    with Dataset.create(ws.datasets_dir / name, (n, s, s, 3)) as writer:
        for a in range(0, n, 8192):
            writer.images[a:a + 8192] = np.asarray(src.images[order[a:a + 8192]])
        writer.commit(info, cases)
    ws.update_manifest(dataset=name)
    return name


def build_workspace(root: Path, cases: int, size: int, seed_cases: int, runs: int) -> dict[str, Any]:
    """Build (or reuse) the benchmark workspace; returns its marker (what was built, how long)."""
    marker = root / MARKER
    if marker.is_file():
        info = json.loads(marker.read_text())
        if info.get("cases") == cases and info.get("size") == size:
            return {**info, "reused": True}
    from concepts import Workspace
    from concepts.dermsynth import DermSynthConfig
    from workbench.services import DemoConfig, analyse_workspace, build_demo

    ws = Workspace(root)
    times: dict[str, float] = {}
    t = time.perf_counter()
    n_seed = min(cases, seed_cases)
    cfg = DemoConfig(dermsynth=DermSynthConfig(n_images=n_seed, image_size=size, concept_examples=40,
                                               random_pool=200),
                     architecture="tiny-cnn", epochs=3)
    build_demo(ws, cfg)
    times["demo"] = time.perf_counter() - t
    if cases > n_seed:
        t = time.perf_counter()
        _grow_dataset(ws, cases)
        times["grow"] = time.perf_counter() - t
    t = time.perf_counter()
    analysis = analyse_workspace(ws, runs=runs)
    times["analyse"] = time.perf_counter() - t
    info = {"cases": cases, "size": size, "seed_cases": n_seed, "runs": runs,
            "seconds": {k: round(v, 1) for k, v in times.items()},
            "analysis_steps": analysis.get("step_seconds", {}), "notes": analysis.get("notes", []),
            "peak_rss_mb": round(_peak_rss_mb())}
    marker.write_text(json.dumps(info, indent=1))
    return {**info, "reused": False}


def refresh_precompute(root: Path) -> dict[str, Any]:
    """Recompute what the pages read precomputed (evaluation, confounder report, co-occurrence,
    clusters, activations) after ``--cli`` re-ran TCAV and clustering, so that the next run of
    this bench finds the workspace as it was built."""
    from concepts import Workspace
    from workbench.services import precompute_pages

    ws = Workspace(root)
    t = time.perf_counter()
    pages = precompute_pages(ws)
    old = ws.manifest().get("analysis") or {}
    ws.update_manifest(analysis={**old, **pages})
    return {"seconds": round(time.perf_counter() - t, 1), "notes": pages.get("notes", [])}


# ----------------------------------------------------------------------------------- one page
def _walk(node: Any) -> Any:
    children = getattr(node, "children", None)
    if isinstance(children, dict):
        for c in children.values():
            yield from _walk(c)
    else:
        yield node


def _sent(at: Any) -> tuple[int, float]:
    """(rows, kB) the page sent: dataframe/table rows + select options; all element messages."""
    rows = 0
    for df in [*at.dataframe, *at.table]:
        with contextlib.suppress(Exception):  # an unreadable element counts 0 rows
            rows += len(df.value)
    for kind in ("multiselect", "selectbox", "radio", "select_slider"):
        for w in getattr(at, kind):
            rows += len(getattr(w, "options", []) or [])
    size = 0
    for el in _walk(at._tree):
        proto = getattr(el, "proto", None)
        if proto is not None and hasattr(proto, "ByteSize"):
            size += proto.ByteSize()
    return rows, size / 1024.0


def _problems(at: Any) -> list[str]:
    return [str(e.value)[:200] for e in at.exception] + [str(e.value)[:200] for e in at.error]


def _timed_run(at: Any) -> float:
    t = time.perf_counter()
    at.run()
    return time.perf_counter() - t


def measure_page(key: str, root: Path) -> list[dict[str, Any]]:
    """Open one page (in this process) and time it; one record per measured state."""
    t = time.perf_counter()  # the heavy imports a running server holds after its first pages
    import captum.attr  # noqa: F401 - attribution maps (Case explorer): 2-3 s on its own
    import numpy as np  # noqa: F401
    import pandas  # noqa: F401
    import plotly.express  # noqa: F401
    import sklearn.linear_model  # noqa: F401
    import torch  # noqa: F401
    from streamlit.testing.v1 import AppTest

    import concepts.tcav  # noqa: F401
    import graph  # noqa: F401
    import interventions  # noqa: F401
    from workbench.ui import PAGES

    imports = time.perf_counter() - t

    os.environ.update(WORKBENCH_WORKSPACE=str(root), WORKBENCH_ROLE=PAGE_ROLES[key], WORKBENCH_AUTH="local",
                      WORKBENCH_TORCH_THREADS="1")
    from streamlit import config as st_config

    st_config.set_option("server.address", "127.0.0.1")  # local mode needs loopback
    from concepts import Workspace

    t = time.perf_counter()  # once per server process: load and verify the data set (content hash)
    Workspace(root).dataset()
    ds_load = time.perf_counter() - t
    at = AppTest.from_file(str(APP), default_timeout=3600)
    landing = _timed_run(at)
    out: list[dict[str, Any]] = []

    def record(label: str, first: float, rerun: float) -> None:
        rows, kb = _sent(at)
        out.append({"page": label, "first_s": round(first, 3), "rerun_s": round(rerun, 3), "rows": rows,
                    "kB": round(kb, 1), "peak_rss_mb": round(_peak_rss_mb()), "landing_s": round(landing, 3),
                    "ds_load_s": round(ds_load, 2), "imports_s": round(imports, 2),
                    "problems": _problems(at), "title": at.title[0].value if len(at.title) else ""})

    if key != "overview":
        at.switch_page(PAGES[key].script)
        first = _timed_run(at)
    else:
        first = landing
    record(key, first, _timed_run(at))
    if key == "interventions" and len(at.multiselect(key="iv_concepts").options):
        opts = at.multiselect(key="iv_concepts").options
        t = time.perf_counter()
        at.multiselect(key="iv_concepts").set_value(["ink" if "ink" in opts else opts[0]]).run()
        record("interventions+mask", time.perf_counter() - t, _timed_run(at))
    if key == "cases":
        pager = [w for w in at.number_input if w.key == "cx_page"]
        if pager and (pager[0].max or 1) > 1:
            t = time.perf_counter()
            pager[0].set_value(2).run()
            record("cases page 2", time.perf_counter() - t, _timed_run(at))
    return out


# ----------------------------------------------------------------------------------- CLI
def _cli(root: Path, args: list[str]) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "workbench.cli", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    assert proc.stdout is not None
    text = proc.stdout.read().decode(errors="replace")
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    last = [ln for ln in text.strip().splitlines() if ln.strip()][-1:] or [""]
    return {"cmd": " ".join(args).replace(str(root), "WS"), "rc": proc.returncode,
            "s": round(time.perf_counter() - t, 1), "peak_rss_mb": round(ru.ru_maxrss / 1024), "last": last[0][:100]}


def cli_checks(root: Path) -> list[dict[str, Any]]:
    w = ["-w", str(root)]
    runs = [["info", *w], ["confounders", *w, "--device", "cpu"], ["tcav", *w, "--device", "cpu"],
            ["clusters", *w, "--device", "cpu"], ["audit", "verify", *w]]
    return [_cli(root, r) for r in runs]


# ----------------------------------------------------------------------------------- main
def _child(args: argparse.Namespace, root: Path, flag: str = "--_build") -> dict[str, Any]:
    """Build (or refresh) the workspace in a child process: this process stays small, so the peak
    RSS its later children report (Linux carries a parent's peak into a forked child) is their own."""
    cmd = [sys.executable, __file__, flag, "--cases", str(args.cases), "--size", str(args.size),
           "--workdir", str(args.workdir), "--seed-cases", str(args.seed_cases), "--runs", str(args.runs)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=REPO, check=False)
    for line in proc.stdout.splitlines()[::-1]:
        if line.startswith("RESULT "):
            return dict(json.loads(line[len("RESULT "):]))
    sys.exit(f"{flag[3:]} of the workspace failed (rc {proc.returncode})")


def _child_page(key: str, root: Path) -> list[dict[str, Any]]:
    cmd = [sys.executable, __file__, "--_page", key, "--workdir", str(root.parent), "--_root", str(root)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, check=False)
    for line in proc.stdout.splitlines()[::-1]:
        if line.startswith("RESULT "):
            return list(json.loads(line[len("RESULT "):]))
    return [{"page": key, "first_s": float("nan"), "rerun_s": float("nan"), "rows": 0, "kB": 0.0,
             "peak_rss_mb": 0, "problems": [f"child failed (rc {proc.returncode}): {proc.stderr[-400:]}"]}]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "cw-ui-scale",
                    help="where the workspace is built and reused (default: <tmp>/cw-ui-scale)")
    ap.add_argument("--seed-cases", type=int, default=2000, help="DermSynth cases rendered (then repeated)")
    ap.add_argument("--runs", type=int, default=6, help="TCAV random runs of the analysis")
    ap.add_argument("--pages", default="", help="comma-separated page keys (default: all)")
    ap.add_argument("--cli", action="store_true", help="also time the CLI commands on the workspace")
    ap.add_argument("--_page", default="", help=argparse.SUPPRESS)
    ap.add_argument("--_build", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--_refresh", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--_root", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args._page:
        print("RESULT " + json.dumps(measure_page(args._page, args._root)), flush=True)
        return
    root = (args.workdir / f"ws-{args.cases}-{args.size}").resolve()
    if args._build:
        print("RESULT " + json.dumps(build_workspace(root, args.cases, args.size, args.seed_cases, args.runs)))
        return
    if args._refresh:
        print("RESULT " + json.dumps(refresh_precompute(root)))
        return
    t = time.perf_counter()
    built = _child(args, root)
    print(f"workspace {root}: {args.cases} cases at {args.size} px "
          f"({'reused' if built['reused'] else f'built in {time.perf_counter() - t:.0f} s'}; "
          f"build steps {built.get('seconds')}, analysis steps {built.get('analysis_steps')})", flush=True)
    for note in built.get("notes", []):
        print(f"  note: {note}")
    keys = [k for k in args.pages.split(",") if k] or list(PAGE_ROLES)
    results: list[dict[str, Any]] = []
    print(f"{'page':<22} {'role':<13} {'first s':>8} {'rerun s':>8} {'rows':>7} {'kB':>8} {'peak RSS MB':>11}",
          flush=True)
    for key in keys:
        for r in _child_page(key, root):
            results.append(r)
            print(f"{r['page']:<22} {PAGE_ROLES[key]:<13} {r['first_s']:>8.2f} {r['rerun_s']:>8.2f} {r['rows']:>7} "
                  f"{r['kB']:>8.1f} {r['peak_rss_mb']:>11}", flush=True)
            for p in r.get("problems", []):
                print(f"    problem: {p}", flush=True)
    if args.cli:
        print(f"{'command':<48} {'rc':>3} {'s':>7} {'peak RSS MB':>11}")
        for c in cli_checks(root):
            print(f"{c['cmd']:<48} {c['rc']:>3} {c['s']:>7.1f} {c['peak_rss_mb']:>11}   {c['last']}", flush=True)
        refreshed = _child(args, root, "--_refresh")
        print(f"page precompute refreshed after the CLI's TCAV and clustering in {refreshed.get('seconds')} s "
              f"{refreshed.get('notes') or ''}", flush=True)
    loads = [r["ds_load_s"] for r in results if "ds_load_s" in r]
    imps = [r["imports_s"] for r in results if "imports_s" in r]
    if loads and imps:
        print(f"once per server process, before the pages (not in the times above): imports "
              f"{min(imps):.1f}-{max(imps):.1f} s, data set load + verify {min(loads):.2f}-{max(loads):.2f} s")
    worst = max(results, key=lambda r: max(r["first_s"], r["rerun_s"]))
    print(f"slowest_page_s: {max(worst['first_s'], worst['rerun_s']):.2f} ({worst['page']})")


if __name__ == "__main__":
    main()
