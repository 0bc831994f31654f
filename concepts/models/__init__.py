"""concepts.models."""

from typing import TYPE_CHECKING

from store import lazy_exports

if TYPE_CHECKING:
    from concepts.models._activations import ActivationCache, extract_activations
    from concepts.models._architectures import (
        ARCHITECTURE_GROUP,
        PROGRAM_ARCHITECTURE,
        architecture_names,
        check_architecture_name,
        check_factory_kwargs,
    )
    from concepts.models._batches import RowWriter
    from concepts.models._checkpoints import load_state_dict_safely
    from concepts.models._classifier import ClassifierModel
    from concepts.models._compute import (
        DEVICES,
        ENGINES,
        PRECISIONS,
        Compute,
        on_device,
        resolve_device,
    )
    from concepts.models._engine_ray import PID_DIR_ENV
    from concepts.models._metrics import (
        ClassificationMetrics,
        annotated_artifacts,
        classification_metrics,
        default_positive_class,
        group_name,
        resolve_positive_class,
    )
    from concepts.models._networks import BUILTIN_ARCHITECTURES, Preprocessing, StagedNet, TinyCNN
    from concepts.models._program import check_program_archive
    from concepts.models._training import (
        TrainConfig,
        TrainResult,
        fit_linear_head,
        set_linear_head,
        train_classifier,
        train_end_to_end,
    )
else:  # each name loads on first use: importing the package stays cheap (no torch)
    __getattr__, __dir__ = lazy_exports(__name__, __file__)

__all__ = [
    "ARCHITECTURE_GROUP",
    "BUILTIN_ARCHITECTURES",
    "DEVICES",
    "ENGINES",
    "PID_DIR_ENV",
    "PRECISIONS",
    "PROGRAM_ARCHITECTURE",
    "ActivationCache",
    "ClassificationMetrics",
    "ClassifierModel",
    "Compute",
    "Preprocessing",
    "RowWriter",
    "StagedNet",
    "TinyCNN",
    "TrainConfig",
    "TrainResult",
    "annotated_artifacts",
    "architecture_names",
    "check_architecture_name",
    "check_factory_kwargs",
    "check_program_archive",
    "classification_metrics",
    "default_positive_class",
    "extract_activations",
    "fit_linear_head",
    "group_name",
    "load_state_dict_safely",
    "on_device",
    "resolve_device",
    "resolve_positive_class",
    "set_linear_head",
    "train_classifier",
    "train_end_to_end",
]
