"""The slow reference for the attention tools' forward-mode Grad-CAM: reverse-mode Grad-CAM, one
batched backward per chunk of target components."""

import torch

from daaf.analysis.attention_maps import grad_cam_from_weights


def grad_cam(targets: torch.Tensor, activations: torch.Tensor, chunk: int = 32) -> torch.Tensor:
    """Grad-CAM summed over every component of ``targets`` (reverse mode; any targets).

    For each component d of the (B, D) targets: weights = spatial mean of d(target_d)/dA over the
    (B, C, h, w) activations A; map_d = ReLU(sum_c weight_c * A_c); the result (B, h, w) is the
    sum of map_d over d. Gradients of ``chunk`` components are taken in one batched backward.
    """
    b, d = targets.shape
    eye = torch.eye(d, device=targets.device, dtype=targets.dtype)
    weights = []
    for start in range(0, d, chunk):
        rows = eye[start : start + chunk]  # (k, D)
        grad_outputs = rows[:, None, :].expand(len(rows), b, d)
        (grads,) = torch.autograd.grad(targets, activations, grad_outputs, retain_graph=True, is_grads_batched=True)
        weights.append(grads.mean(dim=(-2, -1)).permute(1, 0, 2))  # (B, k, C)
    return grad_cam_from_weights(torch.cat(weights, dim=1), activations.detach())
