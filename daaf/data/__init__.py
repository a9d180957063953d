"""Datasets, the synthetic person generator, the mapper, samplers and loaders."""

from .build import (
    MappedDataset,
    ReIDDataLoader,
    attach_labels,
    build_reid_test_loader,
    build_reid_train_loader,
    get_train_records,
    reid_collate,
    resolve_labels_dir,
)
from .datasets import DATASET_REGISTRY, ReIDDataset, get_dataset, resolve_datasets_root
from .mapper import ReIDDatasetMapper, read_image
from .samplers import InferenceSampler, PKSampler
