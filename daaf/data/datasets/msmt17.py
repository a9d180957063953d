"""MSMT17 (Wei et al., CVPR 2018), V1 or V2."""

import os

from daaf.utils.errors import DatasetError
from daaf.utils.file_io import PathManager

from .bases import DATASET_REGISTRY, ReIDDataset

__all__ = ["MSMT17"]


@DATASET_REGISTRY.register()
class MSMT17(ReIDDataset):
    """MSMT17 (V1 or V2): list files ``list_{train,val,query,gallery}.txt`` with "path pid" lines;
    the camera is the third field of the file name (0000_000_01_...). Train = train + val."""

    dataset_dirs = ("MSMT17_V1", "MSMT17_V2", "MSMT17", "msmt17")
    layout_hint = "<root>/MSMT17_V1/{train,test}/<pid>/<images> + list_{train,val,query,gallery}.txt"

    def load(self):
        train_dir = next((d for d in ("train", "mask_train_v2") if PathManager.isdir(os.path.join(self.dataset_dir, d))), "train")
        test_dir = next((d for d in ("test", "mask_test_v2") if PathManager.isdir(os.path.join(self.dataset_dir, d))), "test")
        train = self._read_list("list_train.txt", train_dir) + self._read_list("list_val.txt", train_dir, optional=True)
        return train, self._read_list("list_query.txt", test_dir), self._read_list("list_gallery.txt", test_dir)

    def _read_list(self, list_name: str, image_dir: str, optional: bool = False):
        path = os.path.join(self.dataset_dir, list_name)
        if not PathManager.isfile(path):
            if optional:
                return []
            raise DatasetError(f"{self.name}: list file not found: {path} (expected layout: {self.layout_hint})")
        folder = self.require_dir(image_dir)
        records = []
        with PathManager.open(path, "r") as f:
            for line_no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                parts = line.split()
                try:
                    relpath, pid = parts[0], int(parts[1])
                    camid = int(os.path.basename(relpath).split("_")[2]) - 1
                except (IndexError, ValueError):
                    raise DatasetError(
                        f"{path}:{line_no}: expected '<pid>/<pid>_<n>_<camera>_....jpg <pid>', got {line.strip()!r}"
                    ) from None
                records.append(self.record(os.path.join(folder, relpath), pid, camid))
        return records
