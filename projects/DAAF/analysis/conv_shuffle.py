#!/usr/bin/env python
"""The 1x1-convolution shuffle experiment (our reading of the paper's Figs. 9-10): is each PAB
channel group of the final feature map really responsible for its own body parts?

Each channel group i of the final map is decoded (by the shared decoder) and read by the 1x1
convolution of every group j, trained to output group j's keypoint heatmaps. Entry (i, j) of the
matrix is the share of group j's visible keypoints whose predicted peak lies within --alpha x the
crop height of the true keypoint. The diagonal (i = j) is what the trained branch predicts; if the
groups are decoupled, a conv fed with another group's channels (off-diagonal) fails. Writes the
matrix as a picture and a .npz, and a grid of the shuffled heatmaps of one crop.

    python projects/DAAF/analysis/conv_shuffle.py --config-file configs/Synthetic/daaf_trinet_R18.yaml \
        --output-dir output/synthetic/conv_shuffle MODEL.WEIGHTS output/synthetic/daaf_trinet_R18/model_final.pth
"""

import os
import sys

import numpy as np
import torch

from daaf.analysis.branch_outputs import heatmap_peak_hits, labelled_query_batch
from daaf.engine import inference_argument_parser, inference_config, load_inference_model, positive_int, run_reporting_user_errors
from daaf.utils.errors import UserError


def _shuffle_branch(model):
    """The branch whose per-group predictors the shuffle swaps: the one with keypoint heatmaps
    and cross-group predictions (DAAF's keypoint PAB)."""
    for name in getattr(model, "branch_names", ()):
        branch = model.branch(name)
        if getattr(branch, "predicts_keypoints", False) and hasattr(branch, "cross_group_predictions"):
            return branch
    raise UserError("the conv shuffle needs a model with a keypoint PAB branch (a DAAF config and checkpoint)")


@torch.no_grad()
def conv_shuffle_matrix(model, images: torch.Tensor, keypoints: torch.Tensor, alpha: float = 0.1):
    """(G, G) matrix M[i, j]: PCK@alpha of group j's keypoints predicted by group j's 1x1 conv from
    the decoded channels of group i; and the (G, G) list of predicted maps (B, n_j, h, w).

    images: (B, 3, H, W) uint8; keypoints: (B, 17, 3) [x, y, v] in image pixels.
    """
    branch = _shuffle_branch(model)
    model.eval()
    features = model.backbone(model.preprocess_image(images))
    groups = branch.groups
    maps = [[m.float().cpu() for m in row] for row in branch.cross_group_predictions(features)]
    matrix = np.full((len(groups), len(groups)), np.nan)
    for j, group in enumerate(groups):
        for i in range(len(groups)):
            hits, visible = heatmap_peak_hits(maps[i][j], keypoints[:, group], images.shape[-2:], alpha)
            if visible.any():
                matrix[i, j] = float(hits.sum() / visible.sum())
    return matrix, maps


def plot_matrix(matrix: np.ndarray, path: str, group_names) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from daaf.utils.file_io import atomic_write

    fig, ax = plt.subplots(figsize=(5, 4.4), dpi=100)
    image = ax.imshow(matrix, vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(group_names)), group_names, rotation=45, ha="right")
    ax.set_yticks(range(len(group_names)), group_names)
    ax.set_xlabel("1x1 conv (and target) of group j")
    ax.set_ylabel("channels of group i")
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", color="white" if value < 0.6 else "black", fontsize=8)
    fig.colorbar(image, ax=ax, label="PCK")
    ax.set_title("PAB 1x1-conv shuffle")
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png")
    plt.close(fig)


def main(args):
    from daaf.analysis.attention_maps import draw_attention_grid
    from daaf.utils.file_io import atomic_write
    from daaf.utils.visualization import save_image

    cfg = inference_config(args.config_file, args.opts)
    model = load_inference_model(cfg, keep_branches=True)
    batch = labelled_query_batch(cfg, args.num_images)
    matrix, maps = conv_shuffle_matrix(model, batch.images, batch.person_labels.keypoints, args.alpha)
    os.makedirs(args.output_dir, exist_ok=True)
    names = _shuffle_branch(model).group_names
    plot_matrix(matrix, os.path.join(args.output_dir, "conv_shuffle_matrix.png"), names)
    with atomic_write(os.path.join(args.output_dir, "conv_shuffle.npz"), "wb") as f:
        np.savez(f, matrix=matrix, groups=np.array(names))
    first = {f"ch{i}>conv{j}": maps[i][j][:1] for i in range(len(maps)) for j in range(len(maps))}
    save_image(os.path.join(args.output_dir, "conv_shuffle_maps.png"), draw_attention_grid(batch.images[:1], first))
    diagonal, off = np.nanmean(np.diag(matrix)), np.nanmean(matrix[~np.eye(len(matrix), dtype=bool)])
    print(f"PCK@{args.alpha:g}: own channels {diagonal:.3f}, other groups' channels {off:.3f} ({len(batch.images)} crops)")
    print(f"Pictures and numbers in {args.output_dir}")


def parser():
    p = inference_argument_parser(__doc__)
    p.add_argument("--num-images", type=positive_int, default=64, help="query crops (with labels) to measure on")
    p.add_argument("--alpha", type=float, default=0.1, help="PCK threshold, x the image height")
    p.add_argument("--output-dir", default="output/conv_shuffle")
    return p


if __name__ == "__main__":
    sys.exit(run_reporting_user_errors(main, parser().parse_args()) or 0)
