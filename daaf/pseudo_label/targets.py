"""Which label files a labelling run makes: the datasets and splits of a config."""

from typing import List, Sequence

from daaf.data import get_dataset
from daaf.data.datasets import register_custom_datasets
from daaf.data.person_labels import label_file_path, resolve_labels_dir
from daaf.utils import comm
from daaf.utils.errors import UserError

__all__ = ["SPLITS", "labeling_targets"]

SPLITS = ("train", "query", "gallery")


def labeling_targets(cfg, dataset_names: Sequence[str] = None, splits: Sequence[str] = None) -> List[tuple]:
    """[(dataset name, split, records, label file path)] for the datasets (default: DATASETS.TRAIN
    then DATASETS.TEST, each once) and splits (default PSEUDO_LABEL.SPLITS); empty splits skipped."""
    register_custom_datasets(cfg.DATASETS.CUSTOM)
    names = list(dict.fromkeys(dataset_names if dataset_names is not None else [*cfg.DATASETS.TRAIN, *cfg.DATASETS.TEST]))
    splits = list(splits if splits is not None else cfg.PSEUDO_LABEL.SPLITS)
    bad = [s for s in splits if s not in SPLITS]
    if bad:
        raise UserError(f"PSEUDO_LABEL.SPLITS: {bad} are not splits; expected a subset of {list(SPLITS)}")
    if not names:
        raise UserError("--pseudo-label: the config names no dataset in DATASETS.TRAIN or DATASETS.TEST")
    labels_dir = resolve_labels_dir(cfg)
    targets = []
    for name in names:
        dataset = get_dataset(name, cfg.DATASETS.ROOT, log=comm.is_main_process())
        for split in splits:
            records = getattr(dataset, split)
            if records:
                targets.append((name, split, records, label_file_path(labels_dir, name, split)))
    return targets
