"""ReIDDatasetMapper: one dataset record -> image tensor, pid, camid and (optionally) the person
instance (mask and 17 keypoints), all through the same geometric transforms."""

import logging
from typing import List, Optional

import cv2
import numpy as np
import torch
from fvcore.transforms.transform import HFlipTransform

from daaf.config import configurable
from daaf.pseudo_label.label_file import KEYPOINT_FLIP_INDICES, unpack_mask
from daaf.utils.errors import ConfigError, DatasetError
from daaf.utils.file_io import PathManager

from .transforms import (
    Augmentation,
    PadAndRandomCrop,
    RandomCrop,
    RandomErasing,
    RandomFlip,
    Resize,
    ResizeTransform,
    apply_augmentations,
    flatten_transforms,
)

__all__ = ["ReIDDatasetMapper", "read_image", "build_augmentations"]

# Transforms mapping the whole image frame onto the whole output frame: points inside stay inside.
_FRAME_PRESERVING = (ResizeTransform, HFlipTransform)

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
    """Map one record {"file_name", "pid", "camid", optional "instance" (see ``attach_labels``)} to
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
        if not self.use_labels:
            for t in transforms:
                image = t.apply_image(image)
            return self._output(record, image)
        if "instance" not in record:
            raise DatasetError(f"{record['file_name']}: no entry in the label file (labels are needed for DAAF branches)")
        instance = record["instance"]
        if instance is None:  # the labeler found nobody in this crop
            for t in transforms:
                image = t.apply_image(image)
            return self._output(record, image, None, None)
        if tuple(instance["mask_shape"]) != (height, width):
            raise DatasetError(f"{record['file_name']}: label mask size {tuple(instance['mask_shape'])} differs from the image size {(height, width)}")
        mask = unpack_mask(instance)
        keypoints = instance["keypoints"].astype(np.float32)
        xy, inside, flipped = keypoints[:, :2], None, False
        for t in transforms:
            image = t.apply_image(image)
            mask = t.apply_segmentation(mask)
            xy = t.apply_coords(xy)
            if not isinstance(t, _FRAME_PRESERVING):
                # a keypoint that leaves the image at ANY step stays invisible (a later pad
                # must not bring it back)
                h, w = image.shape[:2]
                step_inside = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
                inside = step_inside if inside is None else inside & step_inside
            flipped ^= isinstance(t, HFlipTransform)  # a flip relabels left and right
        keypoints[:, :2] = xy
        if inside is not None:
            keypoints[~inside, 2] = 0
        if flipped:
            keypoints = keypoints[KEYPOINT_FLIP_INDICES]
        return self._output(record, image, mask, keypoints)

    def _output(self, record, image, mask=None, keypoints=None) -> dict:
        if self.random_erasing is not None:
            image = self.random_erasing(image)
        result = {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "pid": record["pid"],
            "camid": record["camid"],
            "file_name": record["file_name"],
        }
        if self.use_labels:
            h, w = image.shape[:2]
            if mask is None:
                result["instances"] = {
                    "gt_masks": torch.zeros((0, h, w), dtype=torch.uint8),
                    "gt_keypoints": torch.zeros((0, 17, 3), dtype=torch.float32),
                }
            else:
                result["instances"] = {
                    "gt_masks": torch.from_numpy(np.ascontiguousarray(mask, dtype=np.uint8)[None]),
                    "gt_keypoints": torch.from_numpy(np.ascontiguousarray(keypoints, dtype=np.float32)[None]),
                }
        return result
