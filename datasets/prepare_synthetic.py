#!/usr/bin/env python
"""Generate the synthetic person dataset (Market-1501 layout) with its ground-truth labels.

    python datasets/prepare_synthetic.py                 # -> ./datasets/SyntheticPersons
    python datasets/prepare_synthetic.py --root /data --num-train-ids 300 --seed 1
"""

import argparse
import os
import sys
import time


from daaf.data.datasets import resolve_datasets_root
from daaf.data.synthetic import SyntheticConfig, generate_synthetic_dataset, synthetic_dataset_complete
from daaf.utils.logger import setup_logger


def main(argv=None):
    defaults = SyntheticConfig()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="", help="datasets root (default: $DAAF_DATASETS or ./datasets)")
    parser.add_argument("--labels-dir", default="", help="where label files go (default: <root>/daaf_labels)")
    parser.add_argument("--force", action="store_true", help="regenerate even if the dataset exists")
    for field, value in vars(defaults).items():
        parser.add_argument("--" + field.replace("_", "-"), type=type(value), default=value)
    args = parser.parse_args(argv)
    root = resolve_datasets_root(args.root)
    target = os.path.join(root, "SyntheticPersons")
    labels_dir = args.labels_dir or None
    if synthetic_dataset_complete(root, labels_dir) and not args.force:
        print(f"{target} exists with its labels; use --force to regenerate it")
        return 0
    if os.path.isdir(target):
        print(f"{target} has no labels of its own generation (a run was killed mid-way?): drawing it again")
    setup_logger(name="daaf")
    config = SyntheticConfig(**{k: getattr(args, k) for k in vars(defaults)})
    start = time.perf_counter()
    counts = generate_synthetic_dataset(root, config, labels_dir=labels_dir)
    print(f"Wrote {sum(counts.values())} images to {target} in {time.perf_counter() - start:.1f}s: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
