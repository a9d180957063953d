"""Judge a label file against ground-truth labels before training on it: mask IoU and keypoint PCK
(crops the labeler found nobody in count as IoU 0 with every keypoint wrong), and with --coco-eval
also detectron2's COCOEvaluator (mask and keypoint AP; needs detectron2).

    python tools/check_labels.py datasets/daaf_labels_detectron2/SyntheticPersons_train.json \
        datasets/daaf_labels/SyntheticPersons_train.json [--coco-eval]
"""

import argparse
import json
import sys

from daaf.pseudo_label.quality import compare_label_files, format_quality
from daaf.utils.errors import UserError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("labels", help="the label file to judge (e.g. made by --pseudo-label)")
    parser.add_argument("ground_truth", help="a label file of the same split with ground-truth labels")
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.05, 0.1, 0.2], help="PCK thresholds, x person height")
    parser.add_argument("--json", metavar="FILE", help="also write the numbers to this JSON file")
    parser.add_argument("--coco-eval", action="store_true", help="also score with detectron2's COCOEvaluator (segm and keypoint AP)")
    args = parser.parse_args(argv)
    try:
        result = compare_label_files(args.labels, args.ground_truth, args.alphas)
        if args.coco_eval:
            from daaf.pseudo_label.detectron2_catalog import coco_evaluate_label_file

            result["coco"] = coco_evaluate_label_file(args.labels, args.ground_truth)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_quality(result))
    for task, numbers in result.get("coco", {}).items():
        print(
            f"detectron2 COCOEvaluator {task:<9}: " + "  ".join(f"{k} {v:.2f}" for k, v in numbers.items() if k in ("AP", "AP50", "AP75"))
        )
    if args.json:
        from daaf.utils.file_io import atomic_write

        with atomic_write(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


def cli() -> int:
    """The command line (``daaf-check-labels``, ``python -m daaf.tools.check_labels``, ``python tools/check_labels.py``); the exit code."""
    return main()


if __name__ == "__main__":
    sys.exit(cli())
