#!/usr/bin/env python
"""Labelling throughput of the detectron2 labeler (Keypoint R-CNN + Mask R-CNN, R50-FPN) on CPU:
batched vs one image at a time (what DefaultPredictor does), at two test input sizes, measured in
the same run on synthetic 128x64 crops. Needs detectron2; random weights (the speed does not
depend on them; the detection heads are set to return confident persons so that the keypoint and
mask heads do their full work).

    python benchmarks/bench_pseudo_label.py [--images 16] [--sizes 256 384] [--batch 8]
"""

import argparse
import sys
import tempfile
import time

import torch

from daaf.data import get_dataset, read_image
from daaf.data.synthetic import SyntheticConfig, generate_synthetic_dataset


def detecting_model(config: str):
    from daaf.pseudo_label import build_detectron2_model

    model = build_detectron2_model(config, None, "cpu", 0.5, "benchmark")
    with torch.no_grad():
        model.proposal_generator.rpn_head.anchor_deltas.weight.zero_()
        predictor = model.roi_heads.box_predictor
        predictor.bbox_pred.weight.zero_(), predictor.cls_score.weight.zero_()
        predictor.cls_score.bias.fill_(-5.0)
        predictor.cls_score.bias[0] = 5.0
        for head, layer in (("keypoint_head", "score_lowres"), ("mask_head", "predictor")):
            if hasattr(model.roi_heads, head):
                getattr(getattr(model.roi_heads, head), layer).weight.zero_()
    return model


def images_per_second(labeler, images, batch_size: int) -> float:
    labeler(images[:batch_size])  # warm-up
    start = time.perf_counter()
    for i in range(0, len(images), batch_size):
        labeler(images[i : i + batch_size])
    return len(images) / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 384], help="PSEUDO_LABEL.MIN_SIZE_TEST values")
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    try:
        from daaf.pseudo_label import Detectron2Labeler
    except ImportError as e:
        sys.exit(f"error: {e}")
    from daaf.utils.detectron2_zoo import require_detectron2

    require_detectron2("benchmarks/bench_pseudo_label.py")
    root = tempfile.mkdtemp(prefix="daaf_bench_")
    generate_synthetic_dataset(root, SyntheticConfig(num_train_ids=10, num_test_ids=10), progress=False)
    records = get_dataset("SyntheticPersons", root, log=False).train[: args.images]
    images = [read_image(r["file_name"]) for r in records]
    torch.manual_seed(0)
    keypoint_model = detecting_model("COCO-Keypoints/keypoint_rcnn_R_50_FPN_3x.yaml")
    mask_model = detecting_model("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml")
    print(
        f"\n{'short edge':>10} {'mode':<22} {'images/s':>9} {'ratio':>7}   ({len(images)} crops 128x64, {torch.get_num_threads()} threads)"
    )
    for size in args.sizes:
        labeler = Detectron2Labeler(keypoint_model=keypoint_model, mask_model=mask_model, min_size_test=size)
        single = images_per_second(labeler, images, 1)
        batched = images_per_second(labeler, images, args.batch)
        print(f"{size:>10} {'one image at a time':<22} {single:9.2f} {1.0:7.3f}")
        print(f"{size:>10} {f'batches of {args.batch}':<22} {batched:9.2f} {batched / single:7.3f}")


if __name__ == "__main__":
    main()
