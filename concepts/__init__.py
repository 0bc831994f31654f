"""Everything from images to concept space (provisional exports; see bottom)."""
from concepts._activations import ActivationCache, extract_activations
from concepts._dataset import ARTIFACTS, CRITERIA, Dataset, DatasetInfo, ImageSet, hash_array
from concepts._errors import (
    ConceptError,
    DataError,
    ImageError,
    ModelError,
    UnsafeCheckpointError,
    WorkbenchError,
    WorkspaceError,
)
from concepts._images import load_image_rgb
from concepts._models import ClassifierModel, Preprocessing, StagedNet, TinyCNN
from concepts._training import fit_linear_head, set_linear_head, train_end_to_end
from concepts._workspace import Workspace
