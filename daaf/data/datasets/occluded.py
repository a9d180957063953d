"""The occluded-ReID benchmarks that followed Partial-REID: Occluded-Duke (Miao et al., ICCV 2019)
and Occluded-REID (Zhuo et al., ICME 2018)."""

import os
import re

from daaf.utils.errors import DatasetError

from .bases import DATASET_REGISTRY, IMAGE_EXTENSIONS, BoundingBoxDataset, ReIDDataset
from .dukemtmcreid import DukeMTMCreID

__all__ = ["OccludedDuke", "OccludedREID"]


@DATASET_REGISTRY.register()
class OccludedDuke(BoundingBoxDataset):
    """Occluded-Duke: DukeMTMC-reID re-split so that every query (and 10% of the gallery) is
    occluded: 702 training ids (15,618 images), 2,210 queries, 17,661 gallery images, 8 cameras.
    Its authors' script converts DukeMTMC-reID into this layout (Duke's file names)."""

    dataset_dirs = ("Occluded_Duke", "Occluded-DukeMTMC", "OccludedDuke")
    pattern = DukeMTMCreID.pattern
    layout_hint = "<root>/Occluded_Duke/{bounding_box_train,query,bounding_box_test}/0001_c2_f0046182.jpg"


@DATASET_REGISTRY.register()
class OccludedREID(ReIDDataset):
    """Occluded-REID: 200 identities, 1,000 occluded queries (camera 0) vs 1,000 whole-body
    gallery images (camera 1); test only (train on Market-1501, as the literature does). Images
    are in one folder per identity (``001/001_01.tif``) or directly in the split folder; the
    identity is the file name's leading number."""

    dataset_dirs = ("Occluded_REID", "Occluded-REID", "OccludedREID")
    layout_hint = "<root>/Occluded_REID/{occluded_body_images,whole_body_images}/001/001_01.tif"
    _pattern = re.compile(r"^(\d+)")

    def load(self):
        return [], self._parse("occluded_body_images", 0), self._parse("whole_body_images", 1)

    def _parse(self, split: str, camid: int):
        folder = self.require_dir(split)
        records = []
        for directory, _, files in sorted(os.walk(folder)):
            for name in sorted(files):
                if not name.lower().endswith(IMAGE_EXTENSIONS):
                    continue
                match = self._pattern.search(name)
                path = os.path.join(directory, name)
                if match is None:
                    raise DatasetError(f"{self.name}: file name {path} does not start with the identity's number")
                records.append(self.record(path, int(match.group(1)), camid))
        if not records:
            raise DatasetError(f"{self.name}: no images in {folder} (expected layout: {self.layout_hint})")
        return records
