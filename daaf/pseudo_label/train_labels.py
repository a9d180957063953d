"""The check before a training that needs person labels: make the missing training label files,
or stop with the command that makes them."""

import logging
import shlex
from typing import Sequence

from daaf.data import get_dataset
from daaf.data.datasets import register_custom_datasets
from daaf.data.person_labels import label_file_path, resolve_labels_dir
from daaf.utils import comm
from daaf.utils.errors import UserError
from daaf.utils.file_io import PathManager

from .build import build_pseudo_labeler
from .runner import label_targets
from .targets import labeling_targets

__all__ = ["ensure_train_labels"]

logger = logging.getLogger(__name__)


def ensure_train_labels(cfg, config_file: str = "", opts: Sequence[str] = ()) -> None:
    """Before training a model that trains on person labels (DAAF): generate missing training label
    files with PSEUDO_LABEL.NAME (PSEUDO_LABEL.AUTO), or stop with one line naming the command that
    makes them: the training command's ``config_file`` and KEY VALUE ``opts`` with --pseudo-label,
    so the labels land where this config reads them. A missing dataset folder is named first: labels
    are made of the images."""
    register_custom_datasets(cfg.DATASETS.CUSTOM)
    for name in cfg.DATASETS.TRAIN:
        get_dataset(name, cfg.DATASETS.ROOT, log=False)
    labels_dir = resolve_labels_dir(cfg)
    missing = [n for n in cfg.DATASETS.TRAIN if not PathManager.isfile(label_file_path(labels_dir, n, "train"))]
    if not missing:
        return
    first = label_file_path(labels_dir, missing[0], "train")
    command = " ".join(
        ["python tools/train_net.py --config-file", shlex.quote(config_file) if config_file else "<your config>", "--pseudo-label"]
        + [shlex.quote(str(o)) for o in opts]
    )
    if not cfg.PSEUDO_LABEL.AUTO:
        raise UserError(f"label file {first} not found (DAAF branches need person labels); make it with: {command}")
    try:
        labeler = build_pseudo_labeler(cfg)
    except UserError as e:
        raise UserError(
            f"label file {first} not found and no labeler is available to make it ({e}); make the labels where one is, with: {command}"
        ) from None
    if comm.is_main_process():
        logger.info(f"Training labels missing for {missing}; generating them with {cfg.PSEUDO_LABEL.NAME}")
    label_targets(cfg, labeler, labeling_targets(cfg, missing, ["train"]))
