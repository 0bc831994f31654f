"""TCAV: how sensitive a class logit is to a concept's direction, with significance testing.

For a layer ``l``, class ``k`` and CAV ``v``, the directional derivative of an input ``x`` is
``S_k(x) = ∇_h z_k(h(x)) · v``. Per (concept, class, layer) this module reports

* ``sign_count`` — the share of class-``k`` inputs with ``S > 0`` (the TCAV score),
* ``magnitude`` — ``Σ S·[S>0] / Σ |S|`` (positive share of the derivative mass),
* ``mean_derivative`` — ``mean(S)``, which is what ``captum.concept.TCAV`` (0.9) returns under
  the key ``"magnitude"``.

Each (layer, class) gradient is computed once for all class inputs, from cached activations
(``model.forward_from(layer, h)``, backward on the summed class logit), and every CAV of the
analysis is scored with one matrix product. Layers whose gradient is the same for every input
(a layer feeding only a linear head) are refused: their TCAV scores are 0 or 1 for all concepts.

:func:`run_tcav` is the high-level analysis, in named stages (the shape of captum's
``TCAV.interpret -> compute_cavs -> train_cav``), each handing a frozen record to the next:

1. validate and plan — :func:`concepts.tcav._plan.plan_analysis` -> :class:`TCAVPlan`;
2. class gradients — :func:`concepts.tcav._plan.compute_class_gradients` -> :class:`ClassGradients`;
3. CAVs — :func:`concepts.tcav._compute_cavs.compute_cavs` (activation pool, run design, batched
   probe fits cached as ``.npz``) -> :class:`TrainedCAVs`;
4. scores per run — :func:`concepts.tcav._table.score_runs` -> :class:`RunScores`;
5. significance table — :func:`concepts.tcav._table.significance_table`;
6. save — :func:`concepts.tcav._save.save_results`.

The settings travel as one frozen :class:`TCAVConfig`; :func:`run_tcav` keeps its keyword
arguments and gathers them into one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from concepts._progress import ProgressFn
from concepts.tcav._choices import MAX_INPUTS_PER_CLASS
from concepts.tcav._compute_cavs import RANDOM, TrainedCAVs, compute_cavs
from concepts.tcav._core import TCAVReport
from concepts.tcav._plan import ClassGradients, TCAVPlan, compute_class_gradients, plan_analysis
from concepts.tcav._save import save_results
from concepts.tcav._setup import TCAVConfig, TCAVSetup
from concepts.tcav._significance import SignificanceConfig
from concepts.tcav._table import score_runs, significance_table
from concepts.workspace import Workspace

__all__ = [
    "run_tcav",
    "run_tcav_stages",
]



def run_tcav(
    source: Workspace | TCAVSetup | str | Path, layers: Sequence[str] | None = None, *, runs: int = 20,
    probe: str = "pattern", stability_probe: str | None = "auto", concepts: Sequence[str] | None = None,
    classes: Sequence[str] | None = None, counterpart: str | None = None, split: str | Sequence[str] = "val",
    inputs_per_class: int | None = MAX_INPUTS_PER_CLASS, random_set_size: int | None = None,
    significance: SignificanceConfig | None = None, probe_alpha: float = 1.0, test_size: float = 0.3,
    target: str = "logit", seed: int = 0, reuse: bool = True, save: bool = True,
    progress: ProgressFn | None = None,
) -> TCAVReport:
    """TCAV of every bank concept against ``runs`` random counterparts, with significance.

    The settings are gathered in one :class:`TCAVConfig` and run by :func:`run_tcav_stages`.

    Parameters
    ----------
    source
        A workspace (or its path) or a :class:`TCAVSetup`.
    layers
        Layers to analyse (default: the workspace's / model's TCAV layers). Named layers whose
        gradient is constant across inputs raise :class:`ModelError`; default ones are skipped
        with a warning.
    runs
        R: random counterparts per concept (and random-vs-random baseline runs).
    probe
        CAV probe (:data:`PROBES`).
    stability_probe
        Second probe whose conclusions must agree (``"auto"``: ridge for pattern, else pattern;
        ``None``: no probe check).
    concepts, classes
        Subsets to analyse (default: all bank concepts, all model classes with inputs).
    counterpart
        Override what the CAVs of concepts with explicit negatives train against: ``"random"``
        or ``"negative"`` (e.g. DermSynth's counterfactual twins). Default: each concept's own.
    split, inputs_per_class
        Where the class inputs of a workspace come from (topped up to 200 per class from the
        other held-out splits when short) and how many at most (a seeded sample; default
        :data:`MAX_INPUTS_PER_CLASS`, 1,000; ``None``: all).
    random_set_size
        Size of each random counterpart (default: median positive-set size, at most half the pool).
    significance
        Test, tested statistic (the mean directional derivative by default; the sign count
        saturates near a linear head), correction, level and accuracy thresholds.
    probe_alpha, test_size
        Probe regularisation and held-out share.
    target
        ``logit`` (the class logit, default) or ``centered_logit`` (``z_k - mean_j z_j``; use it
        when the run warns that the logits share a large common part).
    seed
        Seed of the random sets and the CAV splits.
    reuse, save
        Reuse / write CAVs under ``results/cavs`` and write ``results/tcav.parquet``.
    progress
        ``progress(stage, done, total)`` callback.

    Returns
    -------
    TCAVReport
    """
    t_all = time.perf_counter()
    if isinstance(source, TCAVSetup):
        setup = source
    else:
        ws = source if isinstance(source, Workspace) else Workspace(source)
        setup = TCAVSetup.from_workspace(ws, split=split, inputs_per_class=inputs_per_class, seed=seed)
    config = TCAVConfig(
        runs=runs, probe=probe, stability_probe=stability_probe,
        concepts=tuple(concepts) if concepts is not None else None,
        classes=tuple(classes) if classes is not None else None,
        counterpart=counterpart, random_set_size=random_set_size,
        significance=significance or SignificanceConfig(), probe_alpha=probe_alpha, test_size=test_size,
        target=target, seed=seed, reuse=reuse, save=save,
    )
    return run_tcav_stages(setup, layers, config, progress=progress, started=t_all)


def run_tcav_stages(
    setup: TCAVSetup,
    layers: Sequence[str] | None,
    config: TCAVConfig,
    *,
    progress: ProgressFn | None = None,
    started: float | None = None,
) -> TCAVReport:
    """:func:`run_tcav` on a setup and a :class:`TCAVConfig`: the six stages in order.

    ``started`` (a :func:`time.perf_counter` value) is when the analysis began, for the
    ``total`` timing (default: now).
    """
    t_all = time.perf_counter() if started is None else started
    plan = plan_analysis(setup, layers, config)
    gradients = compute_class_gradients(setup, plan, config.target, progress)
    cavs = compute_cavs(setup, plan, gradients.layers, config, progress)
    t0 = time.perf_counter()
    scores = score_runs(plan, gradients, cavs)
    timings = {**gradients.timings, **cavs.timings, "scores": time.perf_counter() - t0}
    warnings = [*plan.warnings, *gradients.warnings, *cavs.design.warnings]
    confounded: dict[str, bool] = {}
    for con in plan.concepts:
        balance = plan.bank.check_balance(con)
        confounded[con.name] = balance is not None
        if balance:
            warnings.append(balance)
    table = significance_table(plan, gradients.layers, cavs, scores, config, confounded)
    timings["total"] = time.perf_counter() - t_all
    settings = _settings(setup, plan, gradients, cavs, config)
    if config.save and setup.results_dir is not None:
        save_results(setup.results_dir, table, scores.table, settings, warnings, timings)
    return _report(setup, plan, gradients, cavs, table, scores.table, settings, warnings, timings)


def _settings(
    setup: TCAVSetup, plan: TCAVPlan, gradients: ClassGradients, cavs: TrainedCAVs, config: TCAVConfig
) -> dict[str, Any]:
    """The run's record (JSON-able), as written to ``tcav.json``."""
    sig = config.significance
    return {
        "runs": config.runs, "probe": plan.probe, "stability_probe": plan.stability_probe,
        "layers": list(gradients.layers), "classes": list(plan.classes),
        "concepts": [c.name for c in plan.concepts], "random_set_size": cavs.design.random_set_size,
        "random_pool_size": cavs.design.pool_size,
        "seed": config.seed, "test": sig.test, "statistic": sig.statistic, "correction": sig.correction,
        "alpha": sig.alpha,
        "min_accuracy": sig.min_accuracy, "probe_alpha": config.probe_alpha, "test_size": config.test_size,
        "n_inputs": {c: len(setup.inputs[c]) for c in plan.classes}, "cavs_trained": cavs.n_fitted,
        "target": config.target,
        "design": cavs.design.key, "model_id": setup.model.model_id,
    }


def _report(
    setup: TCAVSetup, plan: TCAVPlan, gradients: ClassGradients, cavs: TrainedCAVs, table: pd.DataFrame,
    scores: pd.DataFrame, settings: dict[str, Any], warnings: list[str], timings: dict[str, float],
) -> TCAVReport:
    """The report: the table, the per-run scores and the main (and stability) probe's CAVs."""
    names = [spec.name for spec in cavs.design.specs if spec.name != RANDOM]
    alt = plan.stability_probe
    return TCAVReport(
        table=table, scores=scores,
        cavs={(n, lay): cavs.get(plan.probe, n, lay) for n in names for lay in gradients.layers},
        random_cavs={lay: cavs.get(plan.probe, RANDOM, lay) for lay in gradients.layers},
        stability_cavs={(n, lay): cavs.get(alt, n, lay) for n in names for lay in gradients.layers} if alt else {},
        layers=tuple(gradients.layers), classes=tuple(plan.classes), model_id=setup.model.model_id,
        settings=settings, warnings=tuple(warnings), timings=timings,
    )
