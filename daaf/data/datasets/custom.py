"""Your own data, with one function call or one config entry.

A custom dataset is a folder with query and gallery (and optionally train) splits, either as

* CSV files ``train.csv``, ``query.csv``, ``gallery.csv`` with a header row and the columns
  ``path`` (relative to the folder), ``pid`` and optionally ``camid``; or
* sub-folders ``train/``, ``query/``, ``gallery/`` holding one folder per identity
  (``query/0007/any_name.jpg``); a camera is read from a ``c<number>`` in the file name if there is one.

Without camera ids, queries get camera 0 and gallery images camera 1, so the protocol's
same-camera removal never hides a true match.

    from daaf.data.datasets import register_custom_dataset
    register_custom_dataset("MyShop", "/data/myshop")        # then DATASETS.TEST ("MyShop",)

or in YAML: ``DATASETS: {CUSTOM: ["MyShop=/data/myshop"], TEST: ("MyShop",)}``.
"""

import csv
import os
import re
from typing import Sequence

from daaf.utils.errors import ConfigError, DatasetError
from daaf.utils.file_io import PathManager

from .bases import DATASET_REGISTRY, IMAGE_EXTENSIONS, ReIDDataset

__all__ = ["CustomDataset", "register_custom_dataset", "register_custom_datasets"]

_CAMERA = re.compile(r"c(\d+)")
_DEFAULT_CAMERA = {"train": 0, "query": 0, "gallery": 1}


class CustomDataset(ReIDDataset):
    """A folder of CSV files or identity sub-folders (see the module docstring)."""

    layout_hint = "<folder>/{train,query,gallery}.csv (path,pid[,camid]) or <folder>/{train,query,gallery}/<pid>/<images>"

    def load_split(self, split: str):
        optional = split == "train"
        csv_path = os.path.join(self.dataset_dir, f"{split}.csv")
        if PathManager.isfile(csv_path):
            return self._from_csv(csv_path, split)
        folder = os.path.join(self.dataset_dir, split)
        if PathManager.isdir(folder):
            return self._from_folders(folder, split)
        if optional:
            return []
        raise DatasetError(f"{self.name}: neither {csv_path} nor {folder} exists (expected layout: {self.layout_hint})")

    def _from_csv(self, path: str, split: str):
        records = []
        with PathManager.open(path, "r") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not {"path", "pid"} <= set(reader.fieldnames):
                raise DatasetError(f"{path}: expected a header with the columns path,pid[,camid], got {reader.fieldnames}")
            for line_no, row in enumerate(reader, 2):
                try:
                    pid = int(row["pid"])
                    camid = int(row["camid"]) if row.get("camid") not in (None, "") else _DEFAULT_CAMERA[split]
                except ValueError:
                    raise DatasetError(f"{path}:{line_no}: pid and camid must be integers, got {row}") from None
                records.append(self.record(os.path.join(self.dataset_dir, row["path"]), pid, camid))
        if not records:
            raise DatasetError(f"{path}: no rows")
        return records

    def _from_folders(self, folder: str, split: str):
        records = []
        for pid_name in sorted(PathManager.ls(folder)):
            pid_dir = os.path.join(folder, pid_name)
            if not PathManager.isdir(pid_dir):
                continue
            if not pid_name.lstrip("-").isdigit():
                raise DatasetError(f"{self.name}: identity folder {pid_dir} must be named by an integer pid")
            for name in sorted(PathManager.ls(pid_dir)):
                if name.lower().endswith(IMAGE_EXTENSIONS):
                    camera = _CAMERA.search(name)
                    camid = int(camera.group(1)) if camera else _DEFAULT_CAMERA[split]
                    records.append(self.record(os.path.join(pid_dir, name), int(pid_name), camid))
        if not records:
            raise DatasetError(f"{self.name}: no images under {folder} (expected layout: {self.layout_hint})")
        return records


def register_custom_dataset(name: str, path: str) -> type:
    """Register the folder ``path`` (absolute, or relative to the datasets root) as ``name``."""
    existing = DATASET_REGISTRY.get(name) if name in DATASET_REGISTRY else None
    if existing is not None:
        if getattr(existing, "dataset_dirs", None) == (path,):
            return existing
        raise ConfigError(f"DATASETS.CUSTOM: the name '{name}' is already registered")
    cls = type(name, (CustomDataset,), {"dataset_dirs": (path,), "__doc__": f"Custom dataset at {path}."})
    DATASET_REGISTRY.register(cls)
    return cls


def register_custom_datasets(entries: Sequence[str]) -> None:
    """Register every "Name=path" entry of DATASETS.CUSTOM."""
    for entry in entries:
        name, sep, path = entry.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise ConfigError(f"DATASETS.CUSTOM: expected 'Name=path', got '{entry}'")
        register_custom_dataset(name.strip(), path.strip())
