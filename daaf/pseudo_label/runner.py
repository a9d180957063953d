"""The labelling job of ``tools/train_net.py --pseudo-label``: every target of a config
(``targets.py``) labelled in turn (``labelling.py``), with one summary table at the end."""

import logging
from typing import Dict

from daaf.utils import comm
from daaf.utils.file_io import PathManager

from .build import PersonLabeler, build_pseudo_labeler
from .labelling import label_records
from .summary import format_summary, summarize_label_file
from .targets import labeling_targets

__all__ = ["pseudo_label_from_config", "label_targets"]

logger = logging.getLogger(__name__)


def pseudo_label_from_config(cfg) -> Dict[str, dict]:
    """``tools/train_net.py --pseudo-label``: label PSEUDO_LABEL.SPLITS of every dataset in
    DATASETS.TRAIN and DATASETS.TEST with PSEUDO_LABEL.NAME. Returns {dataset_split: summary}
    in the main process."""
    targets = labeling_targets(cfg)
    if not cfg.PSEUDO_LABEL.OVERWRITE and all(PathManager.isfile(t[3]) for t in targets):
        logger.info("Every label file exists; nothing to do (PSEUDO_LABEL.OVERWRITE True recomputes them)")
        return {f"{n}_{s}": summarize_label_file(p) for n, s, _, p in targets} if comm.is_main_process() else {}
    return label_targets(cfg, build_pseudo_labeler(cfg), targets)


def label_targets(cfg, labeler: PersonLabeler, targets) -> Dict[str, dict]:
    """Label each of ``targets`` (from ``labeling_targets``) with ``labeler`` and the config's
    PSEUDO_LABEL settings; {dataset_split: summary} in the main process."""
    summaries = {}
    for name, split, records, path in targets:
        summary = label_records(
            labeler,
            records,
            path,
            labeler_name=cfg.PSEUDO_LABEL.NAME,
            dataset=f"{name}_{split}",
            batch_size=cfg.PSEUDO_LABEL.BATCH_SIZE,
            num_workers=cfg.DATALOADER.NUM_WORKERS,
            overwrite=cfg.PSEUDO_LABEL.OVERWRITE,
        )
        if summary is not None:
            summaries[f"{name}_{split}"] = summary
    if summaries:
        logger.info("Pseudo-labelling summary:\n" + format_summary(summaries))
    return summaries
