"""The person-label file: its format, writing it atomically, reading and validating it.

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

from daaf import __version__
from daaf.utils.errors import DatasetError
from daaf.utils.file_io import PathManager, atomic_write

from ..datasets import resolve_datasets_root
from .keypoints import COCO_KEYPOINT_NAMES, COCO_SKELETON, NUM_KEYPOINTS, parse_keypoints
from .rle import check_rle, encode_mask

__all__ = ["make_annotation", "write_label_file", "load_label_file", "label_file_path", "resolve_labels_dir"]


def make_annotation(mask: np.ndarray, keypoints: np.ndarray, keypoint_scores=None, score: float = 1.0, box=None) -> dict:
    """Build one person annotation (without ids) from a (H, W) mask and (NUM_KEYPOINTS, 3) [x, y, v] keypoints.

    ``box``: the detection's [x0, y0, x1, y1]; None takes the mask's bounding box (ground truth).
    """
    keypoints = np.asarray(keypoints, dtype=np.float64).reshape(NUM_KEYPOINTS, 3)
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
    """Read and validate a label file -> {file_name: annotation or None (image listed, nobody found)}.

    Every entry is checked before any is used: the structure and its types, a compressed RLE mask
    of the image's listed size whose runs cover it exactly, 17 finite keypoints with visibility in
    {0, 1, 2}. A DatasetError names the file, the first bad entry (its file name, else its id) and
    the field, in one line.
    """
    if not PathManager.isfile(path):
        raise DatasetError(f"label file not found: {path}")
    try:
        with PathManager.open(path, "r") as f:
            content = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: not a valid JSON label file ({e})") from None
    if not isinstance(content, dict):
        raise DatasetError(
            f"{path}: expected a COCO label file (a JSON object with 'images' and 'annotations'), got a JSON {type(content).__name__}"
        )
    for key in ("images", "annotations"):
        if not isinstance(content.get(key), list):
            raise DatasetError(f"{path}: expected a COCO label file with an '{key}' list")
    images = {}
    for index, image in enumerate(content["images"]):
        images.update(_checked_image(path, index, image, images))
    result = {image["file_name"]: None for image in images.values()}
    for index, ann in enumerate(content["annotations"]):
        image = images.get(ann.get("image_id")) if isinstance(ann, dict) else None
        if image is None:
            where = f"annotation {ann.get('id')}" if isinstance(ann, dict) else f"annotations[{index}]"
            found = ann.get("image_id") if isinstance(ann, dict) else type(ann).__name__
            raise DatasetError(f"{path}: {where}: image_id {found!r} is not the id of an entry of 'images'")
        name = image["file_name"]
        if result[name] is not None:
            raise DatasetError(f"{path}: image {name}: more than one person annotation")
        _check_annotation(path, name, ann, (image["height"], image["width"]))
        result[name] = ann
    return result


def _checked_image(path: str, index: int, image, seen: dict) -> dict:
    """{id: image} for one entry of 'images', checked (DatasetError naming it and the field)."""
    if not isinstance(image, dict):
        raise DatasetError(f"{path}: images[{index}]: expected an object with id, file_name, height, width, got {type(image).__name__}")
    where = f"images[{index}] ({image['file_name']})" if isinstance(image.get("file_name"), str) else f"images[{index}]"
    if not isinstance(image.get("file_name"), str) or not image["file_name"]:
        raise DatasetError(f"{path}: {where}: file_name: expected a non-empty string, got {image.get('file_name')!r}")
    for field in ("id", "height", "width"):
        value = image.get(field)
        if not isinstance(value, int) or isinstance(value, bool) or (field != "id" and value <= 0):
            expected = "an integer" if field == "id" else "a positive integer"
            raise DatasetError(f"{path}: {where}: {field}: expected {expected}, got {value!r}")
    if image["id"] in seen:
        raise DatasetError(f"{path}: {where}: id {image['id']} is also the id of {seen[image['id']]['file_name']}")
    return {image["id"]: image}


def _check_annotation(path: str, name: str, ann: dict, image_size: tuple) -> None:
    """DatasetError naming the file, the image and the field of the first problem of ``ann``."""
    for field, check in (("segmentation", check_rle), ("keypoints", parse_keypoints)):
        if field not in ann:
            raise DatasetError(f"{path}: image {name}: the annotation has no '{field}'")
        try:
            value = check(ann[field])
        except ValueError as e:
            raise DatasetError(f"{path}: image {name}: {field}: {e}") from None
        if field == "segmentation" and value != image_size:
            raise DatasetError(
                f"{path}: image {name}: segmentation: mask size {list(value)} differs from the image's [height, width] {list(image_size)}"
            )


def label_file_path(labels_dir: str, dataset_name: str, split: str) -> str:
    """Where the label file of ``dataset_name``'s ``split`` (train / query / gallery) lives."""
    return os.path.join(labels_dir, f"{dataset_name}_{split}.json")


def resolve_labels_dir(cfg) -> str:
    """Where the label files are: <datasets root>/daaf_labels when DATASETS.LABELS_DIR is empty,
    <datasets root>/LABELS_DIR when it is relative (as dataset folders are), else LABELS_DIR."""
    # os.path.join keeps an absolute LABELS_DIR as it is
    return os.path.join(resolve_datasets_root(cfg.DATASETS.ROOT), cfg.DATASETS.LABELS_DIR or "daaf_labels")
