"""What a model looks at: Grad-CAM attention maps (holistic and per PAB group) and the HAB mask /
PAB heatmaps a trained DAAF model predicts (the paper's Figs. 7-8)."""

from typing import Dict, List, Optional

import numpy as np
import torch

from .errors import UserError
from .visualization import image_grid, label_panel, overlay_heatmap

__all__ = ["grad_cam", "holistic_and_partial_cams", "branch_predictions", "draw_attention_grid", "attention_figure"]


def grad_cam(targets: torch.Tensor, activations: torch.Tensor, chunk: int = 32) -> torch.Tensor:
    """Grad-CAM summed over every component of ``targets``.

    For each component d of the (B, D) targets: weights = spatial mean of d(target_d)/dA over the
    (B, C, h, w) activations A; map_d = ReLU(sum_c weight_c * A_c); the result (B, h, w) is the
    sum of map_d over d. Gradients of ``chunk`` components are taken in one batched backward.
    """
    b, d = targets.shape
    total = torch.zeros(b, *activations.shape[-2:], device=activations.device)
    eye = torch.eye(d, device=targets.device, dtype=targets.dtype)
    for start in range(0, d, chunk):
        rows = eye[start : start + chunk]  # (k, D)
        grad_outputs = rows[:, None, :].expand(len(rows), b, d)
        (grads,) = torch.autograd.grad(targets, activations, grad_outputs, retain_graph=True, is_grads_batched=True)
        weights = grads.mean(dim=(-2, -1))  # (k, B, C)
        maps = torch.einsum("kbc,bchw->kbhw", weights, activations.detach()).relu()
        total += maps.sum(0)
    return total


def holistic_and_partial_cams(model, images: torch.Tensor, stage: str = "stem") -> Dict[str, torch.Tensor]:
    """Grad-CAM maps (B, h, w) at backbone ``stage``: "holistic" from the test embedding and, for a
    model with a PAB branch, "group{g}" from the average-pooled channels of PAB group g."""
    model = getattr(model, "module", model)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            features = model.backbone(model.preprocess_image(images))
            if stage not in features:
                raise UserError(f"--stage: '{stage}' is not one of the backbone's stages {list(features)}")
            activations = features[stage]
            embedding = model.heads(features[model.head_in_feature])
            cams = {"holistic": grad_cam(embedding, activations)}
            pab = model.branches["PAB"] if "PAB" in getattr(model, "branches", {}) else None
            if pab is not None:
                final = features[pab.source]
                for g in range(len(pab.groups)):
                    pooled = final[:, pab.group_slice(g)].mean(dim=(-2, -1))
                    cams[f"group{g}"] = grad_cam(pooled, activations)
    finally:
        model.train(was_training)
    return {k: v.detach().cpu() for k, v in cams.items()}


@torch.no_grad()
def branch_predictions(model, images: torch.Tensor) -> Dict[str, torch.Tensor]:
    """What the training-only branches predict for uint8 images (B, 3, H, W): "HAB" (B, 1, h, w)
    person mask and, per PAB group g, "PAB g{g}" (B, n_g, h, w) heatmaps (or stripe images)."""
    model = getattr(model, "module", model)
    was_training = model.training
    model.eval()
    try:
        features = model.backbone(model.preprocess_image(images))
        out = {}
        for name, branch in getattr(model, "branches", {}).items():
            pred = branch.predict(features)
            if isinstance(pred, list):
                out.update({f"{name} g{g}": p.cpu() for g, p in enumerate(pred)})
            else:
                out[name] = pred.cpu()
    finally:
        model.train(was_training)
    return out


def draw_attention_grid(images: torch.Tensor, maps: Dict[str, torch.Tensor], max_columns: Optional[int] = None) -> np.ndarray:
    """One row per image: the image, then each map (B, h, w) or (B, C, h, w) (max over C) overlaid
    on it, labelled with its name. Returns an RGB grid."""
    rows: List[List[np.ndarray]] = []
    names = list(maps)[: max_columns or None]
    for i in range(len(images)):
        image = images[i].permute(1, 2, 0).cpu().numpy().astype(np.uint8)
        image = np.ascontiguousarray(np.kron(image, np.ones((2, 2, 1), dtype=np.uint8))) if image.shape[0] < 160 else image
        row = [label_panel(image, "input")]
        for name in names:
            m = maps[name][i]
            m = m.amax(dim=0) if m.dim() == 3 else m
            row.append(label_panel(overlay_heatmap(image, m.float().numpy()), name))
        rows.append(row)
    return image_grid(rows)


def attention_figure(model, images: torch.Tensor, stage: str = "stem", branches: bool = False):
    """The attention picture of uint8 images (B, 3, H, W): per image a row with the image, the
    holistic and per-group Grad-CAM maps at ``stage`` and, with ``branches``, the HAB / PAB
    predictions. Returns (RGB grid, names of the map columns)."""
    maps = {f"CAM {k}": v for k, v in holistic_and_partial_cams(model, images, stage).items()}
    if branches:
        predicted = branch_predictions(model, images)
        if not predicted:
            raise UserError("--branches: this model has no attention branches (give the DAAF config and checkpoint)")
        maps.update(predicted)
    return draw_attention_grid(images, maps), list(maps)
