"""concepts.data."""

from typing import TYPE_CHECKING

from store import lazy_exports

if TYPE_CHECKING:
    from concepts.data._chunks import RowView, release_pages, take_rows
    from concepts.data._dataset import ARTIFACTS, CRITERIA, Dataset, DatasetInfo, ImageSet
    from concepts.data._dataset_files import hash_array, swap_in_directory
    from concepts.data._images import load_image_rgb
    from concepts.data._names import check_name, name_problem
    from concepts.data._sevenpoint import (
        DERM7PT_CRITERION_POINTS,
        DERM7PT_LABELS,
        DERM7PT_MELANOMA_DIAGNOSES,
        SEVEN_POINT_THRESHOLD,
        is_melanoma_diagnosis,
    )
    from concepts.data._twin_renderers import (
        TwinRenderer,
        find_twin_renderer,
        register_twin_renderer,
    )
else:  # each name loads on first use: importing the package stays cheap (no torch)
    __getattr__, __dir__ = lazy_exports(__name__, __file__)

__all__ = [
    "ARTIFACTS",
    "CRITERIA",
    "DERM7PT_CRITERION_POINTS",
    "DERM7PT_LABELS",
    "DERM7PT_MELANOMA_DIAGNOSES",
    "SEVEN_POINT_THRESHOLD",
    "Dataset",
    "DatasetInfo",
    "ImageSet",
    "RowView",
    "TwinRenderer",
    "check_name",
    "find_twin_renderer",
    "hash_array",
    "is_melanoma_diagnosis",
    "load_image_rgb",
    "name_problem",
    "register_twin_renderer",
    "release_pages",
    "swap_in_directory",
    "take_rows",
]
