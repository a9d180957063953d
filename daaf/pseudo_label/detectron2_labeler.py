"""detectron2's Keypoint R-CNN and Mask R-CNN as the person labeler (PSEUDO_LABEL.NAME
Detectron2Labeler), run on whole batches of upscaled crops.

    PSEUDO_LABEL:
      NAME: Detectron2Labeler
      MIN_SIZE_TEST: 384          # ReID crops (~128x64) are upscaled: short edge -> 384
      DETECTRON2:
        KEYPOINT_CONFIG: COCO-Keypoints/keypoint_rcnn_R_50_FPN_3x.yaml       # model-zoo name or a path
        KEYPOINT_WEIGHTS: ""      # empty: that config's model-zoo weights
        MASK_CONFIG: COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml
        MASK_WEIGHTS: ""
"""

import logging
from typing import List, Optional

import numpy as np
import torch

from daaf.config import CfgNode as CN
from daaf.config import config_extension, configurable
from daaf.utils.detectron2_zoo import (
    detectron2_checkpoint_url,
    detectron2_config_file,
    fetch_detectron2_weights,
    load_detectron2_weights,
    require_detectron2,
)
from daaf.utils.env import resolve_device

from .build import PSEUDO_LABELER_REGISTRY, PersonLabel, PersonLabeler
from .person_selection import match_box, select_person

__all__ = ["Detectron2Labeler", "build_detectron2_model", "add_detectron2_labeler_config"]

logger = logging.getLogger(__name__)

_COCO_PERSON = 0  # class index of "person" in detectron2's COCO models


@config_extension
def add_detectron2_labeler_config(cfg) -> None:
    """Add ``PSEUDO_LABEL.DETECTRON2`` (the Keypoint and Mask R-CNN configs and weights) to ``cfg``."""
    cfg.PSEUDO_LABEL.DETECTRON2 = CN()
    # detectron2 model-zoo names or YAML paths; empty WEIGHTS: that config's model-zoo weights.
    cfg.PSEUDO_LABEL.DETECTRON2.KEYPOINT_CONFIG = "COCO-Keypoints/keypoint_rcnn_R_50_FPN_3x.yaml"
    cfg.PSEUDO_LABEL.DETECTRON2.KEYPOINT_WEIGHTS = ""
    cfg.PSEUDO_LABEL.DETECTRON2.MASK_CONFIG = "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml"
    cfg.PSEUDO_LABEL.DETECTRON2.MASK_WEIGHTS = ""


def build_detectron2_model(
    config: str,
    weights: Optional[str],
    device,
    score_thresh: float,
    key: str,
    detections_per_image: int = 10,
    proposals_per_image: int = 100,
) -> torch.nn.Module:
    """A detectron2 model from a model-zoo name or YAML path, in eval mode on ``device``.

    ``weights``: a path or URL loaded with detectron2's checkpointer; None keeps the random
    initialisation (tests, benchmarks). ``key`` names the config key in error messages.
    ``detections_per_image``: the most detections kept per crop (detectron2's default, 100, makes
    the keypoint and mask heads work on many boxes a ReID crop does not have).
    ``proposals_per_image``: RPN proposals kept for the box head (detectron2: 1000, sized for
    crowded COCO scenes; the box head's cost grows with it).
    """
    require_detectron2(key)
    from detectron2.config import get_cfg as get_d2_cfg
    from detectron2.modeling import build_model as build_d2_model

    d2cfg = get_d2_cfg()
    d2cfg.merge_from_file(detectron2_config_file(config, key))
    d2cfg.MODEL.DEVICE = str(device)
    d2cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = score_thresh
    d2cfg.TEST.DETECTIONS_PER_IMAGE = detections_per_image
    d2cfg.MODEL.RPN.POST_NMS_TOPK_TEST = proposals_per_image
    model = build_d2_model(d2cfg).eval()
    if weights is not None:
        load_detectron2_weights(model, weights, key)
    return model


@PSEUDO_LABELER_REGISTRY.register()
class Detectron2Labeler(PersonLabeler):
    """THE person of each crop from Keypoint R-CNN (box, 17 keypoints) and Mask R-CNN (mask).

    Args:
        keypoint_model, mask_model: detectron2 GeneralizedRCNN models in eval mode (COCO classes).
        min_size_test, max_size_test: crops are resized so that their short edge is
            ``min_size_test`` (long edge at most ``max_size_test``) before detection; outputs are
            mapped back to the crop's pixels.
        detection_thresh: minimum person score. keypoint_thresh: minimum keypoint score for v = 2.
        mask_match_iou: minimum box IoU between THE person and a Mask R-CNN person (see
            :mod:`daaf.pseudo_label.person_selection` for the whole rule).
        weights: what the label files record as the weights used.
        settings: further settings to record in the label files (e.g. the model configs).
    """

    @configurable
    def __init__(
        self,
        *,
        keypoint_model: torch.nn.Module,
        mask_model: torch.nn.Module,
        min_size_test: int = 384,
        max_size_test: int = 1333,
        detection_thresh: float = 0.5,
        keypoint_thresh: float = 0.05,
        mask_match_iou: float = 0.5,
        weights: Optional[str] = None,
        settings: Optional[dict] = None,
    ):
        from detectron2.data import transforms as T

        self.keypoint_model = keypoint_model
        self.mask_model = mask_model
        self.resize = T.ResizeShortestEdge([min_size_test, min_size_test], max_size_test)
        self.detection_thresh = detection_thresh
        self.keypoint_thresh = keypoint_thresh
        self.mask_match_iou = mask_match_iou
        self.weights = weights
        self._settings = {
            "min_size_test": min_size_test,
            "max_size_test": max_size_test,
            "detection_thresh": detection_thresh,
            "keypoint_thresh": keypoint_thresh,
            "mask_match_iou": mask_match_iou,
            **(settings or {}),
        }

    @classmethod
    def from_config(cls, cfg):
        require_detectron2("PSEUDO_LABEL.NAME Detectron2Labeler")
        p, d = cfg.PSEUDO_LABEL, cfg.PSEUDO_LABEL.DETECTRON2
        device_key = "PSEUDO_LABEL.DEVICE" if p.DEVICE else "MODEL.DEVICE"
        device = resolve_device(p.DEVICE or cfg.MODEL.DEVICE, device_key)
        kp_key, mask_key = "PSEUDO_LABEL.DETECTRON2.KEYPOINT_WEIGHTS", "PSEUDO_LABEL.DETECTRON2.MASK_WEIGHTS"
        kp_weights = d.KEYPOINT_WEIGHTS or detectron2_checkpoint_url(d.KEYPOINT_CONFIG, kp_key)
        mask_weights = d.MASK_WEIGHTS or detectron2_checkpoint_url(d.MASK_CONFIG, mask_key)
        # Both configs and both weights files are checked (and fetched) before either model is built.
        kp_config = detectron2_config_file(d.KEYPOINT_CONFIG, "PSEUDO_LABEL.DETECTRON2.KEYPOINT_CONFIG")
        mask_config = detectron2_config_file(d.MASK_CONFIG, "PSEUDO_LABEL.DETECTRON2.MASK_CONFIG")
        kp_local, mask_local = fetch_detectron2_weights(kp_weights, kp_key), fetch_detectron2_weights(mask_weights, mask_key)
        limits = {"detections_per_image": p.DETECTIONS_PER_IMAGE, "proposals_per_image": p.PROPOSALS_PER_IMAGE}
        return {
            "keypoint_model": build_detectron2_model(kp_config, kp_local, device, p.DETECTION_THRESH, kp_key, **limits),
            "mask_model": build_detectron2_model(mask_config, mask_local, device, p.DETECTION_THRESH, mask_key, **limits),
            "min_size_test": p.MIN_SIZE_TEST,
            "max_size_test": p.MAX_SIZE_TEST,
            "detection_thresh": p.DETECTION_THRESH,
            "keypoint_thresh": p.KEYPOINT_THRESH,
            "mask_match_iou": p.MASK_MATCH_IOU,
            "weights": f"keypoints: {kp_weights}; masks: {mask_weights}",
            "settings": {"keypoint_config": d.KEYPOINT_CONFIG, "mask_config": d.MASK_CONFIG, **limits},
        }

    def info(self) -> dict:
        return dict(self._settings)

    def _inputs(self, images: List[np.ndarray], input_format: str) -> List[dict]:
        inputs = []
        for image in images:
            height, width = image.shape[:2]
            image = image[:, :, ::-1] if input_format == "BGR" else image
            resized = self.resize.get_transform(image).apply_image(np.ascontiguousarray(image))
            tensor = torch.as_tensor(np.ascontiguousarray(resized.transpose(2, 0, 1)))
            inputs.append({"image": tensor, "height": height, "width": width})
        return inputs

    @torch.no_grad()
    def __call__(self, images: List[np.ndarray]) -> List[Optional[PersonLabel]]:
        if not images:
            return []
        inputs = {}
        outputs = []
        for model in (self.keypoint_model, self.mask_model):
            fmt = getattr(model, "input_format", "BGR")
            if fmt not in inputs:
                inputs[fmt] = self._inputs(images, fmt)
            outputs.append([o["instances"].to("cpu") for o in model(inputs[fmt])])
        return [self._person(image, kp, seg) for image, kp, seg in zip(images, *outputs)]

    def _person(self, image: np.ndarray, keypoint_instances, mask_instances) -> Optional[PersonLabel]:
        height, width = image.shape[:2]
        persons = keypoint_instances[keypoint_instances.pred_classes == _COCO_PERSON]
        boxes = persons.pred_boxes.tensor.numpy()
        scores = persons.scores.numpy()
        chosen = select_person(boxes, scores, height, width, self.detection_thresh)
        if chosen is None:
            return None
        segmented = mask_instances[(mask_instances.pred_classes == _COCO_PERSON) & (mask_instances.scores >= self.detection_thresh)]
        matched = match_box(boxes[chosen], segmented.pred_boxes.tensor.numpy(), self.mask_match_iou)
        if matched is None:
            return None
        keypoints = persons.pred_keypoints[chosen].numpy().astype(np.float64)  # (17, 3) x, y, score
        keypoint_scores = keypoints[:, 2].copy()
        keypoints[:, 2] = np.where(keypoint_scores >= self.keypoint_thresh, 2.0, 0.0)
        return PersonLabel(
            mask=segmented.pred_masks[matched].numpy().astype(np.uint8),
            keypoints=keypoints,
            keypoint_scores=keypoint_scores,
            box=boxes[chosen].astype(np.float64),
            score=float(scores[chosen]),
        )
