#!/usr/bin/env python
"""Judge a label file against ground-truth labels before training on it: mask IoU and keypoint PCK.

    python tools/check_labels.py datasets/daaf_labels_d2/SyntheticPersons_train.json \
        datasets/daaf_labels/SyntheticPersons_train.json
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from daaf.pseudo_label.quality import compare_label_files, format_quality  # noqa: E402
from daaf.utils.errors import UserError  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("labels", help="the label file to judge (e.g. made by --pseudo-label)")
    parser.add_argument("ground_truth", help="a label file of the same split with ground-truth labels")
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.05, 0.1, 0.2], help="PCK thresholds, x person height")
    parser.add_argument("--json", metavar="FILE", help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    try:
        result = compare_label_files(args.labels, args.ground_truth, args.alphas)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_quality(result))
    if args.json:
        from daaf.utils.file_io import atomic_write

        with atomic_write(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
