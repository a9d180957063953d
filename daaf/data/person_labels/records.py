"""Attaching person labels to dataset records: the form a record keeps a crop's label in."""

from typing import List, Optional

from daaf.utils.errors import DatasetError
from daaf.utils.file_io import PathManager

from .keypoints import parse_keypoints
from .label_file import load_label_file

__all__ = ["person_label", "attach_labels"]


def person_label(annotation: Optional[dict]) -> Optional[dict]:
    """A (validated) label-file annotation in the form a dataset record keeps: {"segmentation": the
    compressed RLE as the file holds it, for :func:`decode_mask`, "keypoints": (17, 3) float32
    [x, y, v]} (a few hundred bytes per crop); None (the labeler found nobody) stays None."""
    if annotation is None:
        return None
    rle = annotation["segmentation"]
    return {"segmentation": {"size": list(rle["size"]), "counts": rle["counts"]}, "keypoints": parse_keypoints(annotation["keypoints"])}


def attach_labels(records: List[dict], label_file: str) -> None:
    """Give each record (with "relpath") its person label from ``label_file`` as
    record["person_label"] (see :func:`person_label`; None where the labeler found nobody).

    Raises DatasetError saying how many records have no entry, listing the first few.
    """
    if not PathManager.isfile(label_file):
        raise DatasetError(
            f"label file not found: {label_file}; make it with: python tools/train_net.py --config-file <your config> --pseudo-label"
        )
    labels = load_label_file(label_file)
    missing = [r["relpath"] for r in records if r["relpath"] not in labels]
    if missing:
        raise DatasetError(
            f"{label_file} lacks entries for {len(missing)} of {len(records)} images, e.g. {missing[:3]}; "
            "re-run the labeler (tools/train_net.py --pseudo-label)"
        )
    for r in records:
        r["person_label"] = person_label(labels[r["relpath"]])
