from .bases import DATASET_REGISTRY, IMAGE_EXTENSIONS, ReIDDataset, get_dataset, resolve_datasets_root
from .market1501 import DukeMTMCreID, Market1501, SyntheticPersons
