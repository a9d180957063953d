#!/usr/bin/env python
"""Loader throughput: image-only mapper (baselines) vs mapper with mask + keypoints (DAAF),
measured in the same run on the synthetic persons, 2 workers. Also shown: the same loaders as a
plain torch DataLoader (every batch tensor through its own shared-memory segment), to see what
ReIDDataLoader's way of moving batches out of the workers saves.

    python benchmarks/bench_loader.py [--batches 40] [--workers 2] [--rounds 3]

Target: with-labels throughput >= 0.8x image-only (both ReIDDataLoader, the loader training uses).
"""

import argparse
import tempfile
import time

from torch.utils.data import DataLoader

from daaf.config import get_cfg
from daaf.data import PERSON_LABEL_FIELDS, build_reid_train_loader, collate_reid_batch
from daaf.data.synthetic import SyntheticConfig, generate_synthetic_dataset


def throughput(cfg, input_fields, batches: int, plain: bool = False) -> float:
    loader = build_reid_train_loader(cfg, input_fields=input_fields)
    if plain:
        loader = DataLoader(
            loader.dataset,
            batch_sampler=loader.batch_sampler,
            num_workers=loader.num_workers,
            collate_fn=collate_reid_batch,
            worker_init_fn=loader.worker_init_fn,
        )
    iterator = iter(loader)
    for _ in range(5):  # worker start-up
        next(iterator)
    start = time.perf_counter()
    images = 0
    for _ in range(batches):
        images += len(next(iterator))
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
    cfg.merge_from_list(
        [
            "DATASETS.ROOT",
            root,
            "DATASETS.TRAIN",
            "('SyntheticPersons',)",
            "INPUT.SIZE_TRAIN",
            "[256, 128]",
            "INPUT.FLIP.ENABLED",
            "True",
            "INPUT.PADDING.ENABLED",
            "True",
            "INPUT.REA.ENABLED",
            "True",
            "DATALOADER.NUM_WORKERS",
            str(args.workers),
            "SOLVER.IMS_PER_BATCH",
            "64",
            "SEED",
            "0",
        ]
    )
    runs = {
        ("image only", "ReIDDataLoader"): ((), False),
        ("with mask + keypoints", "ReIDDataLoader"): (PERSON_LABEL_FIELDS, False),
        ("image only", "plain DataLoader"): ((), True),
        ("with mask + keypoints", "plain DataLoader"): (PERSON_LABEL_FIELDS, True),
    }
    results = {key: [] for key in runs}
    for _ in range(args.rounds):
        for key, (input_fields, plain) in runs.items():
            results[key].append(throughput(cfg, input_fields, args.batches, plain))
    median = {k: sorted(v)[len(v) // 2] for k, v in results.items()}
    reference = median[("image only", "ReIDDataLoader")]
    print(
        f"\n{'mapper':<24} {'loader':<18} {'images/s':>10} {'ratio':>7}   (256x128, batch 64, {args.workers} workers, median of {args.rounds})"
    )
    for (mapper, loader), value in median.items():
        print(f"{mapper:<24} {loader:<18} {value:10.1f} {value / reference:7.3f}")
    print("ratio: against image only with ReIDDataLoader. target: with mask + keypoints >= 0.800 x image only (ReIDDataLoader)")


if __name__ == "__main__":
    main()
