"""Datasets, person labels, the mapper, the batch, samplers and loaders.

``daaf.data`` imports nothing of ``daaf.pseudo_label``, ``daaf.modeling`` or ``daaf.engine``: the
labelers and the trainer build on it, never the reverse.
"""

from .batch import PersonLabels, ReIDBatch, collate_reid_batch
from .build import MappedDataset, build_reid_test_loader, build_reid_train_loader, get_train_records
from .datasets import DATASET_REGISTRY, ReIDDataset, dataset_report_ranks, get_dataset, resolve_datasets_root
from .loader import ReIDDataLoader
from .mapper import ReIDDatasetMapper, build_augmentations, read_image
from .person_labels import attach_labels, label_file_path, load_label_file, resolve_labels_dir, write_label_file
from .samplers import InferenceSampler, PKSampler
