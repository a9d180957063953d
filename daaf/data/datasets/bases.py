"""DATASET_REGISTRY, the ReIDDataset base class and the dataset-root resolution."""

import logging
import os
import re
from typing import List, Sequence

from daaf.utils.errors import DatasetError
from daaf.utils.file_io import PathManager
from daaf.utils.registry import Registry, get_from_registry

__all__ = [
    "DATASET_REGISTRY",
    "ReIDDataset",
    "BoundingBoxDataset",
    "get_dataset",
    "dataset_report_ranks",
    "resolve_datasets_root",
    "IMAGE_EXTENSIONS",
    "SPLITS",
]

logger = logging.getLogger(__name__)

DATASET_REGISTRY = Registry("DATASET")
DATASET_REGISTRY.__doc__ = """
ReID datasets by name (DATASETS.TRAIN / DATASETS.TEST entries): ``cls(root: str)`` -> ReIDDataset
with ``train``, ``query`` and ``gallery`` lists of records
{"file_name": absolute path, "relpath": path under dataset_dir, "pid": int, "camid": int}.
"""

SPLITS = ("train", "query", "gallery")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


def resolve_datasets_root(cfg_root: str = "") -> str:
    """DATASETS.ROOT if set, else $DAAF_DATASETS, else ./datasets."""
    return os.path.expanduser(cfg_root or os.environ.get("DAAF_DATASETS", "") or "datasets")


class ReIDDataset:
    """A ReID dataset: a training split and a (query, gallery) test pair.

    Subclasses set ``dataset_dirs`` (folder names under the root the dataset is distributed
    under; the first that exists is used) and implement either ``load_split(split)`` (one split's
    records, read on first use, so that an evaluation never reads the training split) or ``load()``
    returning (train, query, gallery) record lists at once. Records hold the ORIGINAL pids; the
    training loader relabels them.
    """

    dataset_dirs = ("",)
    layout_hint = ""
    report_ranks = (1, 5, 10)  # the CMC ranks its results are reported at

    def __init__(self, root: str = ""):
        self.root = resolve_datasets_root(root)
        candidates = [os.path.join(self.root, d) for d in self.dataset_dirs]
        self.dataset_dir = next((c for c in candidates if PathManager.isdir(c)), candidates[0])
        if not PathManager.isdir(self.dataset_dir):
            raise DatasetError(f"{type(self).__name__}: dataset folder not found: {self.dataset_dir} (expected layout: {self.layout_hint})")
        self._records = {}

    @property
    def name(self) -> str:
        return type(self).__name__

    def records(self, split: str) -> List[dict]:
        """The records of ``split`` (one of SPLITS), read on first use."""
        if split not in SPLITS:
            raise ValueError(f"unknown split '{split}' (expected one of {', '.join(SPLITS)})")
        if split not in self._records:
            self._records[split] = self.load_split(split)
        return self._records[split]

    train = property(lambda self: self.records("train"), doc="The training split's records ([] for a test-only dataset).")
    query = property(lambda self: self.records("query"), doc="The query split's records.")
    gallery = property(lambda self: self.records("gallery"), doc="The gallery split's records.")

    def load_split(self, split: str) -> List[dict]:
        """One split's records; by default all three from :meth:`load`."""
        self._records.update(zip(SPLITS, self.load()))
        return self._records[split]

    def load(self):
        """(train, query, gallery) record lists, for a dataset that reads them together."""
        raise NotImplementedError

    def require_dir(self, *parts: str) -> str:
        """The path ``dataset_dir/parts``; DatasetError naming it and the layout when missing."""
        path = os.path.join(self.dataset_dir, *parts)
        if not PathManager.isdir(path):
            raise DatasetError(f"{self.name}: split folder not found: {path} (expected layout: {self.layout_hint})")
        return path

    def record(self, path: str, pid: int, camid: int) -> dict:
        return {"file_name": path, "relpath": os.path.relpath(path, self.dataset_dir), "pid": int(pid), "camid": int(camid)}

    def parse_folder(self, folder: str, pattern: re.Pattern, *, drop_pids=(-1,), cam_offset: int = 1) -> List[dict]:
        """Records for every image in ``folder`` whose name matches ``pattern`` with groups (pid, cam).

        Images whose pid is in ``drop_pids`` (junk) are skipped. A name that does not match
        raises DatasetError naming the file and the pattern. Camera ids become 0-based.
        """
        records = []
        for name in sorted(PathManager.ls(folder)):
            if not name.lower().endswith(IMAGE_EXTENSIONS):
                continue
            match = pattern.search(name)
            if match is None:
                raise DatasetError(f"{self.name}: file name {os.path.join(folder, name)} does not match the pattern {pattern.pattern}")
            pid, cam = int(match.group(1)), int(match.group(2))
            if pid in drop_pids:
                continue
            records.append(self.record(os.path.join(folder, name), pid, cam - cam_offset))
        if not records:
            raise DatasetError(f"{self.name}: no images in {folder} (expected layout: {self.layout_hint})")
        return records

    def summary(self, splits: Sequence[str] = SPLITS) -> str:
        """A table of identities, images and cameras of each of ``splits``."""
        rows = [(split, self.records(split)) for split in splits]
        lines = [
            f"Dataset {self.name} ({self.dataset_dir})",
            f"  {'split':<8} | {'# ids':>6} | {'# images':>8} | {'# cameras':>9}",
            "  " + "-" * 41,
        ]
        for split, records in rows:
            ids = len({r["pid"] for r in records})
            cams = len({r["camid"] for r in records})
            lines.append(f"  {split:<8} | {ids:>6} | {len(records):>8} | {cams:>9}")
        return "\n".join(lines)


class BoundingBoxDataset(ReIDDataset):
    """The Market-1501 folder layout: bounding_box_train / query / bounding_box_test, with the pid
    and the camera in each file name (groups 1 and 2 of ``pattern``)."""

    pattern: re.Pattern = None

    split_folders = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}

    def load_split(self, split: str) -> List[dict]:
        return self.parse_folder(self.require_dir(self.split_folders[split]), self.pattern)


def get_dataset(name: str, root: str = "", log: bool = True, splits: Sequence[str] = SPLITS) -> ReIDDataset:
    """Instantiate a registered dataset and, with ``log``, read ``splits`` and log their summary table."""
    dataset = get_from_registry(DATASET_REGISTRY, name, "DATASETS")(root)
    if log:
        logger.info("\n" + dataset.summary(splits))
    return dataset


def dataset_report_ranks(name: str):
    """The CMC ranks the results of registered dataset ``name`` are reported at: (1, 5, 10), or
    what the dataset's protocol asks for (Partial-REID / Partial-iLIDS: 1 and 3)."""
    return tuple(getattr(get_from_registry(DATASET_REGISTRY, name, "DATASETS.TEST"), "report_ranks", (1, 5, 10)))
