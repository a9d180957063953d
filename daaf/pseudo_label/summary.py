"""What a label file holds, in numbers and as the table the labelling job prints."""

import json
from typing import Dict

import numpy as np

from daaf.utils.file_io import PathManager

__all__ = ["summarize_label_file", "format_summary", "format_speed"]


def summarize_label_file(path: str) -> dict:
    """{"images", "labelled", "no_person", "mean_score", "mean_keypoint_score", "mean_visible_keypoints"}."""
    with PathManager.open(path, "r") as f:
        content = json.load(f)
    anns = content["annotations"]
    scores = [a.get("score", 1.0) for a in anns]
    kp_scores = [float(np.mean(a["keypoint_scores"])) for a in anns if a.get("keypoint_scores")]
    visible = [sum(1 for v in a["keypoints"][2::3] if v > 0) for a in anns]
    return {
        "images": len(content["images"]),
        "labelled": len(anns),
        "no_person": len(content["images"]) - len(anns),
        "mean_score": float(np.mean(scores)) if scores else float("nan"),
        "mean_keypoint_score": float(np.mean(kp_scores)) if kp_scores else float("nan"),
        "mean_visible_keypoints": float(np.mean(visible)) if visible else float("nan"),
    }


def format_summary(summaries: Dict[str, dict]) -> str:
    """A table with one row per labelled split."""
    columns = ["images", "labelled", "no_person", "mean_score", "mean_keypoint_score", "mean_visible_keypoints", "images_per_s"]
    present = [c for c in columns if any(c in s for s in summaries.values())]
    titles = {"images_per_s": "speed"}
    width = max([len("split")] + [len(k) for k in summaries])
    lines = [" | ".join([f"{'split':<{width}}"] + [f"{titles.get(c, c):>10}" for c in present])]
    lines.append("-" * len(lines[0]))
    for name, s in summaries.items():
        cells = []
        for c in present:
            v = s.get(c, float("nan"))
            text = f"{v:d}" if isinstance(v, int) else format_speed(v) if c == "images_per_s" else f"{v:.3f}"
            cells.append(f"{text:>{max(10, len(titles.get(c, c)))}}")
        lines.append(" | ".join([f"{name:<{width}}"] + cells))
    return "\n".join(lines)


def format_speed(images_per_s: float) -> str:
    """ "12.5 img/s", or below 1 image a second "9.02 s/img" (a CPU labelling at full size)."""
    if not images_per_s > 0:  # nan (nothing labelled in this run) or 0
        return "-"
    return f"{images_per_s:.1f} img/s" if images_per_s >= 1 else f"{1 / images_per_s:.2f} s/img"
