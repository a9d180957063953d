"""Market-1501 and DukeMTMC-reID (same folder layout, different file-name patterns)."""

import re

from .bases import DATASET_REGISTRY, ReIDDataset

_MARKET_PATTERN = re.compile(r"^(-?\d+)_c(\d)s\d+_\d+_\d+")
_DUKE_PATTERN = re.compile(r"^(\d+)_c(\d+)_f?\d+")


class _BoundingBoxLayout(ReIDDataset):
    """bounding_box_train / query / bounding_box_test folders."""

    pattern = _MARKET_PATTERN

    def load(self):
        train = self.parse_folder(self.require_dir("bounding_box_train"), self.pattern)
        query = self.parse_folder(self.require_dir("query"), self.pattern)
        gallery = self.parse_folder(self.require_dir("bounding_box_test"), self.pattern)
        return train, query, gallery


@DATASET_REGISTRY.register()
class Market1501(_BoundingBoxLayout):
    """Market-1501: pid -1 (junk) dropped, pid 0 (distractors) kept in the gallery as negatives."""

    dataset_dirs = ("Market-1501-v15.09.15", "Market-1501", "market1501")
    layout_hint = "<root>/Market-1501-v15.09.15/{bounding_box_train,query,bounding_box_test}/0001_c1s1_000151_01.jpg"


@DATASET_REGISTRY.register()
class DukeMTMCreID(_BoundingBoxLayout):
    """DukeMTMC-reID: 702 training ids; 8 cameras."""

    dataset_dirs = ("DukeMTMC-reID", "dukemtmc-reid", "dukemtmcreid")
    pattern = _DUKE_PATTERN
    layout_hint = "<root>/DukeMTMC-reID/{bounding_box_train,query,bounding_box_test}/0001_c2_f0046182.jpg"


@DATASET_REGISTRY.register()
class SyntheticPersons(_BoundingBoxLayout):
    """The procedurally drawn persons of ``daaf.data.synthetic`` (Market-1501 layout and naming).

    Generate with ``python datasets/prepare_synthetic.py``.
    """

    dataset_dirs = ("SyntheticPersons",)
    layout_hint = "<root>/SyntheticPersons/{bounding_box_train,query,bounding_box_test} (run: python datasets/prepare_synthetic.py)"
