"""MSMT17, Partial-REID, Partial-iLIDS and the synthetic partial split."""

import os
import re

from daaf.utils.errors import DatasetError
from daaf.utils.file_io import PathManager

from .bases import DATASET_REGISTRY, IMAGE_EXTENSIONS, ReIDDataset

__all__ = ["MSMT17", "PartialREID", "PartialiLIDS", "SyntheticPartial"]


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
                    raise DatasetError(f"{path}:{line_no}: expected '<pid>/<pid>_<n>_<camera>_....jpg <pid>', got {line.strip()!r}") from None
                records.append(self.record(os.path.join(folder, relpath), pid, camid))
        return records


class _PartialDataset(ReIDDataset):
    """Test-only partial-body datasets: query = partial crops (camera 0), gallery = whole bodies
    (camera 1), so no same-camera removal applies. Rank-1 and Rank-3 are reported."""

    query_dir = ""
    gallery_dir = ""
    pattern = re.compile(r"^(\d+)")
    report_ranks = (1, 3)

    def load(self):
        return [], self._parse(self.query_dir, 0), self._parse(self.gallery_dir, 1)

    def _parse(self, sub: str, camid: int):
        folder = self.require_dir(*sub.split("/"))
        records = []
        for name in sorted(PathManager.ls(folder)):
            if not name.lower().endswith(IMAGE_EXTENSIONS):
                continue
            match = self.pattern.search(name)
            if match is None:
                raise DatasetError(f"{self.name}: file name {os.path.join(folder, name)} does not match the pattern {self.pattern.pattern}")
            records.append(self.record(os.path.join(folder, name), int(match.group(1)), camid))
        if not records:
            raise DatasetError(f"{self.name}: no images in {folder} (expected layout: {self.layout_hint})")
        return records


@DATASET_REGISTRY.register()
class PartialREID(_PartialDataset):
    """Partial-REID: 60 ids, 300 partial queries vs 300 whole-body gallery images."""

    dataset_dirs = ("Partial-REID_Dataset", "Partial_REID", "PartialREID")
    query_dir, gallery_dir = "partial_body_images", "whole_body_images"
    layout_hint = "<root>/Partial-REID_Dataset/{partial_body_images,whole_body_images}/PPP_NN.jpg"


@DATASET_REGISTRY.register()
class PartialiLIDS(_PartialDataset):
    """Partial-iLIDS: 119 probe vs 119 gallery images."""

    dataset_dirs = ("Partial_iLIDS", "Partial-iLIDS", "PartialiLIDS")
    query_dir, gallery_dir = "Probe", "Gallery"
    layout_hint = "<root>/Partial_iLIDS/{Probe,Gallery}/NNN.jpg"


@DATASET_REGISTRY.register()
class SyntheticPartial(_PartialDataset):
    """The synthetic persons' partial split (upper-body crops vs whole bodies)."""

    dataset_dirs = ("SyntheticPersons",)
    query_dir, gallery_dir = "partial/partial_body_images", "partial/whole_body_images"
    layout_hint = "<root>/SyntheticPersons/partial/{partial_body_images,whole_body_images} (run: python datasets/prepare_synthetic.py)"
