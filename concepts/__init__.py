"""Everything from images to concept space.

Data sets (DermSynth, importers), model loading, the activation cache, CAVs, TCAV with
significance tests, concept scores and maps, co-occurrence analysis and activation clusters.
"""

from concepts._activations import ActivationCache, extract_activations
from concepts._bank import Concept, ConceptBank, ExampleSet, label_confounding
from concepts._cav import CAV, PROBES, CAVTrainer, cav_cosine, fit_cav_batch, fit_cavs
from concepts._clusters import (
    ClusteringResult,
    cluster_activations,
    cluster_associations,
    cluster_dataset,
    name_cluster,
)
from concepts._compute import DEVICES, ENGINES, PRECISIONS, Compute, on_device, resolve_device
from concepts._cooccurrence import (
    attribute_class_table,
    attribute_pair_table,
    odds_ratio_ci,
    two_by_two_test,
)
from concepts._dataset import ARTIFACTS, CRITERIA, Dataset, DatasetInfo, ImageSet, hash_array
from concepts._derm7pt import DERM7PT_LABELS, import_derm7pt, read_derm7pt_meta
from concepts._dermsynth import (
    DermSynthConfig,
    DermSynthResult,
    PlantedConfounder,
    draw_artifact,
    generate_dermsynth,
    parse_confounder,
    render_case,
    render_twins,
)
from concepts._errors import (
    ComputeError,
    ConceptError,
    DataError,
    ImageError,
    ModelError,
    UnsafeCheckpointError,
    WorkbenchError,
    WorkspaceError,
)
from concepts._images import load_image_rgb
from concepts._importers import import_class_folders, import_folder
from concepts._isic import import_isic
from concepts._metrics import (
    ClassificationMetrics,
    annotated_artifacts,
    classification_metrics,
    default_positive_class,
)
from concepts._models import (
    ARCHITECTURE_GROUP,
    BUILTIN_ARCHITECTURES,
    PROGRAM_ARCHITECTURE,
    ClassifierModel,
    Preprocessing,
    StagedNet,
    TinyCNN,
    architecture_names,
    check_architecture_name,
    check_factory_kwargs,
    load_state_dict_safely,
)
from concepts._reliance import (
    FlipRate,
    counterfactual_flip_rate,
    flip_rates_from_twins,
    is_dermsynth,
    planted_confounders,
)
from concepts._scores import attribution_map, concept_maps, concept_scores
from concepts._significance import SignificanceConfig, adjust_pvalues, compare_to_random
from concepts._tcav import TCAVReport, TCAVSetup, default_layers, run_tcav
from concepts._training import (
    TrainConfig,
    TrainResult,
    fit_linear_head,
    set_linear_head,
    train_classifier,
    train_end_to_end,
)
from concepts._twins import (
    TwinSet,
    find_twin_columns,
    inpaint,
    load_masks,
    paired_twins,
    real_twins,
    threshold_maps,
    transplant,
    transplant_twins,
)
from concepts._workspace import Workspace, check_name

__all__ = [
    "ARCHITECTURE_GROUP",
    "ARTIFACTS",
    "BUILTIN_ARCHITECTURES",
    "CAV",
    "CRITERIA",
    "DERM7PT_LABELS",
    "DEVICES",
    "ENGINES",
    "PRECISIONS",
    "PROBES",
    "PROGRAM_ARCHITECTURE",
    "ActivationCache",
    "CAVTrainer",
    "ClassificationMetrics",
    "ClassifierModel",
    "ClusteringResult",
    "Compute",
    "ComputeError",
    "Concept",
    "ConceptBank",
    "ConceptError",
    "DataError",
    "Dataset",
    "DatasetInfo",
    "DermSynthConfig",
    "DermSynthResult",
    "ExampleSet",
    "FlipRate",
    "ImageError",
    "ImageSet",
    "ModelError",
    "PlantedConfounder",
    "Preprocessing",
    "SignificanceConfig",
    "StagedNet",
    "TCAVReport",
    "TCAVSetup",
    "TinyCNN",
    "TrainConfig",
    "TrainResult",
    "TwinSet",
    "UnsafeCheckpointError",
    "WorkbenchError",
    "Workspace",
    "WorkspaceError",
    "adjust_pvalues",
    "annotated_artifacts",
    "architecture_names",
    "attribute_class_table",
    "attribute_pair_table",
    "attribution_map",
    "cav_cosine",
    "check_architecture_name",
    "check_factory_kwargs",
    "check_name",
    "classification_metrics",
    "cluster_activations",
    "cluster_associations",
    "cluster_dataset",
    "compare_to_random",
    "concept_maps",
    "concept_scores",
    "counterfactual_flip_rate",
    "default_layers",
    "default_positive_class",
    "draw_artifact",
    "extract_activations",
    "find_twin_columns",
    "fit_cav_batch",
    "fit_cavs",
    "fit_linear_head",
    "flip_rates_from_twins",
    "generate_dermsynth",
    "hash_array",
    "import_class_folders",
    "import_derm7pt",
    "import_folder",
    "import_isic",
    "inpaint",
    "is_dermsynth",
    "label_confounding",
    "load_image_rgb",
    "load_masks",
    "load_state_dict_safely",
    "name_cluster",
    "odds_ratio_ci",
    "on_device",
    "paired_twins",
    "parse_confounder",
    "planted_confounders",
    "read_derm7pt_meta",
    "real_twins",
    "render_case",
    "render_twins",
    "resolve_device",
    "run_tcav",
    "set_linear_head",
    "threshold_maps",
    "train_classifier",
    "train_end_to_end",
    "transplant",
    "transplant_twins",
    "two_by_two_test",
]
