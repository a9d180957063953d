"""The 17 COCO person keypoints: their names, skeleton, left/right flip, and the one parser of an
annotation's keypoint list."""

from typing import Sequence

import numpy as np

__all__ = [
    "COCO_KEYPOINT_NAMES",
    "COCO_SKELETON",
    "COCO_KEYPOINT_FLIP_MAP",
    "KEYPOINT_FLIP_INDICES",
    "NUM_KEYPOINTS",
    "VISIBILITY_VALUES",
    "parse_keypoints",
]

COCO_KEYPOINT_NAMES = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
]  # fmt: skip
NUM_KEYPOINTS = len(COCO_KEYPOINT_NAMES)
# 1-based pairs, as in the COCO annotation files.
COCO_SKELETON = [
    [16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9],
    [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7],
]  # fmt: skip
COCO_KEYPOINT_FLIP_MAP = [(1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)]
# COCO's visibility flags: 0 not labelled (or outside the crop), 1 occluded but known, 2 visible.
VISIBILITY_VALUES = (0, 1, 2)


def _flip_indices() -> np.ndarray:
    indices = list(range(NUM_KEYPOINTS))
    for a, b in COCO_KEYPOINT_FLIP_MAP:
        indices[a], indices[b] = b, a
    return np.asarray(indices, dtype=np.intp)


# keypoints[:, KEYPOINT_FLIP_INDICES] relabels left <-> right after a horizontal flip.
KEYPOINT_FLIP_INDICES = _flip_indices()


def parse_keypoints(values: Sequence, dtype=np.float32) -> np.ndarray:
    """An annotation's flat keypoint list [x1, y1, v1, ... x17, y17, v17] -> (17, 3) array.

    Raises ValueError saying what is wrong (the caller names the file and the image): not 51
    numbers, a value that is not finite, a visibility outside {0, 1, 2}."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or len(values) != 3 * NUM_KEYPOINTS:
        count = len(values) if hasattr(values, "__len__") else type(values).__name__
        raise ValueError(f"expected {3 * NUM_KEYPOINTS} numbers ({NUM_KEYPOINTS} x, y, v), got {count}")
    if not all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in np.asarray(values, dtype=object).reshape(-1)):
        raise ValueError("expected numbers only")
    keypoints = np.asarray(values, dtype=np.float64).reshape(NUM_KEYPOINTS, 3)
    bad = np.flatnonzero(~np.isfinite(keypoints).all(1))
    if len(bad):
        raise ValueError(f"keypoint {COCO_KEYPOINT_NAMES[bad[0]]} is not finite: {keypoints[bad[0]].tolist()}")
    bad = np.flatnonzero(~np.isin(keypoints[:, 2], VISIBILITY_VALUES))
    if len(bad):
        v = keypoints[bad[0], 2]
        raise ValueError(f"keypoint {COCO_KEYPOINT_NAMES[bad[0]]} has visibility {v:g} (expected 0, 1 or 2)")
    return keypoints.astype(dtype)
