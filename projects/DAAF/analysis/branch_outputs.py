#!/usr/bin/env python
"""What the training-only branches of a trained DAAF model predict at inference (the paper's
Figs. 7-8): per crop, the person mask of HAB and the keypoint heatmaps of each PAB group.
(tools/visualize_attention.py --branches draws the same next to the attention maps.) With --pck N
it also measures how well the PAB heatmap peaks find the keypoints: PCK@--alpha on the first N
(0: all) query crops of DATASETS.TEST[0] against their label file.

    python projects/DAAF/analysis/branch_outputs.py --config-file configs/Synthetic/daaf_trinet_R18.yaml \
        --input 'datasets/SyntheticPersons/query/*.jpg' --output branch_outputs.png \
        MODEL.WEIGHTS output/synthetic/daaf_trinet_R18/model_final.pth
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
    paths = list_image_files(args.input)[: args.num_images]
    model = load_inference_model(cfg, keep_branches=True)
    if not getattr(model, "branch_names", ()):
        raise UserError(f"{args.config_file}: this model has no attention branches; give the DAAF config the checkpoint was trained with")
    images = read_test_images(cfg, paths)
    maps = branch_predictions(model, images)
    save_image(args.output, draw_attention_grid(images, maps))
    print(f"{len(paths)} crops x [input, {', '.join(maps)}] drawn in {args.output}")
    if args.pck is not None:
        batch = labelled_query_batch(cfg, args.pck)
        pck = keypoint_pck(model, batch.images, batch.person_labels.keypoints, args.alpha)
        print(f"{cfg.DATASETS.TEST[0]} query ({len(batch.images)} crops): {format_pck(pck, args.alpha)}")


def parser():
    p = inference_argument_parser(__doc__)
    p.add_argument("--input", nargs="+", required=True, help="folders, globs or image files")
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
