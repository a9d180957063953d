"""ReIDDatasetMapper: one dataset record -> image tensor, pid, camid and (optionally) the person
instance (mask and 17 keypoints), all through the same geometric transforms."""

import logging
from typing import List, Optional

import cv2
import numpy as np
import torch
from fvcore.transforms.transform import HFlipTransform

from daaf.config import configurable
from daaf.pseudo_label.label_file import KEYPOINT_FLIP_INDICES, decode_mask
from daaf.utils.errors import ConfigError, DatasetError
from daaf.utils.file_io import PathManager

from .transforms import (
    Augmentation,
    PadAndRandomCrop,
    RandomCrop,
    RandomErasing,
    RandomFlip,
    Resize,
    apply_augmentations,
    flatten_transforms,
)

__all__ = ["ReIDDatasetMapper", "read_image", "build_augmentations"]

logger = logging.getLogger(__name__)


def read_image(file_name: str, format: str = "RGB") -> np.ndarray:
    """Read an image as HWC uint8 (RGB or BGR); DatasetError naming the file if it cannot be read."""
    try:
        with PathManager.open(file_name, "rb") as f:
            data = np.frombuffer(f.read(), dtype=np.uint8)
    except FileNotFoundError:
        raise DatasetError(f"image not found: {file_name}") from None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise DatasetError(f"cannot decode image (empty or corrupt file): {file_name}")
    return image if format == "BGR" else np.ascontiguousarray(image[:, :, ::-1])


def build_augmentations(cfg, is_train: bool) -> List[Augmentation]:
    """Geometric augmentations from INPUT.*: resize (or resize to CROP_FROM + random crop),
    horizontal flip, pad + random crop. Test: resize to SIZE_TEST (CROP_FROM with TEST.FIVE_CROP)."""
    if not is_train:
        if cfg.TEST.FIVE_CROP:
            if not cfg.INPUT.CROP_FROM:
                raise ConfigError("TEST.FIVE_CROP needs INPUT.CROP_FROM (the size the 5 crops are cut from)")
            return [Resize(cfg.INPUT.CROP_FROM)]
        return [Resize(cfg.INPUT.SIZE_TEST)]
    augs: List[Augmentation] = []
    if cfg.INPUT.CROP_FROM:
        augs += [Resize(cfg.INPUT.CROP_FROM), RandomCrop(cfg.INPUT.SIZE_TRAIN)]
    else:
        augs.append(Resize(cfg.INPUT.SIZE_TRAIN))
    if cfg.INPUT.FLIP.ENABLED:
        augs.append(RandomFlip(cfg.INPUT.FLIP.PROB))
    if cfg.INPUT.PADDING.ENABLED:
        augs.append(PadAndRandomCrop(cfg.INPUT.PADDING.SIZE))
    return augs


class ReIDDatasetMapper:
    """Map one record {"file_name", "pid", "camid", optional "annotation"} to
    {"image": (3, H, W) uint8, "pid", "camid", "file_name", optional "instances"}.

    ``instances`` (when ``use_labels``): {"gt_masks": (N, H, W) uint8, "gt_keypoints": (N, 17, 3)
    float32 [x, y, v]} with N = 1, or N = 0 when the labeler found nobody in the crop. A keypoint
    moved outside the image by any transform gets v = 0; a horizontal flip swaps left/right.
    """

    @configurable
    def __init__(
        self,
        *,
        is_train: bool,
        augmentations: List[Augmentation],
        image_format: str = "RGB",
        random_erasing: Optional[RandomErasing] = None,
        use_labels: bool = False,
    ):
        self.is_train = is_train
        self.augmentations = list(augmentations)
        self.image_format = image_format
        self.random_erasing = random_erasing
        self.use_labels = use_labels

    @classmethod
    def from_config(cls, cfg, is_train: bool = True):
        rea = None
        if is_train and cfg.INPUT.REA.ENABLED:
            rea = RandomErasing(cfg.INPUT.REA.PROB, cfg.INPUT.REA.AREA, cfg.INPUT.REA.ASPECT)
        return {
            "is_train": is_train,
            "augmentations": build_augmentations(cfg, is_train),
            "image_format": cfg.INPUT.FORMAT,
            "random_erasing": rea,
            "use_labels": is_train and len(cfg.MODEL.DAAF.BRANCHES) > 0,
        }

    def __call__(self, record: dict) -> dict:
        image = read_image(record["file_name"], self.image_format)
        height, width = image.shape[:2]
        transforms = flatten_transforms(apply_augmentations(self.augmentations, height, width))
        instance = None
        if self.use_labels:
            if "annotation" not in record:
                raise DatasetError(f"{record['file_name']}: no entry in the label file (labels are needed for DAAF branches)")
            instance = _load_instance(record["annotation"], (height, width), record["file_name"])
        for t in transforms:
            image = t.apply_image(image)
            if instance is not None:
                instance = _transform_instance(instance, t, image.shape[:2])
        if self.random_erasing is not None:
            image = self.random_erasing(image)
        result = {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "pid": record["pid"],
            "camid": record["camid"],
            "file_name": record["file_name"],
        }
        if self.use_labels:
            result["instances"] = _instance_tensors(instance, image.shape[:2])
        return result


def _load_instance(annotation, image_size, file_name):
    """(mask (H, W) uint8, keypoints (17, 3) float64) of an annotation, or None (nobody found)."""
    if annotation is None:
        return None
    mask = decode_mask(annotation["segmentation"])
    if mask.shape != tuple(image_size):
        raise DatasetError(f"{file_name}: label mask size {mask.shape} differs from the image size {tuple(image_size)}")
    return mask, np.asarray(annotation["keypoints"], dtype=np.float64).reshape(17, 3).copy()


def _transform_instance(instance, transform, out_size):
    """Apply one geometric transform to (mask, keypoints). A keypoint that leaves the image at ANY
    step becomes invisible (a later pad must not bring it back); a flip swaps left and right."""
    if instance is None:
        return None
    mask, keypoints = instance
    mask = transform.apply_segmentation(mask)
    keypoints = keypoints.copy()
    keypoints[:, :2] = transform.apply_coords(keypoints[:, :2].copy())
    h, w = out_size
    outside = (keypoints[:, 0] < 0) | (keypoints[:, 0] >= w) | (keypoints[:, 1] < 0) | (keypoints[:, 1] >= h)
    keypoints[outside, 2] = 0
    if isinstance(transform, HFlipTransform):
        keypoints = keypoints[KEYPOINT_FLIP_INDICES]
    return mask, keypoints


def _instance_tensors(instance, out_size) -> dict:
    if instance is None:
        return {
            "gt_masks": torch.zeros((0, *out_size), dtype=torch.uint8),
            "gt_keypoints": torch.zeros((0, 17, 3), dtype=torch.float32),
        }
    mask, keypoints = instance
    return {
        "gt_masks": torch.from_numpy(np.ascontiguousarray(mask, dtype=np.uint8))[None],
        "gt_keypoints": torch.from_numpy(keypoints.astype(np.float32))[None],
    }
