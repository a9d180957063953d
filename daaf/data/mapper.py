"""ReIDDatasetMapper: one dataset record -> image tensor, pid, camid and, when the model asks for
them, the person mask and 17 keypoints, all through the same geometric transforms."""

import logging
from typing import Iterable, List, Optional

import cv2
import numpy as np
import torch
from fvcore.transforms.transform import HFlipTransform

from daaf.config import configurable
from daaf.utils.errors import ConfigError, DatasetError
from daaf.utils.file_io import PathManager

from .batch import PersonLabels
from .image_check import DEFAULT_MAX_IMAGE_PIXELS, HEADER_BYTES, pixel_limit_problem
from .person_labels import KEYPOINT_FLIP_INDICES, NUM_KEYPOINTS, decode_mask
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


def read_image(file_name: str, format: str = "RGB", max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """Read an image as HWC uint8 (RGB or BGR); DatasetError naming the file if it cannot be read
    or its header declares more than ``max_pixels`` pixels (refused before decoding)."""
    try:
        with PathManager.open(file_name, "rb") as f:
            data = np.frombuffer(f.read(), dtype=np.uint8)
    except FileNotFoundError:
        raise DatasetError(f"image not found: {file_name}") from None
    too_large = pixel_limit_problem(data[:HEADER_BYTES].tobytes(), max_pixels)
    if too_large:
        raise DatasetError(f"{file_name}: {too_large}")
    try:
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    except cv2.error:  # OpenCV's own limits (OPENCV_IO_MAX_IMAGE_PIXELS) or a header it rejects
        image = None
    if image is None:
        raise DatasetError(f"cannot decode image (empty or corrupt file): {file_name}")
    return image if format == "BGR" else np.ascontiguousarray(image[:, :, ::-1])


def build_augmentations(cfg, is_train: bool, single_crop: bool = False) -> List[Augmentation]:
    """Geometric augmentations from INPUT.*: resize (or resize to CROP_FROM + random crop),
    horizontal flip, pad + random crop. Test: resize to SIZE_TEST (CROP_FROM with TEST.FIVE_CROP,
    unless ``single_crop``: then the one SIZE_TEST crop the network reads, what the analyses and
    pictures show)."""
    if not is_train:
        if cfg.TEST.FIVE_CROP and not single_crop:
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
    """Map one record {"file_name", "pid", "camid", optionally "image" (the decoded HWC uint8 image
    in ``image_format``, instead of reading the file), "person_label" (see ``attach_labels``; needed
    when ``input_fields`` is not empty)} to {"image": (3, H, W) uint8, "pid", "camid", "file_name"}
    and, when the model asks for person labels (``input_fields``, some of ``PersonLabels.FIELDS``),
    "person_labels": the crop's :class:`PersonLabels` (B = 1) with those fields (has_label False,
    with a zero mask and zero keypoints, where the labeler found nobody).

    The mask and the keypoints go through the image's geometric transforms; a keypoint moved
    outside the image by any transform gets v = 0; a horizontal flip swaps left and right.
    """

    @configurable
    def __init__(
        self,
        *,
        is_train: bool,
        augmentations: List[Augmentation],
        image_format: str = "RGB",
        random_erasing: Optional[RandomErasing] = None,
        input_fields: Iterable[str] = (),
        max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    ):
        self.is_train = is_train
        self.max_pixels = max_pixels
        self.augmentations = list(augmentations)
        self.image_format = image_format
        self.random_erasing = random_erasing
        self.input_fields = frozenset(input_fields)
        unknown = self.input_fields - PersonLabels.FIELDS
        if unknown:
            raise ValueError(f"input_fields: unknown fields {sorted(unknown)} (expected some of {sorted(PersonLabels.FIELDS)})")

    @classmethod
    def from_config(cls, cfg, is_train: bool = True, input_fields: Iterable[str] = ()):
        rea = None
        if is_train and cfg.INPUT.REA.ENABLED:
            rea = RandomErasing(cfg.INPUT.REA.PROB, cfg.INPUT.REA.AREA, cfg.INPUT.REA.ASPECT)
        return {
            "is_train": is_train,
            "augmentations": build_augmentations(cfg, is_train),
            "image_format": cfg.INPUT.FORMAT,
            "random_erasing": rea,
            "input_fields": input_fields,
            "max_pixels": cfg.INPUT.MAX_IMAGE_PIXELS,
        }

    def __call__(self, record: dict) -> dict:
        # a record may carry its decoded image (HWC uint8 in INPUT.FORMAT), e.g. an array a user passes
        image = record["image"] if "image" in record else read_image(record["file_name"], self.image_format, self.max_pixels)
        height, width = image.shape[:2]
        transforms = flatten_transforms(apply_augmentations(self.augmentations, height, width))
        label = self._person_label(record, height, width) if self.input_fields else None
        want_mask = label is not None and "masks" in self.input_fields
        want_keypoints = label is not None and "keypoints" in self.input_fields
        mask = decode_mask(label["segmentation"]) if want_mask else None
        keypoints = label["keypoints"].copy() if want_keypoints else None
        xy = keypoints[:, :2] if want_keypoints else None
        inside, flipped = None, False
        for t in transforms:
            image = t.apply_image(image)
            if want_mask:
                mask = t.apply_segmentation(mask)
            if want_keypoints:
                xy = t.apply_coords(xy)
                if not isinstance(t, _FRAME_PRESERVING):
                    # a keypoint that leaves the image at ANY step stays invisible (a later pad
                    # must not bring it back)
                    h, w = image.shape[:2]
                    step_inside = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
                    inside = step_inside if inside is None else inside & step_inside
            flipped ^= isinstance(t, HFlipTransform)  # a flip relabels left and right
        if self.random_erasing is not None:
            image = self.random_erasing(image)
        result = {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "pid": record["pid"],
            "camid": record["camid"],
            "file_name": record["file_name"],
        }
        if not self.input_fields:
            return result
        h, w = image.shape[:2]
        labels = PersonLabels(has_label=torch.tensor([label is not None]))
        if "masks" in self.input_fields:
            mask = np.zeros((h, w), np.uint8) if mask is None else np.ascontiguousarray(mask, dtype=np.uint8)
            labels.masks = torch.from_numpy(mask)[None]
        if "keypoints" in self.input_fields:
            if keypoints is None:
                keypoints = np.zeros((NUM_KEYPOINTS, 3), np.float32)
            else:
                keypoints[:, :2] = xy
                if inside is not None:
                    keypoints[~inside, 2] = 0
                if flipped:
                    keypoints = keypoints[KEYPOINT_FLIP_INDICES]
            labels.keypoints = torch.from_numpy(np.ascontiguousarray(keypoints, dtype=np.float32))[None]
        result["person_labels"] = labels
        return result

    @staticmethod
    def _person_label(record: dict, height: int, width: int) -> Optional[dict]:
        if "person_label" not in record:
            raise DatasetError(f"{record['file_name']}: no person label (the model needs person labels: is DATASETS.LABELS_DIR right?)")
        label = record["person_label"]
        if label is not None and tuple(label["segmentation"]["size"]) != (height, width):
            size = tuple(label["segmentation"]["size"])
            raise DatasetError(f"{record['file_name']}: label mask size {size} differs from the image size {(height, width)}")
        return label
