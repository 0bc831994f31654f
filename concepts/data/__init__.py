"""concepts.data."""

from typing import TYPE_CHECKING

from concepts._lazy import lazy_exports

if TYPE_CHECKING:
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
else:  # each name loads on first use: importing the package stays cheap (no torch)
    __getattr__, __dir__ = lazy_exports(__name__, __file__)

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
