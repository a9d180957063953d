#!/usr/bin/env python
"""What the training-only branches of a trained DAAF model predict at inference (the paper's
Figs. 7-8): per crop, the person mask of HAB beside the label file's mask, and the keypoint
heatmaps of each PAB group. The crops are the first --num-images query crops of DATASETS.TEST[0]
with their label file, or, with --input, your own images (they have no label mask to show).
(tools/visualize_attention.py --branches draws the predictions next to the attention maps.) With
--pck N it also measures how well the PAB heatmap peaks find the keypoints: PCK@--alpha on the
first N (0: all) labelled query crops.

    python projects/DAAF/analysis/branch_outputs.py --config-file configs/Synthetic/daaf_trinet_R18.yaml \
        --output branch_outputs.png MODEL.WEIGHTS output/synthetic/daaf_trinet_R18/model_final.pth
"""

import sys

from daaf.analysis.attention_maps import draw_attention_grid
from daaf.analysis.branch_outputs import PCK_ALPHA, branch_predictions, format_pck, keypoint_pck, labelled_query_batch
from daaf.data.image_list import list_image_files, read_test_images
from daaf.engine import (
    finite_float,
    inference_argument_parser,
    inference_config,
    load_inference_model,
    non_negative_int,
    positive_int,
    run_reporting_user_errors,
)
from daaf.utils.errors import UserError
from daaf.utils.visualization import save_image


def main(args):
    cfg = inference_config(args.config_file, args.opts)
    model = load_inference_model(cfg, keep_branches=True)
    if not getattr(model, "branch_names", ()):
        raise UserError(f"{args.config_file}: this model has no attention branches; give the DAAF config the checkpoint was trained with")
    if args.input:
        images, masks = read_test_images(cfg, list_image_files(args.input)[: args.num_images]), None
    else:
        batch = labelled_query_batch(cfg, args.num_images)
        images, masks = batch.images, batch.person_labels.masks
    maps = branch_predictions(model, images, label_masks=masks)
    save_image(args.output, draw_attention_grid(images, maps))
    print(f"{len(images)} crops x [input, {', '.join(maps)}] drawn in {args.output}")
    if args.pck is not None:
        batch = labelled_query_batch(cfg, args.pck)
        pck = keypoint_pck(model, batch.images, batch.person_labels.keypoints, args.alpha)
        print(f"{cfg.DATASETS.TEST[0]} query ({len(batch.images)} crops): {format_pck(pck, args.alpha)}")


def parser():
    p = inference_argument_parser(__doc__)
    p.add_argument("--input", nargs="+", help="folders, globs or image files (default: the labelled query crops of DATASETS.TEST[0])")
    p.add_argument("--num-images", type=positive_int, default=8)
    p.add_argument("--output", default="branch_outputs.png")
    p.add_argument(
        "--pck",
        type=non_negative_int,
        metavar="N",
        help="also print the PCK of the predicted keypoint heatmaps' peaks on N labelled query crops (0: all)",
    )
    p.add_argument("--alpha", type=finite_float, default=PCK_ALPHA, help="PCK threshold, x the crop height")
    return p


if __name__ == "__main__":
    sys.exit(run_reporting_user_errors(main, parser().parse_args()) or 0)
