"""Training and test data loaders built from the config."""

import functools
import logging
import random
from typing import List, Sequence

import numpy as np
from torch.utils.data import Dataset

from daaf.config import configurable
from daaf.utils import comm
from daaf.utils.env import seed_all_rng
from daaf.utils.errors import ConfigError, DatasetError

from .batch import PersonLabels
from .datasets import get_dataset, register_custom_datasets
from .image_check import drop_or_refuse_bad_images
from .loader import ReIDDataLoader
from .mapper import ReIDDatasetMapper
from .person_labels import attach_labels, label_file_path, resolve_labels_dir
from .samplers import InferenceSampler, PKSampler, SeededBatchSampler

__all__ = ["MappedDataset", "get_train_records", "build_reid_train_loader", "build_reid_test_loader"]

logger = logging.getLogger(__name__)


class MappedDataset(Dataset):
    """A list of records mapped one at a time by ``mapper``. ``num_classes``: training identities.

    An item is an index, or an (index, seed) pair (:class:`SeededBatchSampler`): then NumPy's and
    Python's global RNGs, which the augmentations draw from, are seeded with it first.
    """

    def __init__(self, records: List[dict], mapper):
        self.records = records
        self.mapper = mapper
        self.num_classes = len({r["pid"] for r in records})

    def __len__(self):
        return len(self.records)

    def __getitem__(self, item):
        if isinstance(item, tuple):
            item, seed = item
            np.random.seed(seed)
            random.seed(seed)
        return self.mapper(self.records[item])


def get_train_records(dataset_names: Sequence[str], root: str = "", labels_dir: str = None) -> List[dict]:
    """Training records of all datasets with pids relabelled to 0..N-1 (datasets kept apart) and
    camids offset per dataset. With ``labels_dir``, each record gets its person label
    (:func:`attach_labels`)."""
    if not dataset_names:
        raise DatasetError("DATASETS.TRAIN is empty: name at least one registered dataset")
    records, pid_offset, cam_offset = [], 0, 0
    for name in dataset_names:
        dataset = get_dataset(name, root, splits=("train",))
        if not dataset.train:
            raise DatasetError(f"DATASETS.TRAIN: {name} has no training split (it is a test-only dataset)")
        train = [dict(r) for r in dataset.train]
        if labels_dir is not None:
            attach_labels(train, label_file_path(labels_dir, name, "train"))
        pid_map = {pid: i + pid_offset for i, pid in enumerate(sorted({r["pid"] for r in train}))}
        for r in train:
            r["pid"] = pid_map[r["pid"]]
            r["camid"] += cam_offset
            r["dataset"] = name
        records += train
        pid_offset += len(pid_map)
        cam_offset += len({r["camid"] for r in train})
    return records


def _worker_init_fn(worker_id: int, base_seed: int) -> None:
    seed_all_rng(base_seed + worker_id)


def _checked_input_fields(input_fields) -> frozenset:
    """The person-label fields a model asks for; ConfigError for a field the loader cannot serve."""
    fields = frozenset(input_fields)
    unknown = fields - PersonLabels.FIELDS
    if unknown:
        raise ConfigError(
            f"the model asks for batch fields {sorted(unknown)}, which the ReID loader does not make (it makes {sorted(PersonLabels.FIELDS)})"
        )
    return fields


def _train_loader_from_config(cfg, mapper=None, input_fields=()):
    register_custom_datasets(cfg.DATASETS.CUSTOM)
    input_fields = _checked_input_fields(input_fields)
    labels_dir = resolve_labels_dir(cfg) if input_fields else None
    records = get_train_records(cfg.DATASETS.TRAIN, cfg.DATASETS.ROOT, labels_dir)
    if cfg.DATALOADER.CHECK_IMAGES:
        records = drop_or_refuse_bad_images(records, skip=cfg.DATALOADER.SKIP_BAD_IMAGES, max_pixels=cfg.INPUT.MAX_IMAGE_PIXELS)
    return {
        "records": records,
        "mapper": mapper or ReIDDatasetMapper(cfg, is_train=True, input_fields=input_fields),
        "total_batch_size": cfg.SOLVER.IMS_PER_BATCH,
        "num_instances": cfg.DATALOADER.NUM_INSTANCE,
        "num_workers": cfg.DATALOADER.NUM_WORKERS,
        "seed": cfg.SEED if cfg.SEED >= 0 else None,
    }


@configurable(from_config=_train_loader_from_config)
def build_reid_train_loader(
    *, records, mapper, total_batch_size: int, num_instances: int, num_workers: int = 0, seed=None
) -> ReIDDataLoader:
    """Infinite P x K training loader of this process's share (total_batch_size / world size),
    resumable at any batch (its ``batch_sampler``, a :class:`SeededBatchSampler`).

    From a config: ``build_reid_train_loader(cfg, input_fields=...)``, where ``input_fields`` are
    the person-label fields the model trains on (``daaf.modeling.model_input_fields``; e.g.
    {"masks", "keypoints"} for HAB + PAB), which the loader then reads from the label files.
    Returns a DataLoader of ReIDBatch whose ``dataset.num_classes`` is the number of identities.
    """
    sampler = PKSampler([r["pid"] for r in records], total_batch_size, num_instances, seed=seed)
    base_seed = int(sampler.seed) + 7919 * comm.get_rank()
    return ReIDDataLoader(
        MappedDataset(records, mapper),
        batch_sampler=SeededBatchSampler(sampler),
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        worker_init_fn=functools.partial(_worker_init_fn, base_seed=base_seed) if num_workers > 0 else None,
    )


def check_evaluable(name: str, query: List[dict], gallery: List[dict]) -> None:
    """DatasetError naming the test set unless it has queries, a gallery and at least one query
    with a true match under the protocol (the same identity seen by another camera)."""
    if not query or not gallery:
        raise DatasetError(f"{name}: {len(query)} queries and {len(gallery)} gallery images; an evaluation needs both")
    cameras = {}
    for g in gallery:
        cameras.setdefault(g["pid"], set()).add(g["camid"])
    if not any(cameras.get(q["pid"], set()) - {q["camid"]} for q in query):
        raise DatasetError(
            f"{name}: none of its {len(query)} queries has a true match in the gallery (its identity seen by another camera); nothing to evaluate"
        )


def build_reid_test_loader(cfg, dataset_name: str, mapper=None, batch_size: int = None, num_workers: int = None):
    """Loader over query + gallery of ``dataset_name`` (this process's shard) and the query count.
    A DatasetError, before any inference, when no query has a true match the protocol counts."""
    register_custom_datasets(cfg.DATASETS.CUSTOM)
    dataset = get_dataset(dataset_name, cfg.DATASETS.ROOT, splits=("query", "gallery"))  # never its train split
    check_evaluable(dataset_name, dataset.query, dataset.gallery)
    records = [dict(r) for r in dataset.query + dataset.gallery]
    if cfg.DATALOADER.CHECK_IMAGES:  # a test image the model cannot read is refused, never scored blank
        drop_or_refuse_bad_images(
            records, skip=False, what=f"{dataset_name} test images", max_pixels=cfg.INPUT.MAX_IMAGE_PIXELS, skippable=False
        )
    mapper = mapper or ReIDDatasetMapper(cfg, is_train=False)
    loader = ReIDDataLoader(
        MappedDataset(records, mapper),
        batch_size=batch_size or max(cfg.TEST.IMS_PER_BATCH // comm.get_world_size(), 1),
        sampler=InferenceSampler(len(records)),
        num_workers=cfg.DATALOADER.NUM_WORKERS if num_workers is None else num_workers,
    )
    return loader, len(dataset.query)
