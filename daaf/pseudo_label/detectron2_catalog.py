"""Person-label files as detectron2 datasets (needs detectron2): every split that has a label file
registered in detectron2's DatasetCatalog / MetadataCatalog as COCO person instances (mask, box,
17 keypoints with their names, flip map and skeleton), so that detectron2's Visualizer and
COCOEvaluator work on them; and a labeler's file scored against ground truth with COCOEvaluator.

    from daaf.pseudo_label.detectron2_catalog import register_detectron2_datasets
    names = register_detectron2_datasets(cfg)      # e.g. ["daaf_Market1501_train", ...]
"""

import json
import logging
import os
from typing import Dict, List

import numpy as np
import torch

from daaf.data.person_labels import COCO_KEYPOINT_FLIP_MAP, COCO_KEYPOINT_NAMES, COCO_SKELETON, NUM_KEYPOINTS, decode_mask, parse_keypoints
from daaf.utils.detectron2_zoo import require_detectron2
from daaf.utils.errors import UserError
from daaf.utils.file_io import PathManager

from .targets import SPLITS, labeling_targets

__all__ = ["person_metadata", "register_label_file", "register_detectron2_datasets", "coco_evaluate_label_file"]

logger = logging.getLogger(__name__)

_SKELETON_COLOUR = (102, 204, 255)


def person_metadata() -> dict:
    """detectron2 metadata of a person-keypoint dataset in COCO order (as its COCO keypoint
    datasets carry): thing_classes, keypoint_names, keypoint_flip_map, keypoint_connection_rules."""
    names = COCO_KEYPOINT_NAMES
    return {
        "thing_classes": ["person"],
        "keypoint_names": list(names),
        "keypoint_flip_map": [(names[a], names[b]) for a, b in COCO_KEYPOINT_FLIP_MAP],
        "keypoint_connection_rules": [(names[a - 1], names[b - 1], _SKELETON_COLOUR) for a, b in COCO_SKELETON],
    }


def register_label_file(name: str, label_file: str, image_root: str) -> None:
    """Register ``label_file`` (this project's COCO person-label format) as the detectron2 dataset
    ``name`` with images under ``image_root``; an earlier registration of ``name`` is replaced."""
    require_detectron2("registering label files in detectron2's DatasetCatalog")
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.data.datasets import register_coco_instances

    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    register_coco_instances(name, person_metadata(), label_file, image_root)


def register_detectron2_datasets(cfg, prefix: str = "daaf_") -> List[str]:
    """Register every split (train, query, gallery) of DATASETS.TRAIN and DATASETS.TEST whose label
    file exists as ``<prefix><Dataset>_<split>``; returns the names registered."""
    registered = []
    for dataset, split, records, path in labeling_targets(cfg, splits=SPLITS):
        if not PathManager.isfile(path):
            continue
        first = records[0]
        image_root = first["file_name"][: len(first["file_name"]) - len(first["relpath"])]
        name = f"{prefix}{dataset}_{split}"
        register_label_file(name, path, image_root)
        registered.append(name)
    if registered:
        logger.info(f"Registered in detectron2's DatasetCatalog: {', '.join(registered)}")
    return registered


def _read_json(path: str, what: str) -> dict:
    if not PathManager.isfile(path):
        raise UserError(f"{what} not found: {path}")
    with PathManager.open(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise UserError(f"{what} {path} is not JSON ({e})") from None


def _instances(annotation, height: int, width: int):
    """detectron2 Instances holding the one person of ``annotation`` (None: no person)."""
    from detectron2.structures import Boxes, Instances

    instances = Instances((height, width))
    people = [annotation] if annotation is not None else []
    instances.pred_boxes = Boxes(
        torch.tensor(
            [[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]] for a in people], dtype=torch.float32
        ).reshape(-1, 4)
    )
    instances.scores = torch.tensor([float(a.get("score", 1.0)) for a in people], dtype=torch.float32)
    instances.pred_classes = torch.zeros(len(people), dtype=torch.int64)
    masks = [decode_mask(a["segmentation"]).astype(bool) for a in people]
    instances.pred_masks = torch.from_numpy(np.stack(masks)) if masks else torch.zeros((0, height, width), dtype=torch.bool)
    keypoints = []
    for a in people:
        k = parse_keypoints(a["keypoints"])
        scores = np.asarray(a.get("keypoint_scores", k[:, 2] > 0), dtype=np.float32)
        # detectron2 subtracts 0.5 when it writes keypoints as COCO results: give it its convention
        keypoints.append(np.concatenate([k[:, :2] + 0.5, scores[:, None]], axis=1))
    instances.pred_keypoints = torch.from_numpy(np.stack(keypoints)) if keypoints else torch.zeros((0, NUM_KEYPOINTS, 3))
    return instances


def coco_evaluate_label_file(labels_path: str, truth_path: str) -> Dict[str, Dict[str, float]]:
    """Score the person labels of ``labels_path`` against the ground truth of ``truth_path`` (same
    split; images matched by file_name) with detectron2's COCOEvaluator: {"segm": {"AP", "AP50",
    ...}, "keypoints": {...}}. An image the labeler found nobody in counts as a miss."""
    require_detectron2("check_labels --coco-eval")
    from detectron2.data import DatasetCatalog
    from detectron2.evaluation import COCOEvaluator

    labels, truth = _read_json(labels_path, "label file"), _read_json(truth_path, "ground-truth label file")
    truth_ids = {image["file_name"]: image["id"] for image in truth.get("images", [])}
    missing = [image["file_name"] for image in labels.get("images", []) if image["file_name"] not in truth_ids]
    if missing:
        raise UserError(f"{labels_path}: {len(missing)} images are not in {truth_path}, e.g. {missing[:3]}")
    name = "daaf_ground_truth_" + str(abs(hash(os.path.abspath(truth_path))))
    register_label_file(name, truth_path, "")
    DatasetCatalog.get(name)  # loading it sets the metadata's category-id mapping that the evaluator uses
    evaluator = COCOEvaluator(name, tasks=("segm", "keypoints"), distributed=False, output_dir=None)
    evaluator.reset()
    by_image = {a["image_id"]: a for a in labels.get("annotations", [])}
    for image in labels["images"]:
        instances = _instances(by_image.get(image["id"]), image["height"], image["width"])
        evaluator.process([{"image_id": truth_ids[image["file_name"]]}], [{"instances": instances}])
    results = evaluator.evaluate()
    return {task: {k: float(v) for k, v in results[task].items()} for task in ("segm", "keypoints")}
