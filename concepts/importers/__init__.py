"""concepts.importers."""

from typing import TYPE_CHECKING

from store import lazy_exports

if TYPE_CHECKING:
    from concepts.data import (
        DERM7PT_CRITERION_POINTS,
        DERM7PT_LABELS,
        DERM7PT_MELANOMA_DIAGNOSES,
        SEVEN_POINT_THRESHOLD,
        is_melanoma_diagnosis,
    )
    from concepts.importers._class_folders import import_class_folders
    from concepts.importers._derm7pt import (
        DERM7PT_CLASSES,
        DERM7PT_METADATA,
        DERM7PT_SPLIT_FILES,
        import_derm7pt,
        read_derm7pt_meta,
        read_derm7pt_splits,
    )
    from concepts.importers._folder import import_folder
    from concepts.importers._isic import BINARY_CLASSES, import_isic
    from concepts.importers._rows import stratified_split
else:  # each name loads on first use: importing the package stays cheap (no torch)
    __getattr__, __dir__ = lazy_exports(__name__, __file__)

__all__ = [
    "BINARY_CLASSES",
    "DERM7PT_CLASSES",
    "DERM7PT_CRITERION_POINTS",
    "DERM7PT_LABELS",
    "DERM7PT_MELANOMA_DIAGNOSES",
    "DERM7PT_METADATA",
    "DERM7PT_SPLIT_FILES",
    "SEVEN_POINT_THRESHOLD",
    "import_class_folders",
    "import_derm7pt",
    "import_folder",
    "import_isic",
    "is_melanoma_diagnosis",
    "read_derm7pt_meta",
    "read_derm7pt_splits",
    "stratified_split",
]
