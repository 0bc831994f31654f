"""concepts.data."""

from concepts.data._chunks import release_pages
from concepts.data._dataset import (
    ARTIFACTS,
    CRITERIA,
    Dataset,
    DatasetInfo,
    ImageSet,
    check_name,
    hash_array,
    name_problem,
    swap_in_directory,
)
from concepts.data._images import load_image_rgb

__all__ = [
    "ARTIFACTS",
    "CRITERIA",
    "Dataset",
    "DatasetInfo",
    "ImageSet",
    "check_name",
    "hash_array",
    "load_image_rgb",
    "name_problem",
    "release_pages",
    "swap_in_directory",
]
