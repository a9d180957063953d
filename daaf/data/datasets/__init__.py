from .bases import DATASET_REGISTRY, IMAGE_EXTENSIONS, ReIDDataset, get_dataset, resolve_datasets_root
from .cuhk03 import CUHK03Detected, CUHK03Labeled, extract_cuhk03_images
from .custom import CustomDataset, register_custom_dataset, register_custom_datasets
from .market1501 import DukeMTMCreID, Market1501, SyntheticPersons
from .others import MSMT17, PartialiLIDS, PartialREID, SyntheticPartial
