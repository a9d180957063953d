"""Targets of the attention branches, made on the model's device inside the loss."""

import torch
import torch.nn.functional as F

__all__ = ["resize_masks", "keypoint_heatmaps", "part_image_targets", "masked_squared_error"]


def resize_masks(masks: torch.Tensor, size) -> torch.Tensor:
    """(B, H, W) 0/1 masks -> (B, 1, h, w) float 0/1 masks (nearest neighbour, stays binary)."""
    return F.interpolate(masks[:, None].float(), size=tuple(size), mode="nearest")


def keypoint_heatmaps(keypoints: torch.Tensor, input_size, output_size, sigma: float) -> torch.Tensor:
    """Gaussian heatmaps (B, K, h, w) for keypoints (B, K, 3) [x, y, v] given in input pixels.

    The peak is 1 at the keypoint (scaled to the output), ``sigma`` is in output pixels, and a
    keypoint with v = 0 (unknown / outside the crop) gives an all-zero map.
    """
    h, w = output_size
    scale_x, scale_y = w / input_size[1], h / input_size[0]
    xs = torch.arange(w, device=keypoints.device, dtype=torch.float32) + 0.5
    ys = torch.arange(h, device=keypoints.device, dtype=torch.float32) + 0.5
    # separable: exp(-(dx^2 + dy^2) / 2s^2) = exp(-dx^2 / 2s^2) * exp(-dy^2 / 2s^2)
    gx = torch.exp(-((xs - keypoints[..., 0:1] * scale_x) ** 2) / (2 * sigma**2))  # (B, K, w)
    gy = torch.exp(-((ys - keypoints[..., 1:2] * scale_y) ** 2) / (2 * sigma**2))  # (B, K, h)
    gy = gy * (keypoints[..., 2:3] > 0).float()
    return gy[..., :, None] * gx[..., None, :]


def part_image_targets(images: torch.Tensor, num_parts: int, output_size) -> torch.Tensor:
    """(B, 3, H, W) uint8 images -> (B, num_parts, 3, h, w): part g keeps the g-th of ``num_parts``
    horizontal stripes of the resized image in [0, 1], everything else 0 (DAAF's Table 5 ablation)."""
    resized = F.interpolate(images.float() / 255.0, size=tuple(output_size), mode="bilinear", align_corners=False)
    h = output_size[0]
    rows = torch.arange(h, device=images.device)
    stripe = (rows * num_parts // h)[None, :] == torch.arange(num_parts, device=images.device)[:, None]  # (P, h)
    return resized[:, None] * stripe[None, :, None, :, None].float()


def masked_squared_error(
    pred: torch.Tensor, target: torch.Tensor, keep: torch.Tensor, reduction: str, per_sample_maps: int = 1
) -> torch.Tensor:
    """Squared error between (B, ...) tensors over the samples where ``keep`` (B,) is True.

    "sum": sum over every element of a sample, mean over kept samples and ``per_sample_maps``
    (the paper's Eq. 2 with 1 map, Eq. 4 with K keypoint maps). "mean": mean over all elements
    of the kept samples (the released code). No kept sample: 0 that still depends on ``pred``.
    """
    if not keep.any():
        return pred.sum() * 0.0
    diff = (pred[keep] - target[keep]).pow(2)
    if reduction == "sum":
        return diff.sum() / (int(keep.sum()) * per_sample_maps)
    if reduction == "mean":
        return diff.mean()
    raise ValueError(f"LOSS_REDUCTION: expected 'sum' or 'mean', got '{reduction}'")
