"""Partial-REID and Partial-iLIDS (Zheng et al., ICCV 2015; Partial-iLIDS is cut from i-LIDS):
test-only partial-body datasets."""

import os
import re

from daaf.utils.errors import DatasetError
from daaf.utils.file_io import PathManager

from .bases import DATASET_REGISTRY, IMAGE_EXTENSIONS, ReIDDataset

__all__ = ["PartialDataset", "PartialREID", "PartialiLIDS"]


class PartialDataset(ReIDDataset):
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
class PartialREID(PartialDataset):
    """Partial-REID: 60 ids, 300 partial queries vs 300 whole-body gallery images."""

    dataset_dirs = ("Partial-REID_Dataset", "Partial_REID", "PartialREID")
    query_dir, gallery_dir = "partial_body_images", "whole_body_images"
    layout_hint = "<root>/Partial-REID_Dataset/{partial_body_images,whole_body_images}/PPP_NN.jpg"


@DATASET_REGISTRY.register()
class PartialiLIDS(PartialDataset):
    """Partial-iLIDS: 119 probe vs 119 gallery images."""

    dataset_dirs = ("Partial_iLIDS", "Partial-iLIDS", "PartialiLIDS")
    query_dir, gallery_dir = "Probe", "Gallery"
    layout_hint = "<root>/Partial_iLIDS/{Probe,Gallery}/NNN.jpg"
