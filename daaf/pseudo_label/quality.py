"""How good a label file is: compare it with ground-truth labels (e.g. the synthetic persons').

Per image of the ground truth: mask IoU (0 when the labeler found nobody) and, for every keypoint
the ground truth knows (v >= 1), whether the predicted location lies within alpha x the ground-truth
person's height (its bbox height) of the true one (PCK@alpha; a keypoint of a crop where nobody was
found counts as wrong). Visibility recall: the share of known keypoints the labeler marks visible.
"""

from typing import Dict, Sequence

import numpy as np

from daaf.data.person_labels import COCO_KEYPOINT_NAMES, NUM_KEYPOINTS, decode_mask, load_label_file, parse_keypoints
from daaf.utils.errors import DatasetError

__all__ = ["compare_label_files", "format_quality"]


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def compare_label_files(predicted_path: str, ground_truth_path: str, alphas: Sequence[float] = (0.05, 0.1, 0.2)) -> Dict:
    """Returns {"images", "found", "mask_iou", "mask_iou_median", "pck": {alpha: value},
    "pck_per_keypoint": {alpha: {name: value}}, "visibility_recall"} over the ground truth's images."""
    predicted = load_label_file(predicted_path)
    truth = load_label_file(ground_truth_path)
    missing = [name for name in truth if name not in predicted]
    if missing:
        raise DatasetError(f"{predicted_path} lacks {len(missing)} images of {ground_truth_path}, e.g. {missing[:3]}")
    ious, found = [], 0
    hits = {a: [] for a in alphas}  # per known keypoint: (keypoint index, correct)
    visible_known = []
    for name, gt in truth.items():
        if gt is None:
            continue
        pred = predicted[name]
        gt_mask = decode_mask(gt["segmentation"]).astype(bool)
        gt_kps = parse_keypoints(gt["keypoints"], np.float64)
        known = np.flatnonzero(gt_kps[:, 2] > 0)
        height = max(float(gt["bbox"][3]), 1.0)
        if pred is None:
            ious.append(0.0)
            for a in alphas:
                hits[a] += [(k, False) for k in known]
            visible_known += [False] * len(known)
            continue
        found += 1
        pred_mask = decode_mask(pred["segmentation"]).astype(bool)
        if pred_mask.shape != gt_mask.shape:
            raise DatasetError(f"{predicted_path}: mask of {name} is {pred_mask.shape}, the ground truth's is {gt_mask.shape}")
        ious.append(_mask_iou(pred_mask, gt_mask))
        pred_kps = parse_keypoints(pred["keypoints"], np.float64)
        distance = np.linalg.norm(pred_kps[known, :2] - gt_kps[known, :2], axis=1)
        for a in alphas:
            hits[a] += [(k, bool(d <= a * height)) for k, d in zip(known, distance)]
        visible_known += list(pred_kps[known, 2] > 0)
    pck, per_keypoint = {}, {}
    for a in alphas:
        arr = np.asarray(hits[a], dtype=np.float64).reshape(-1, 2)
        pck[a] = float(arr[:, 1].mean()) if len(arr) else float("nan")
        per_keypoint[a] = {
            COCO_KEYPOINT_NAMES[k]: float(arr[arr[:, 0] == k, 1].mean()) for k in range(NUM_KEYPOINTS) if (arr[:, 0] == k).any()
        }
    return {
        "images": len(ious),
        "found": found,
        "mask_iou": float(np.mean(ious)) if ious else float("nan"),
        "mask_iou_median": float(np.median(ious)) if ious else float("nan"),
        "pck": pck,
        "pck_per_keypoint": per_keypoint,
        "visibility_recall": float(np.mean(visible_known)) if visible_known else float("nan"),
    }


def format_quality(result: Dict) -> str:
    """A readable report of :func:`compare_label_files`' result."""
    lines = [
        f"images with a ground-truth person: {result['images']}",
        f"labeler found a person in:         {result['found']} ({100.0 * result['found'] / max(result['images'], 1):.1f}%)",
        f"mask IoU (mean / median):          {result['mask_iou']:.3f} / {result['mask_iou_median']:.3f}"
        + (" (crops without a person found count as IoU 0 and every keypoint wrong)" if result["found"] < result["images"] else ""),
        f"keypoints marked visible (recall): {result['visibility_recall']:.3f}",
    ]
    alphas = list(result["pck"])
    lines.append("PCK (alpha x person height): " + ", ".join(f"@{a:g} {result['pck'][a]:.3f}" for a in alphas))
    lines.append(f"{'keypoint':<15}" + "".join(f"{'PCK@' + format(a, 'g'):>10}" for a in alphas))
    for name in COCO_KEYPOINT_NAMES:
        values = [result["pck_per_keypoint"][a].get(name) for a in alphas]
        if values[0] is not None:
            lines.append(f"{name:<15}" + "".join(f"{v:>10.3f}" for v in values))
    return "\n".join(lines)
