"""The UI's bridge to concept space: saved CAVs, concept scores and examples, concept maps,
attribution, per-case views, the cluster gallery with cluster naming, and concepts built from
cases a dermatologist picks (:func:`add_concept_from_cases`, the path of ``workbench concepts add``).

Heavy results are cached in ``st.cache_data`` keyed by explicit ids (workspace path, model
weights hash, data-set content hash, a key of the CAV files); work that runs the shared model
(concept maps, attribution) holds the model's lock because it may register forward hooks.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from concepts import CRITERIA, ConceptError, ProgressFn, Workspace
from concepts.tcav import CAV, MIN_EXAMPLES, CAVSet
from store import Action, PermissionDenied
from workbench.ui._science import file_key, tcav_table
from workbench.ui._state import MissingResults, dataset, dataset_key, model, model_key, model_lock

__all__ = [
    "add_concept_from_cases",
    "attribution",
    "case_concept_scores",
    "case_table",
    "cluster_gallery",
    "concept_examples",
    "concept_map",
    "mean_cav",
    "name_cluster_as_concept",
]


# --------------------------------------------------------------------------- CAVs
def _tcav_settings(ws: Workspace) -> dict[str, Any]:
    path = ws.results_dir / "tcav.json"
    try:
        return dict(json.loads(path.read_text()).get("settings", {}))
    except (OSError, ValueError):
        return {}


def _cav_dir_key(ws: Workspace, model_id: str) -> str:
    d = ws.results_dir / "cavs" / model_id
    if not d.is_dir():
        return ""
    return "|".join(f"{p.name}:{file_key(p)}" for p in sorted(d.glob("*/*.npz")))


@st.cache_resource(show_spinner=False, max_entries=4)
def _cavsets(root: str, model_id: str, probe: str, key: str) -> dict[tuple[str, str], CAVSet]:
    """(concept, layer) -> the newest saved CAV set of the primary probe."""
    d = Workspace(root).results_dir / "cavs" / model_id
    found: dict[tuple[str, str], tuple[float, CAVSet]] = {}
    for p in d.glob("*/*.npz"):
        try:
            cs = CAVSet.load(p)
        except (OSError, ValueError, KeyError):
            continue
        if cs.probe != probe or cs.concept == "random":
            continue
        k = (cs.concept, cs.layer)
        mtime = p.stat().st_mtime
        if k not in found or mtime > found[k][0]:
            found[k] = (mtime, cs)
    return {k: v for k, (_, v) in found.items()}


def mean_cav(ws: Workspace, concept: str, layer: str) -> CAV:
    """The mean CAV of ``concept`` at ``layer`` from the saved TCAV run.

    Raises
    ------
    MissingResults
        No saved CAVs for it (run the TCAV analysis).
    """
    m = model(ws)
    probe = str(_tcav_settings(ws).get("probe", "pattern"))
    sets = _cavsets(str(ws.root), m.model_id, probe, _cav_dir_key(ws, m.model_id))
    if (concept, layer) not in sets:
        raise MissingResults(
            f"no saved CAV of {concept!r} at {layer} — run the TCAV analysis at that layer"
        )
    return sets[(concept, layer)].mean_cav()


# --------------------------------------------------------------------------- concept scores
def _eval_sets(ws: Workspace, split: str) -> list[tuple[str, np.ndarray]]:
    """Per class, the rows of ``split`` (the same image sets the TCAV run used: cache hits)."""
    ds = dataset(ws)
    return [(c, ds.indices(split, label=c)) for c in ds.classes if len(ds.indices(split, label=c))]


@st.cache_data(show_spinner="Scoring images along the concept…", max_entries=64)
def _scores(root: str, model_sha: str, ds_hash: str, cav_key: str, concept: str, layer: str,
            split: str) -> pd.DataFrame:
    from concepts.tcav import concept_scores

    ws = Workspace(root)
    m, ds = model(ws), dataset(ws)
    cav = mean_cav(ws, concept, layer)
    parts = []
    for cls, rows in _eval_sets(ws, split):
        iset = ds.image_set(rows, name=f"{ds.info.name}:{split}:{cls}")
        sc = concept_scores(m, {concept: cav}, iset, ws.activation_cache,
                            store_dir=ws.results_dir / "concept_scores")
        parts.append(pd.DataFrame({"row": rows, "score": sc[concept].to_numpy()}))
    out = pd.concat(parts, ignore_index=True)
    cases = ds.cases.iloc[out["row"].to_numpy()]
    out["case_id"] = cases["case_id"].astype(str).to_numpy()
    out["label"] = cases["label"].astype(str).to_numpy()
    return out.sort_values("score", ascending=False, ignore_index=True)


def _keys(ws: Workspace) -> tuple[str, str, str]:
    m = model(ws)
    return model_key(ws)[1], dataset_key(ws)[1], _cav_dir_key(ws, m.model_id)


def concept_examples(ws: Workspace, concept: str, layer: str, n: int = 6,
                     split: str = "val") -> dict[str, list[dict[str, Any]]]:
    """The ``n`` images of ``split`` scoring highest and lowest along the concept's CAV."""
    msha, dhash, ckey = _keys(ws)
    sc = _scores(str(ws.root), msha, dhash, ckey, concept, layer, split)
    ds = dataset(ws)

    def pack(df: pd.DataFrame) -> list[dict[str, Any]]:
        return [
            {"row": int(r.row), "case_id": r.case_id, "label": r.label, "score": float(r.score),
             "image": np.asarray(ds.images[int(r.row)])}
            for r in df.itertuples()
        ]

    return {"top": pack(sc.head(n)), "bottom": pack(sc.tail(n).iloc[::-1])}


def concept_map(ws: Workspace, concept: str, layer: str, row: int) -> np.ndarray:
    """The concept map of one image (``(S, S)``; needs a convolutional layer)."""
    from concepts.tcav import concept_maps

    m = model(ws)
    cav = mean_cav(ws, concept, layer)
    img = np.asarray(dataset(ws).images[int(row)])
    with model_lock(m.model_id):
        return concept_maps(m, cav, img[None])[0]  # type: ignore[no-any-return]


def attribution(ws: Workspace, row: int, target: str, method: str = "gradcam") -> np.ndarray:
    """An attribution heatmap of one image for ``target`` (captum through ``concepts``)."""
    from concepts.tcav import attribution_map

    m = model(ws)
    img = np.asarray(dataset(ws).images[int(row)])
    with model_lock(m.model_id):
        return attribution_map(m, img, target, method=method)


# --------------------------------------------------------------------------- cases
def case_table(ws: Workspace, split: str, layer: str) -> pd.DataFrame:
    """The cases of ``split`` with the model's prediction (from the what-if engine's cached
    activations): row, case_id, label, predicted, p(<first class>), correct, artifacts, skin
    tone and the ground-truth checklist score.

    Built once per (workspace, model weights, data-set content, split, layer) and cached: a
    rerun of the Case explorer filters this table, it does not rebuild it."""
    return _case_table(str(ws.root), model_key(ws)[1], dataset_key(ws)[1], split, layer)


@st.cache_data(show_spinner="Listing the cases…", max_entries=8)
def _case_table(root: str, model_sha: str, ds_hash: str, split: str, layer: str) -> pd.DataFrame:
    from workbench.ui._interventions import whatif

    ws = Workspace(root)
    wi = whatif(ws, split, layer)
    ds = dataset(ws)
    idx = ds.indices(split)
    classes = ds.classes
    cases = ds.cases.iloc[idx].reset_index(drop=True)
    out = pd.DataFrame({
        "row": idx,
        "case_id": cases["case_id"].astype(str),
        "label": cases["label"].astype(str),
        "predicted": np.asarray(classes, dtype=object)[np.asarray(wi.base_pred, dtype=int)],
        f"p({classes[0]})": np.round(wi.base_proba[:, 0], 3),
    })
    out["correct"] = out["label"] == out["predicted"]
    arts = [a for a in ds.info.artifacts if a in cases.columns]
    out["artifacts"] = _artifact_names(cases, arts)
    for a in arts:
        out[a] = cases[a].astype(int).to_numpy()
    if "skin_tone" in cases.columns:
        out["skin_tone"] = cases["skin_tone"].astype(str)
    if "seven_point_score" in cases.columns:
        out["seven_point_score"] = cases["seven_point_score"].to_numpy()
    return out


def _artifact_names(cases: pd.DataFrame, arts: list[str]) -> np.ndarray | str:
    """Per case, the artifacts it carries as ``"ink, ruler"`` (column by column, not row by row)."""
    if not arts:
        return ""
    text = np.full(len(cases), "", dtype=object)
    for a in arts:
        has = cases[a].to_numpy().astype(int) == 1
        text[has] = text[has] + np.where(text[has] == "", a, ", " + a)
    return text


@st.cache_data(show_spinner="Scoring the concepts…", max_entries=64)
def _case_scores(root: str, model_sha: str, ds_hash: str, cav_key: str, layer: str, split: str,
                 concepts: tuple[str, ...]) -> pd.DataFrame:
    from concepts.tcav import concept_scores

    ws = Workspace(root)
    m, ds = model(ws), dataset(ws)
    cavs = {c: mean_cav(ws, c, layer) for c in concepts}
    parts = []
    for cls, rows in _eval_sets(ws, split):
        iset = ds.image_set(rows, name=f"{ds.info.name}:{split}:{cls}")
        sc = concept_scores(m, cavs, iset, ws.activation_cache, store_dir=ws.results_dir / "concept_scores")
        sc.index = rows
        parts.append(sc)
    return pd.concat(parts).sort_index()


def case_concept_scores(ws: Workspace, split: str, layer: str, row: int) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One case's signed distance to every concept's CAV hyperplane, and the checklist the
    model implies from them (``score_expected``, ``score_thresholded``, ``p_rule``)."""
    from graph import implied_checklist

    tc = tcav_table(ws)
    concepts = tuple(sorted(tc[tc["layer"] == layer]["concept"].unique().tolist()))
    if not concepts:
        raise MissingResults(f"no TCAV concepts at {layer}")
    msha, dhash, ckey = _keys(ws)
    allsc = _case_scores(str(ws.root), msha, dhash, ckey, layer, split, concepts)
    if int(row) not in allsc.index:
        raise ConceptError(f"case row {row} is not in the {split} split")
    one = allsc.loc[[int(row)]]
    table = pd.DataFrame({"concept": list(concepts), "score": one.iloc[0].to_numpy()})
    table["group"] = table["concept"].map(
        tc.drop_duplicates("concept").set_index("concept")["group"].to_dict()
    )
    implied: dict[str, Any] = {}
    if all(c in one.columns for c in CRITERIA):
        imp = implied_checklist(one[list(CRITERIA)], from_logits=True)
        implied = {k: imp.iloc[0][k] for k in ("score_thresholded", "score_expected", "p_rule")
                   if k in imp.columns}
        implied["present"] = [c for c in CRITERIA if int(imp.iloc[0][c])]
    return table.sort_values("score", ascending=False, ignore_index=True), implied


# --------------------------------------------------------------------------- clusters
@dataclass
class _Clusters:
    lock: threading.Lock = field(default_factory=threading.Lock)
    results: dict[tuple[str, ...], Any] = field(default_factory=dict)


@st.cache_resource(show_spinner=False)
def _clusters_registry() -> _Clusters:
    return _Clusters()


def clustering(ws: Workspace, layer: str | None = None, progress: ProgressFn | None = None) -> Any:
    """Clusters of the training split's activations at ``layer`` (default: the workspace's
    deepest analysis layer), computed once per model and data set."""
    from concepts.discovery import cluster_dataset

    layers = ws.layers()
    lay = layer or (layers[-1] if layers else model(ws).layers[-2])
    key = (str(ws.root), *model_key(ws), *dataset_key(ws), lay)
    reg = _clusters_registry()
    with reg.lock:
        res = reg.results.get(key)
    if res is None:
        res = _saved_clustering(ws, lay)
    if res is None:
        m = model(ws)
        with model_lock(m.model_id):
            res = cluster_dataset(dataset(ws), m, lay, split="train", cache=ws.activation_cache,
                                  progress=progress)
    with reg.lock:
        reg.results[key] = res
    return res


def _saved_clustering(ws: Workspace, layer: str) -> Any:
    """The clusters ``workbench train``/``demo`` precomputed (``results/clusters.json``) when they
    are of this model, data set (content hash), layer and the train split; else ``None``.

    Reading them costs a JSON parse; clustering the train split again costs a pass over its
    activations (tens of seconds at 100,000 cases)."""
    from concepts import WorkbenchError
    from concepts.discovery import ClusteringResult

    path = ws.results_dir / "clusters.json"
    analysis = ws.manifest().get("analysis") or {}
    made = analysis.get("clusters") if isinstance(analysis, dict) else None
    if not path.is_file() or not isinstance(made, dict):
        return None
    if made.get("model_id") != model(ws).model_id or made.get("layer") != layer:
        return None
    try:
        res = ClusteringResult.load(path)
    except (WorkbenchError, OSError):
        return None
    if res.layer != layer or res.split != "train" or res.dataset_hash != dataset_key(ws)[1]:
        return None  # written since by `workbench clusters` with other settings
    return res


def cluster_gallery(ws: Workspace, n_images: int = 6, limit: int = 6) -> list[dict[str, Any]]:
    """The most class-associated clusters with their exemplar images (nearest the centroid)."""
    res = clustering(ws)
    ds = dataset(ws)
    out = []
    for _, r in res.clusters.head(limit).iterrows():
        rows = [int(x) for x in r["exemplar_rows"]][:n_images]
        cases = ds.cases.iloc[rows]
        out.append({
            "cluster": int(r["cluster"]),
            "size": int(r["size"]),
            "class": str(r["class"]),
            "suspicious": bool(r["suspicious"]),
            "summary": (
                f"{100 * float(r['purity']):.0f}% {r['class']} (lift {float(r['lift']):.2f}, "
                f"adj. p {float(r['p_adjusted']):.2g})" + (" · suspicious" if bool(r["suspicious"]) else "")
            ),
            "images": [
                (np.asarray(ds.images[i]), f"{cid} · {lab}")
                for i, cid, lab in zip(rows, cases["case_id"].astype(str), cases["label"].astype(str), strict=True)
            ],
        })
    return out


def name_cluster_as_concept(ws: Workspace, actor: Any, cluster: int, name: str, description: str,
                            progress: ProgressFn | None = None) -> str:
    """Name a cluster as a concept (recorded as ``concept_named`` by ``actor``), then learn its
    CAVs and re-run TCAV with the settings of the saved run; returns a one-line summary."""
    from concepts.discovery import name_cluster
    from concepts.tcav import run_tcav
    from workbench.ui._state import store

    res = clustering(ws)
    concept = name_cluster(ws, res, cluster, name, description or f"cluster {cluster}", actor,
                           store=store(ws))
    settings = _tcav_settings(ws)
    kw: dict[str, Any] = {k: settings[k] for k in ("runs", "probe", "seed") if k in settings}
    layers = settings.get("layers") or None
    m = model(ws)
    with model_lock(m.model_id):
        report = run_tcav(ws, layers, reuse=True, save=True, progress=progress, **kw)
    rows = report.table[report.table["concept"] == concept.name]
    sig = int(rows["significant"].sum()) if len(rows) else 0
    return (f"{len(concept.positive)} examples; TCAV on {len(rows)} class/layer pairs, "
            f"{sig} significant")


# --------------------------------------------------------------------------- concepts from cases
@st.cache_resource(show_spinner=False)
def _bank_lock(root: str) -> threading.Lock:
    """One writer of a workspace's concept bank per server."""
    return threading.Lock()


@dataclass(frozen=True)
class AddedConcept:
    """A concept added from cases: its name, id, example counts and the store event."""

    name: str
    concept_id: str
    n_positive: int
    n_negative: int
    matched: bool
    event_seq: int
    tcav: str = ""

    @property
    def caution(self) -> str | None:
        """A caution when the concept has few examples (``concepts.bank.few_examples_note``)."""
        from concepts.bank import few_examples_note

        return few_examples_note(self.n_positive)

    def summary(self) -> str:
        neg = (f"{self.n_negative} class-matched negatives drawn from the other cases" if self.matched
               else f"{self.n_negative} chosen negatives")
        return (f"Added concept {self.name!r} ({self.n_positive} cases, {neg}; id {self.concept_id}), "
                f"recorded as event #{self.event_seq}." + (f" {self.tcav}" if self.tcav else ""))


def add_concept_from_cases(
    ws: Workspace, actor: Any, name: str, positive_ids: list[str], *, group: str = "custom",
    description: str = "", negative_ids: list[str] | None = None, run_tcav: bool = False,
    progress: ProgressFn | None = None,
) -> AddedConcept:
    """Add a concept to the workspace's bank from case ids picked in the UI and record it as
    ``concept_named`` by ``actor`` — what ``workbench concepts add NAME --cases ...`` does.

    Without ``negative_ids`` the negatives are drawn from the other cases with the positives'
    class mix (``match_classes``), so its CAVs cannot separate the label instead of the concept.
    With ``run_tcav`` its CAVs are learned and TCAV re-run with the saved run's settings.

    Raises
    ------
    ConceptError
        Too few cases, unknown ids, a name in use or not allowed, positives among the negatives.
    store.PermissionDenied
        ``actor`` may not name concepts (only dermatologists may).
    """
    name = name.strip()
    pos = list(dict.fromkeys(str(c) for c in positive_ids))
    neg = list(dict.fromkeys(str(c) for c in negative_ids)) if negative_ids else None
    if not name:
        raise ConceptError("give the concept a name")
    if len(pos) < MIN_EXAMPLES:
        raise ConceptError(f"pick at least {MIN_EXAMPLES} cases that show the concept ({len(pos)} picked)")
    if neg and set(neg) & set(pos):
        raise ConceptError("a case cannot be both a positive and a negative example: "
                           + ", ".join(sorted(set(neg) & set(pos))[:5]))
    if not actor.can(Action.CONCEPT_NAMED):
        raise PermissionDenied("only a dermatologist may name a concept")
    return _add_concept(ws, actor, name, pos, group, description.strip(), neg, run_tcav, progress)


def _add_concept(ws: Workspace, actor: Any, name: str, pos: list[str], group: str, description: str,
                 neg: list[str] | None, run_tcav: bool, progress: ProgressFn | None) -> AddedConcept:
    from concepts import ConceptBank
    from workbench.ui._state import store

    with _bank_lock(str(ws.root)):
        bank = ConceptBank.for_workspace(ws)
        if name in bank:
            raise ConceptError(f"a concept {name!r} already exists — choose another name "
                               f"(or remove it with `workbench concepts remove {name}`)")
        con = bank.add_from_cases(name, group, description or f"{len(pos)} selected cases", dataset(ws),
                                  pos, neg, match_classes=neg is None)
        bank.save()
    n_neg = len(con.negative) if con.negative is not None else 0
    meta = {"op": "added", "name": name, "bank_revision": bank.revision, "group": con.group,
            "origin": con.origin, "counterpart": con.counterpart, "n_positive": len(con.positive),
            "n_negative": n_neg, "source": "ui-cases", "matched_negatives": neg is None,
            "concept_id": con.id}
    event = store(ws).append_event(actor, Action.CONCEPT_NAMED, concept=name, spec=meta,
                                   rationale=con.description or None)
    tcav = _tcav_of(ws, name, progress) if run_tcav else ""
    return AddedConcept(name, con.id, len(con.positive), n_neg, neg is None, int(event.seq), tcav)


def _tcav_of(ws: Workspace, name: str, progress: ProgressFn | None) -> str:
    from concepts.tcav import run_tcav

    settings = _tcav_settings(ws)
    kw: dict[str, Any] = {k: settings[k] for k in ("runs", "probe", "seed") if k in settings}
    m = model(ws)
    with model_lock(m.model_id):
        report = run_tcav(ws, settings.get("layers") or None, reuse=True, save=True, progress=progress, **kw)
    rows = report.table[report.table["concept"] == name]
    return f"TCAV on {len(rows)} class/layer pairs, {int(rows['significant'].sum()) if len(rows) else 0} significant."
