"""Geometric transforms applied identically to an image, its person mask and its keypoints.

Built on fvcore's deterministic ``Transform`` classes; an ``Augmentation`` draws the random
parameters of one transform for one image (detectron2's split). Random erasing is an image-only
operation and lives in the mapper.
"""

from typing import List, Sequence, Tuple

import cv2
import numpy as np
from fvcore.transforms.transform import (
    CropTransform,
    HFlipTransform,
    NoOpTransform,
    Transform,
    TransformList,
)

__all__ = [
    "ResizeTransform",
    "TranslateTransform",
    "Augmentation",
    "Resize",
    "RandomFlip",
    "RandomCrop",
    "PadAndRandomCrop",
    "apply_augmentations",
    "flatten_transforms",
    "RandomErasing",
]


class ResizeTransform(Transform):
    """Resize (h, w) -> (new_h, new_w): bilinear for images, nearest for masks."""

    def __init__(self, h: int, w: int, new_h: int, new_w: int):
        super().__init__()
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        assert img.shape[:2] == (self.h, self.w), (img.shape, self.h, self.w)
        return cv2.resize(img, (self.new_w, self.new_h), interpolation=cv2.INTER_LINEAR)

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return cv2.resize(segmentation, (self.new_w, self.new_h), interpolation=cv2.INTER_NEAREST)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        coords = coords.astype(np.float64, copy=True)
        coords[:, 0] *= self.new_w / self.w
        coords[:, 1] *= self.new_h / self.h
        return coords

    def inverse(self) -> Transform:
        return ResizeTransform(self.new_h, self.new_w, self.h, self.w)


class TranslateTransform(Transform):
    """Shift the content by (dx, dy) pixels inside an unchanged (h, w) frame, filling with 0.

    Equals zero-padding by p and cropping back at (p - dx, p - dy), in one copy instead of two.
    """

    def __init__(self, dx: int, dy: int, h: int, w: int):
        super().__init__()
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        out = np.zeros_like(img)
        dx, dy, h, w = self.dx, self.dy, self.h, self.w
        out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = img[max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)]
        return out

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        coords[:, 0] += self.dx
        coords[:, 1] += self.dy
        return coords

    def inverse(self) -> Transform:
        return TranslateTransform(-self.dx, -self.dy, self.h, self.w)


class HFlip(HFlipTransform):
    """fvcore's horizontal flip, with OpenCV's flip for images and masks (a contiguous copy is
    cheaper for the transforms that follow than NumPy's negative-stride view)."""

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        if img.dtype == np.uint8 and img.ndim in (2, 3) and (img.ndim == 2 or img.shape[2] <= 4):
            return cv2.flip(img, 1)
        return super().apply_image(img)


class Augmentation:
    """Draws one Transform for an image of a given (h, w). Randomness comes from NumPy's global
    RNG, which the loader seeds per worker."""

    def get_transform(self, height: int, width: int) -> Transform:
        raise NotImplementedError

    def output_size(self, height: int, width: int) -> Tuple[int, int]:
        return height, width


class Resize(Augmentation):
    """Resize to a fixed (height, width)."""

    def __init__(self, size: Sequence[int]):
        self.size = (int(size[0]), int(size[1]))

    def get_transform(self, height, width):
        if (height, width) == self.size:
            return NoOpTransform()
        return ResizeTransform(height, width, *self.size)

    def output_size(self, height, width):
        return self.size


class RandomFlip(Augmentation):
    """Horizontal flip with probability ``prob``. Keypoint left/right relabelling is done by the
    mapper, which knows the keypoint semantics (``KEYPOINT_FLIP_INDICES``)."""

    def __init__(self, prob: float = 0.5):
        self.prob = prob

    def get_transform(self, height, width):
        return HFlip(width) if np.random.rand() < self.prob else NoOpTransform()


class RandomCrop(Augmentation):
    """Crop a random (height, width) window (TriNet: 288x144 -> 256x128)."""

    def __init__(self, size: Sequence[int]):
        self.size = (int(size[0]), int(size[1]))

    def get_transform(self, height, width):
        ch, cw = self.size
        if ch > height or cw > width:
            raise ValueError(f"crop {self.size} larger than image {(height, width)}")
        y0 = np.random.randint(height - ch + 1)
        x0 = np.random.randint(width - cw + 1)
        return CropTransform(x0, y0, cw, ch, orig_w=width, orig_h=height)

    def output_size(self, height, width):
        return self.size


class PadAndRandomCrop(Augmentation):
    """Zero-pad ``padding`` pixels on every side, then crop back to the original size at a random
    position (Bag of Tricks' 'pad 10 + random crop')."""

    def __init__(self, padding: int):
        self.padding = int(padding)

    def get_transform(self, height, width):
        p = self.padding
        x0, y0 = np.random.randint(2 * p + 1), np.random.randint(2 * p + 1)
        return TranslateTransform(p - int(x0), p - int(y0), height, width)


def apply_augmentations(augmentations: List[Augmentation], height: int, width: int) -> TransformList:
    """Draw the transforms of ``augmentations`` in order for an image of (height, width)."""
    transforms = []
    for aug in augmentations:
        transforms.append(aug.get_transform(height, width))
        height, width = aug.output_size(height, width)
    return TransformList(transforms)


def flatten_transforms(transforms: Transform) -> List[Transform]:
    """The plain transforms of a (nested) TransformList, in order, without no-ops."""
    if isinstance(transforms, TransformList):
        return [t for sub in transforms.transforms for t in flatten_transforms(sub)]
    return [] if isinstance(transforms, NoOpTransform) else [transforms]


class RandomErasing:
    """Random erasing (Zhong et al. 2020) on an HWC uint8 image: with probability ``prob`` one
    rectangle of area fraction in ``area`` and aspect in [aspect, 1/aspect] is filled with the
    ImageNet mean colour (as in BoT). Applies to the image only, never to masks or keypoints."""

    def __init__(self, prob: float = 0.5, area=(0.02, 0.4), aspect: float = 0.3, fill=(124, 116, 104)):
        self.prob, self.area, self.aspect = prob, tuple(area), aspect
        self.fill = np.asarray(fill, dtype=np.uint8)

    def __call__(self, img: np.ndarray) -> np.ndarray:
        if np.random.rand() >= self.prob:
            return img
        h, w = img.shape[:2]
        for _ in range(100):
            target_area = np.random.uniform(*self.area) * h * w
            aspect = np.random.uniform(self.aspect, 1.0 / self.aspect)
            eh = int(round(np.sqrt(target_area * aspect)))
            ew = int(round(np.sqrt(target_area / aspect)))
            if 0 < eh < h and 0 < ew < w:
                y0 = np.random.randint(h - eh + 1)
                x0 = np.random.randint(w - ew + 1)
                img = img.copy()
                img[y0 : y0 + eh, x0 : x0 + ew] = self.fill[: img.shape[2]] if img.ndim == 3 else self.fill[0]
                return img
        return img
