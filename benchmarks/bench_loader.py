#!/usr/bin/env python
"""Loader throughput: image-only mapper (baselines) vs mapper with mask + keypoints (DAAF),
measured in the same run on the synthetic persons, 2 workers.

    python benchmarks/bench_loader.py [--batches 40] [--workers 2]

Target: with-labels throughput >= 0.8x image-only.
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from daaf.config import get_cfg  # noqa: E402
from daaf.data import build_reid_train_loader  # noqa: E402
from daaf.data.synthetic import SyntheticConfig, generate_synthetic_dataset  # noqa: E402


def throughput(cfg, batches: int) -> float:
    loader = build_reid_train_loader(cfg)
    iterator = iter(loader)
    for _ in range(5):  # worker start-up
        next(iterator)
    start = time.perf_counter()
    images = 0
    for _ in range(batches):
        images += len(next(iterator)["images"])
    return images / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median is reported")
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="daaf_bench_")
    generate_synthetic_dataset(root, SyntheticConfig(), progress=False)
    cfg = get_cfg()
    cfg.merge_from_list(["DATASETS.ROOT", root, "DATASETS.TRAIN", "('SyntheticPersons',)", "INPUT.SIZE_TRAIN", "[256, 128]",
                         "INPUT.FLIP.ENABLED", "True", "INPUT.PADDING.ENABLED", "True", "INPUT.REA.ENABLED", "True",
                         "DATALOADER.NUM_WORKERS", str(args.workers), "SOLVER.IMS_PER_BATCH", "64", "SEED", "0"])  # fmt: skip
    labelled = cfg.clone()
    labelled.MODEL.DAAF.BRANCHES = ["HAB", "PAB"]  # makes the loader read masks + keypoints
    results = {"image only": [], "with mask + keypoints": []}
    for _ in range(args.rounds):
        results["image only"].append(throughput(cfg, args.batches))
        results["with mask + keypoints"].append(throughput(labelled, args.batches))
    median = {k: sorted(v)[len(v) // 2] for k, v in results.items()}
    reference = median["image only"]
    print(f"\n{'mapper':<24} {'images/s':>10} {'ratio':>7}   (256x128, batch 64, {args.workers} workers, median of {args.rounds})")
    for name, value in median.items():
        print(f"{name:<24} {value:10.1f} {value / reference:7.3f}")
    print("target: with mask + keypoints >= 0.800 x image only")


if __name__ == "__main__":
    main()
