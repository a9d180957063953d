#!/usr/bin/env python
"""The 1x1-convolution shuffle experiment (the paper's Figs. 9-10): does a PAB output follow its
input channel group, or the 1x1 convolution that reads it?

Each channel group i of the final map is decoded (by the shared decoder) and read by the 1x1
convolution of every group j (trained to output group j's keypoint heatmaps). For each pair (i, j)
the tool asks where the peaks of those maps land: within --alpha x the crop height of one of group
i's visible keypoints (the output follows the channels: the paper's claim), or of group j's (it
follows the conv). The diagonal (i = j) is what the trained branch predicts. Printed: both matrices
and one summary number, the share of the off-diagonal peaks landing on exactly one of the two groups
that land on the channels' group i (1: the channels decide, 0: the conv decides, 0.5: neither).
Writes both matrices as a picture and a .npz, and a grid of the shuffled heatmaps of one crop.

    python projects/DAAF/analysis/conv_shuffle.py --config-file configs/Synthetic/daaf_trinet_R18.yaml \
        --output-dir output/synthetic/conv_shuffle MODEL.WEIGHTS output/synthetic/daaf_trinet_R18/model_final.pth
"""

import os
import sys

import numpy as np
import torch

from daaf.analysis.branch_outputs import PCK_ALPHA, heatmap_peaks, labelled_query_batch
from daaf.engine import (
    finite_float,
    inference_argument_parser,
    inference_config,
    load_inference_model,
    positive_int,
    run_reporting_user_errors,
)
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
def conv_shuffle_maps(model, images: torch.Tensor):
    """maps[i][j]: the (B, n_j, h, w) heatmaps of group j's 1x1 conv fed with the decoded channels
    of group i, for uint8 images (B, 3, H, W); and the branch's keypoint groups."""
    branch = _shuffle_branch(model)
    model.eval()
    features = model.backbone(model.preprocess_image(images))
    return [[m.float().cpu() for m in row] for row in branch.cross_group_predictions(features)], branch.groups


def _near_group(peaks: torch.Tensor, keypoints: torch.Tensor, radius: float) -> torch.Tensor:
    """(B, K) whether each peak (B, K, 2) lies within ``radius`` of one of the visible keypoints (B, N, 3)."""
    distance = torch.cdist(peaks, keypoints[..., :2])  # (B, K, N)
    return ((distance <= radius) & (keypoints[:, None, :, 2] > 0)).any(dim=-1)


def peak_landing(maps, keypoints: torch.Tensor, groups, image_size, alpha: float = PCK_ALPHA) -> dict:
    """Where the peaks of the shuffled maps (``maps[i][j]``: conv j on group i's channels, (B, n_j,
    h, w)) land, for keypoints (B, 17, 3) [x, y, v] in pixels of ``image_size`` (H, W):
    "on_channels" (G, G), the share of the peaks within alpha x H of a visible keypoint of group i;
    "on_conv" (G, G), of group j; "follows_channels", of the off-diagonal peaks near exactly one of
    the two groups, the share near group i (NaN when there is none)."""
    radius = alpha * image_size[0]
    truth = keypoints.float().cpu()
    g = len(groups)
    on_channels, on_conv = np.zeros((g, g)), np.zeros((g, g))
    only_channels = only_conv = 0
    for i in range(g):
        for j in range(g):
            peaks = heatmap_peaks(maps[i][j], image_size)
            near_i, near_j = _near_group(peaks, truth[:, groups[i]], radius), _near_group(peaks, truth[:, groups[j]], radius)
            on_channels[i, j], on_conv[i, j] = float(near_i.float().mean()), float(near_j.float().mean())
            if i != j:
                only_channels += int((near_i & ~near_j).sum())
                only_conv += int((near_j & ~near_i).sum())
    decided = only_channels + only_conv
    return {"on_channels": on_channels, "on_conv": on_conv, "follows_channels": only_channels / decided if decided else float("nan")}


def plot_matrices(landing: dict, path: str, group_names) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from daaf.utils.file_io import atomic_write

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.8), dpi=100)
    titles = {
        "on_channels": "peaks on group i's keypoints\n(the output follows the channels)",
        "on_conv": "peaks on group j's keypoints\n(the output follows the conv)",
    }
    for ax, (key, title) in zip(axes, titles.items()):
        image = ax.imshow(landing[key], vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(len(group_names)), group_names, rotation=45, ha="right")
        ax.set_yticks(range(len(group_names)), group_names)
        ax.set_xlabel("1x1 conv of group j")
        ax.set_ylabel("channels of group i")
        for (i, j), value in np.ndenumerate(landing[key]):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", color="white" if value < 0.6 else "black", fontsize=8)
        ax.set_title(title, fontsize=10)
        fig.colorbar(image, ax=ax, label="share of peaks", fraction=0.046)
    fig.suptitle(
        f"PAB 1x1-conv shuffle: {landing['follows_channels']:.2f} of the decided off-diagonal peaks follow the channels", fontsize=10
    )
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png")
    plt.close(fig)


def format_matrix(matrix: np.ndarray, names) -> str:
    width = max(len(n) for n in names)
    lines = [" " * width + " | " + " ".join(f"{n[:7]:>7}" for n in names)]
    lines += [f"{name:>{width}} | " + " ".join(f"{v:7.2f}" for v in row) for name, row in zip(names, matrix)]
    return "\n".join(lines)


def main(args):
    from daaf.analysis.attention_maps import draw_attention_grid
    from daaf.utils.file_io import atomic_write
    from daaf.utils.visualization import save_image

    cfg = inference_config(args.config_file, args.opts)
    model = load_inference_model(cfg, keep_branches=True)
    batch = labelled_query_batch(cfg, args.num_images)
    maps, groups = conv_shuffle_maps(model, batch.images)
    landing = peak_landing(maps, batch.person_labels.keypoints, groups, batch.images.shape[-2:], args.alpha)
    os.makedirs(args.output_dir, exist_ok=True)
    names = _shuffle_branch(model).group_names
    plot_matrices(landing, os.path.join(args.output_dir, "conv_shuffle_matrix.png"), names)
    with atomic_write(os.path.join(args.output_dir, "conv_shuffle.npz"), "wb") as f:
        np.savez(f, **landing, groups=np.array(names))
    first = {f"ch{i}>conv{j}": maps[i][j][:1] for i in range(len(maps)) for j in range(len(maps))}
    save_image(os.path.join(args.output_dir, "conv_shuffle_maps.png"), draw_attention_grid(batch.images[:1], first))
    print(f"Share of the peaks of conv j (columns) fed with group i's channels (rows), within {args.alpha:g} x the crop height of")
    print(f"group i's keypoints (the channels'):\n{format_matrix(landing['on_channels'], names)}")
    print(f"group j's keypoints (the conv's):\n{format_matrix(landing['on_conv'], names)}")
    print(
        f"Off-diagonal peaks near exactly one of the two groups: {landing['follows_channels']:.3f} follow the channels "
        f"(1: the channels decide, as the paper claims; 0: the conv decides) on {len(batch.images)} crops"
    )
    print(f"Pictures and numbers in {args.output_dir}")


def parser():
    p = inference_argument_parser(__doc__)
    p.add_argument("--num-images", type=positive_int, default=64, help="query crops (with labels) to measure on")
    p.add_argument("--alpha", type=finite_float, default=PCK_ALPHA, help="how near a keypoint a peak lands, x the crop height")
    p.add_argument("--output-dir", default="output/conv_shuffle")
    return p


if __name__ == "__main__":
    sys.exit(run_reporting_user_errors(main, parser().parse_args()) or 0)
