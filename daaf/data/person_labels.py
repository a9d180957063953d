"""Person labels: the label-file format, its keypoint names, skeleton and left/right flip, and
attaching labels to dataset records.

One file per dataset split (``<labels dir>/<Dataset>_{train,query,gallery}.json``), COCO JSON, so
pycocotools' ``COCO(path)`` loads it; pseudo-labels (the labelers of ``daaf.pseudo_label``) and
ground truth (the synthetic persons) share it::

    {"info": {"labeler", "labeler_config", "weights", "daaf_version", "dataset", "created"},
     "categories": [{"id": 1, "name": "person", "keypoints": [17 COCO names], "skeleton": [...]}],
     "images": [{"id", "file_name" (relative to the dataset's own folder), "height", "width"}],
     "annotations": [{"id", "image_id", "category_id": 1, "iscrowd": 0, "bbox": [x, y, w, h],
                      "area", "score", "segmentation": {"size": [h, w], "counts": compressed RLE},
                      "keypoints": [x1, y1, v1, ... x17, y17, v17], "keypoint_scores": [17]}]}

Coordinates are in the crop's own pixels. v = 2 for a keypoint whose score passes the labeler's
threshold, else 0; ground truth uses 2 visible, 1 occluded but known, 0 outside the crop. At most
one annotation per image (THE person of the crop); an image the labeler found nobody in is listed
in "images" without one. Files are written atomically.
"""

import json
import os
from datetime import datetime, timezone
from typing import Dict, List, Optional

import numpy as np
from pycocotools import mask as mask_utils

from daaf import __version__
from daaf.utils.errors import DatasetError
from daaf.utils.file_io import PathManager, atomic_write

from .datasets import resolve_datasets_root

__all__ = [
    "COCO_KEYPOINT_NAMES",
    "COCO_SKELETON",
    "COCO_KEYPOINT_FLIP_MAP",
    "KEYPOINT_FLIP_INDICES",
    "NUM_KEYPOINTS",
    "encode_mask",
    "decode_mask",
    "make_annotation",
    "write_label_file",
    "load_label_file",
    "label_file_path",
    "resolve_labels_dir",
    "person_label",
    "attach_labels",
]

COCO_KEYPOINT_NAMES = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
]  # fmt: skip
# 1-based pairs, as in the COCO annotation files.
COCO_SKELETON = [
    [16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9],
    [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7],
]  # fmt: skip
COCO_KEYPOINT_FLIP_MAP = [(1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)]
NUM_KEYPOINTS = len(COCO_KEYPOINT_NAMES)


def _flip_indices() -> np.ndarray:
    indices = list(range(17))
    for a, b in COCO_KEYPOINT_FLIP_MAP:
        indices[a], indices[b] = b, a
    return np.asarray(indices, dtype=np.intp)


# keypoints[:, KEYPOINT_FLIP_INDICES] relabels left <-> right after a horizontal flip.
KEYPOINT_FLIP_INDICES = _flip_indices()


def encode_mask(mask: np.ndarray) -> dict:
    """(H, W) bool/uint8 mask -> COCO compressed RLE {"size": [h, w], "counts": str}."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def decode_mask(rle: dict) -> np.ndarray:
    """COCO RLE (compressed str/bytes counts) -> (H, W) uint8 mask of 0/1."""
    counts = rle["counts"]
    rle = {"size": rle["size"], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    return np.ascontiguousarray(mask_utils.decode(rle))


def make_annotation(mask: np.ndarray, keypoints: np.ndarray, keypoint_scores=None, score: float = 1.0, box=None) -> dict:
    """Build one person annotation (without ids) from a (H, W) mask and (17, 3) [x, y, v] keypoints.

    ``box``: the detection's [x0, y0, x1, y1]; None takes the mask's bounding box (ground truth).
    """
    keypoints = np.asarray(keypoints, dtype=np.float64).reshape(17, 3)
    ys, xs = np.nonzero(mask)
    if box is not None:
        x0, y0, x1, y1 = (float(v) for v in box)
        bbox = [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)]
    elif len(xs):
        bbox = [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]
    else:
        bbox = [0.0, 0.0, 0.0, 0.0]
    if keypoint_scores is None:
        keypoint_scores = (keypoints[:, 2] > 0).astype(float)
    return {
        "category_id": 1,
        "iscrowd": 0,
        "bbox": bbox,
        "area": float(mask.astype(bool).sum()),
        "score": float(score),
        "segmentation": encode_mask(mask),
        "keypoints": [round(float(v), 2) for v in keypoints.reshape(-1)],
        "num_keypoints": int((keypoints[:, 2] > 0).sum()),
        "keypoint_scores": [round(float(s), 4) for s in keypoint_scores],
    }


def write_label_file(
    path: str,
    images: List[dict],
    annotations: Dict[int, Optional[dict]],
    *,
    labeler: str,
    dataset: str,
    labeler_config: dict = None,
    weights: str = None,
) -> None:
    """Write a label file atomically.

    Args:
        images: [{"id", "file_name" (relative to the dataset root), "height", "width"}].
        annotations: image id -> annotation from :func:`make_annotation`, or None (nobody found).
    """
    anns = []
    for image in images:
        ann = annotations.get(image["id"])
        if ann is not None:
            anns.append({**ann, "id": len(anns) + 1, "image_id": image["id"]})
    content = {
        "info": {
            "labeler": labeler,
            "labeler_config": labeler_config or {},
            "weights": weights,
            "daaf_version": __version__,
            "dataset": dataset,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
        "categories": [{"id": 1, "name": "person", "supercategory": "person", "keypoints": COCO_KEYPOINT_NAMES, "skeleton": COCO_SKELETON}],
        "images": images,
        "annotations": anns,
    }
    with atomic_write(path, "w") as f:
        json.dump(content, f)


def load_label_file(path: str) -> Dict[str, Optional[dict]]:
    """Read a label file -> {file_name: annotation or None (image listed, nobody found)}.

    Raises DatasetError (one line naming the file) when it is missing, not JSON, or malformed.
    """
    if not PathManager.isfile(path):
        raise DatasetError(f"label file not found: {path}")
    try:
        with PathManager.open(path, "r") as f:
            content = json.load(f)
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}: not a valid JSON label file ({e})") from None
    if not isinstance(content, dict):
        raise DatasetError(
            f"{path}: expected a COCO label file (a JSON object with 'images' and 'annotations'), got a JSON {type(content).__name__}"
        )
    for key in ("images", "annotations"):
        if not isinstance(content.get(key), list):
            raise DatasetError(f"{path}: expected a COCO label file with an '{key}' list")
    by_id = {}
    for image in content["images"]:
        if "id" not in image or "file_name" not in image:
            raise DatasetError(f"{path}: every entry of 'images' needs 'id' and 'file_name', got {image}")
        by_id[image["id"]] = image["file_name"]
    result = {name: None for name in by_id.values()}
    for ann in content["annotations"]:
        name = by_id.get(ann.get("image_id"))
        if name is None:
            raise DatasetError(f"{path}: annotation {ann.get('id')} refers to unknown image_id {ann.get('image_id')}")
        if len(ann.get("keypoints", [])) != 51 or "segmentation" not in ann:
            raise DatasetError(f"{path}: annotation {ann.get('id')} needs 'segmentation' and 51 keypoint values")
        if result[name] is not None:
            raise DatasetError(f"{path}: image {name} has more than one person annotation")
        result[name] = ann
    return result


def label_file_path(labels_dir: str, dataset_name: str, split: str) -> str:
    """Where the label file of ``dataset_name``'s ``split`` (train / query / gallery) lives."""
    return os.path.join(labels_dir, f"{dataset_name}_{split}.json")


def resolve_labels_dir(cfg) -> str:
    """Where the label files are: <datasets root>/daaf_labels when DATASETS.LABELS_DIR is empty,
    <datasets root>/LABELS_DIR when it is relative (as dataset folders are), else LABELS_DIR."""
    # os.path.join keeps an absolute LABELS_DIR as it is
    return os.path.join(resolve_datasets_root(cfg.DATASETS.ROOT), cfg.DATASETS.LABELS_DIR or "daaf_labels")


def person_label(annotation: Optional[dict]) -> Optional[dict]:
    """A label-file annotation in the form a dataset record keeps: {"segmentation": the COCO RLE
    with bytes counts, ready for :func:`decode_mask`, "keypoints": (17, 3) float32 [x, y, v]}
    (a few hundred bytes per crop); None (the labeler found nobody) stays None."""
    if annotation is None:
        return None
    rle = annotation["segmentation"]
    counts = rle["counts"]
    return {
        "segmentation": {"size": list(rle["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts},
        "keypoints": np.asarray(annotation["keypoints"], dtype=np.float32).reshape(NUM_KEYPOINTS, 3),
    }


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
