from .bases import (
    DATASET_REGISTRY,
    IMAGE_EXTENSIONS,
    BoundingBoxDataset,
    ReIDDataset,
    dataset_report_ranks,
    get_dataset,
    resolve_datasets_root,
)
from .cuhk03 import CUHK03Detected, CUHK03Labeled, extract_cuhk03_images
from .custom import CustomDataset, register_custom_dataset, register_custom_datasets
from .dukemtmcreid import DukeMTMCreID
from .market1501 import Market1501
from .msmt17 import MSMT17
from .occluded import OccludedDuke, OccludedREID
from .partial import PartialDataset, PartialiLIDS, PartialREID
from .synthetic import SyntheticPartial, SyntheticPersons
