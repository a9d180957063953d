"""Which detection is THE person of a ReID crop, and which mask belongs to it.

The rule (a crop is cut around one person, so that person fills the frame):
  1. candidates are the person detections whose score is at least the detection threshold;
  2. THE person is the candidate with the largest ``score * IoU(box, crop frame)``; equal values
     go to the higher score, then to the earlier detection;
  3. its mask is the mask of the segmenter's person instance whose box has the largest IoU with
     THE person's box, if that IoU is at least the matching threshold; otherwise the crop is
     recorded as one where nobody was found (a person without a mask would teach HAB that the
     crop is all background).
"""

from typing import Optional

import numpy as np

__all__ = ["box_iou", "select_person", "match_box"]


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """IoU of (N, 4) and (M, 4) [x0, y0, x1, y1] boxes -> (N, M)."""
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(-1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def select_person(boxes: np.ndarray, scores: np.ndarray, height: int, width: int, score_thresh: float = 0.0) -> Optional[int]:
    """Index of THE person of an (height, width) crop among (N, 4) boxes with (N,) scores, or None."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    candidates = np.flatnonzero(scores >= score_thresh)
    if len(candidates) == 0:
        return None
    coverage = box_iou(np.asarray(boxes)[candidates], [[0, 0, width, height]])[:, 0]
    value = scores[candidates] * coverage
    # lexsort sorts by the last key first: value, then score, then (negated) index, all descending.
    order = np.lexsort((candidates, -scores[candidates], -value))
    return int(candidates[order[0]])


def match_box(box: np.ndarray, boxes: np.ndarray, min_iou: float) -> Optional[int]:
    """Index of the (M, 4) box with the largest IoU with ``box`` if it is >= min_iou, else None."""
    if len(boxes) == 0:
        return None
    iou = box_iou([box], boxes)[0]
    best = int(np.argmax(iou))
    return best if iou[best] >= min_iou else None
