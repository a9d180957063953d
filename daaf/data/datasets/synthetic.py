"""The synthetic persons of ``daaf.data.synthetic`` as datasets: the Market-1501-style splits and
the partial split."""

from .bases import DATASET_REGISTRY, BoundingBoxDataset
from .market1501 import Market1501
from .partial import PartialDataset

__all__ = ["SyntheticPersons", "SyntheticPartial"]


@DATASET_REGISTRY.register()
class SyntheticPersons(BoundingBoxDataset):
    """The procedurally drawn persons of ``daaf.data.synthetic`` (Market-1501 layout and naming).

    Generate with ``python datasets/prepare_synthetic.py``.
    """

    dataset_dirs = ("SyntheticPersons",)
    pattern = Market1501.pattern
    layout_hint = "<root>/SyntheticPersons/{bounding_box_train,query,bounding_box_test} (run: python datasets/prepare_synthetic.py)"


@DATASET_REGISTRY.register()
class SyntheticPartial(PartialDataset):
    """The synthetic persons' partial split (upper-body crops vs whole bodies)."""

    dataset_dirs = ("SyntheticPersons",)
    query_dir, gallery_dir = "partial/partial_body_images", "partial/whole_body_images"
    layout_hint = "<root>/SyntheticPersons/partial/{partial_body_images,whole_body_images} (run: python datasets/prepare_synthetic.py)"
