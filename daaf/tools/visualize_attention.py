"""What a trained model looks at, as a picture: per image a row with the image, the holistic
attention map (HAM: every embedding component) and, for a DAAF model with PAB, one partial attention
map per channel group (PAM), at --stage (default conv1, before max-pool, as in the paper). --method
paper (default) computes the paper's maps (Eqs. 5-8: channel mean of |gradient x activation|,
averaged over the components); --method grad-cam standard Grad-CAM. With --branches also the person
mask HAB predicts and the keypoint heatmaps of each PAB group (Figs. 7-8 of the paper; the branches
are training-only, so this needs the DAAF checkpoint).

    python tools/visualize_attention.py --config-file configs/Synthetic/daaf_trinet_R18.yaml \
        --input 'datasets/SyntheticPersons/query/*.jpg' --num-images 6 --branches \
        --output attention.png MODEL.WEIGHTS output/synthetic/daaf_trinet_R18/model_final.pth
"""

import sys

import torch

from daaf.analysis.attention_maps import ATTENTION_LAYERS, ATTENTION_MAP_METHODS, attention_figure
from daaf.data.image_list import list_image_files, read_test_images
from daaf.engine import inference_argument_parser, inference_config, load_inference_model, positive_int, run_reporting_user_errors
from daaf.utils.visualization import save_image


def main(args):
    cfg = inference_config(args.config_file, args.opts)
    paths = list_image_files(args.input)[: args.num_images]
    model = load_inference_model(cfg, keep_branches=True)
    grid, names = attention_figure(model, read_test_images(cfg, paths), stage=args.stage, branches=args.branches, method=args.method)
    save_image(args.output, grid)
    print(f"{len(paths)} images x [{', '.join(['input'] + names)}] drawn in {args.output}")


def parser():
    p = inference_argument_parser(__doc__)
    p.add_argument("--input", nargs="+", required=True, help="folders, globs or image files")
    p.add_argument("--num-images", type=positive_int, default=8, help="the first N images found")
    p.add_argument("--stage", default="conv1", choices=ATTENTION_LAYERS, help="backbone layer of the maps (conv1: the paper's)")
    p.add_argument("--method", default="paper", choices=list(ATTENTION_MAP_METHODS), help="the paper's maps or standard Grad-CAM")
    p.add_argument("--branches", action="store_true", help="also draw what HAB and PAB predict")
    p.add_argument("--output", default="attention.png")
    return p


def cli() -> int:
    """The command line (``daaf-visualize-attention``, ``python -m daaf.tools.visualize_attention``, ``python tools/visualize_attention.py``); the exit code."""
    torch.set_grad_enabled(True)
    return run_reporting_user_errors(main, parser().parse_args()) or 0


if __name__ == "__main__":
    sys.exit(cli())
