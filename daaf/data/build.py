"""Training and test data loaders built from the config."""

import functools
import logging
from typing import List, Sequence

from torch.utils.data import DataLoader, Dataset, get_worker_info

from daaf.config import configurable
from daaf.utils import comm
from daaf.utils.env import seed_all_rng
from daaf.utils.errors import ConfigError, DatasetError

from . import transfer
from .batch import PERSON_LABEL_FIELDS, collate_reid_batch
from .datasets import get_dataset, register_custom_datasets
from .mapper import ReIDDatasetMapper
from .person_labels import attach_labels, label_file_path, resolve_labels_dir
from .samplers import InferenceSampler, PKSampler

__all__ = ["MappedDataset", "ReIDDataLoader", "get_train_records", "build_reid_train_loader", "build_reid_test_loader"]

logger = logging.getLogger(__name__)


class MappedDataset(Dataset):
    """A list of records mapped one at a time by ``mapper``. ``num_classes``: training identities."""

    def __init__(self, records: List[dict], mapper):
        self.records = records
        self.mapper = mapper
        self.num_classes = len({r["pid"] for r in records})

    def __len__(self):
        return len(self.records)

    def __getitem__(self, index):
        return self.mapper(self.records[index])


class _EncodeInWorkers:
    """``collate``, then, inside a loader worker, the batch in the form that is cheapest to send
    to the main process (:mod:`daaf.data.transfer`)."""

    def __init__(self, collate):
        self.collate = collate

    def __call__(self, items):
        batch = self.collate(items)
        return transfer.encode(batch) if get_worker_info() is not None else batch


class ReIDDataLoader(DataLoader):
    """A torch DataLoader (same arguments; ``collate_fn`` defaults to :func:`collate_reid_batch`)
    whose workers send batches in a cheaper form (:mod:`daaf.data.transfer`) that the main process
    turns back: it yields exactly the batches of a plain DataLoader, faster (per batch of 64 at
    256x128 about 0.6 ms per small tensor and 1.8 MB of mask copies; benchmarks/bench_loader.py)."""

    def __init__(self, dataset, *, collate_fn=collate_reid_batch, **kwargs):
        super().__init__(dataset, collate_fn=_EncodeInWorkers(collate_fn), **kwargs)

    def __iter__(self):
        for batch in super().__iter__():
            yield transfer.decode(batch)


def get_train_records(dataset_names: Sequence[str], root: str = "", labels_dir: str = None) -> List[dict]:
    """Training records of all datasets with pids relabelled to 0..N-1 (datasets kept apart) and
    camids offset per dataset. With ``labels_dir``, each record gets its person label
    (:func:`attach_labels`)."""
    if not dataset_names:
        raise DatasetError("DATASETS.TRAIN is empty: name at least one registered dataset")
    records, pid_offset, cam_offset = [], 0, 0
    for name in dataset_names:
        dataset = get_dataset(name, root)
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


def _label_fields(input_fields) -> frozenset:
    """The person-label fields among the batch fields a model asks for; ConfigError for a field
    the loader cannot serve."""
    fields = frozenset(input_fields)
    unknown = fields - PERSON_LABEL_FIELDS
    if unknown:
        raise ConfigError(
            f"the model asks for batch fields {sorted(unknown)}, which the ReID loader does not make (it makes {sorted(PERSON_LABEL_FIELDS)})"
        )
    return fields


def _train_loader_from_config(cfg, mapper=None, input_fields=()):
    register_custom_datasets(cfg.DATASETS.CUSTOM)
    label_fields = _label_fields(input_fields)
    labels_dir = resolve_labels_dir(cfg) if label_fields else None
    records = get_train_records(cfg.DATASETS.TRAIN, cfg.DATASETS.ROOT, labels_dir)
    return {
        "records": records,
        "mapper": mapper or ReIDDatasetMapper(cfg, is_train=True, label_fields=label_fields),
        "total_batch_size": cfg.SOLVER.IMS_PER_BATCH,
        "num_instances": cfg.DATALOADER.NUM_INSTANCE,
        "num_workers": cfg.DATALOADER.NUM_WORKERS,
        "seed": cfg.SEED if cfg.SEED >= 0 else None,
    }


@configurable(from_config=_train_loader_from_config)
def build_reid_train_loader(
    *, records, mapper, total_batch_size: int, num_instances: int, num_workers: int = 0, seed=None
) -> ReIDDataLoader:
    """Infinite P x K training loader of this process's share (total_batch_size / world size).

    From a config: ``build_reid_train_loader(cfg, input_fields=...)``, where ``input_fields`` are
    the batch fields the model trains on beyond images and pids (``daaf.modeling.model_input_fields``;
    e.g. {"masks", "keypoints"} for HAB + PAB), which the loader then reads from the label files.
    Returns a DataLoader of ReIDBatch whose ``dataset.num_classes`` is the number of identities.
    """
    world_size = comm.get_world_size()
    sampler = PKSampler([r["pid"] for r in records], total_batch_size, num_instances, seed=seed)
    base_seed = int(sampler.seed) + 7919 * comm.get_rank()
    return ReIDDataLoader(
        MappedDataset(records, mapper),
        batch_size=total_batch_size // world_size,
        sampler=sampler,
        num_workers=num_workers,
        drop_last=True,
        persistent_workers=num_workers > 0,
        worker_init_fn=functools.partial(_worker_init_fn, base_seed=base_seed) if num_workers > 0 else None,
    )


def build_reid_test_loader(cfg, dataset_name: str, mapper=None, batch_size: int = None, num_workers: int = None):
    """Loader over query + gallery of ``dataset_name`` (this process's shard) and the query count."""
    register_custom_datasets(cfg.DATASETS.CUSTOM)
    dataset = get_dataset(dataset_name, cfg.DATASETS.ROOT)
    records = [dict(r) for r in dataset.query + dataset.gallery]
    mapper = mapper or ReIDDatasetMapper(cfg, is_train=False)
    loader = ReIDDataLoader(
        MappedDataset(records, mapper),
        batch_size=batch_size or max(cfg.TEST.IMS_PER_BATCH // comm.get_world_size(), 1),
        sampler=InferenceSampler(len(records)),
        num_workers=cfg.DATALOADER.NUM_WORKERS if num_workers is None else num_workers,
    )
    return loader, len(dataset.query)
