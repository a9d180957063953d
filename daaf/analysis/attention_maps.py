"""What a model looks at: the DAAF paper's attention maps (holistic HAM and partial PAM per channel
group, Eqs. 5-8) or standard Grad-CAM, and the picture that shows them (with, for a DAAF model,
what its branches predict: :mod:`daaf.analysis.branch_outputs`). The channel groups are those the
network's branches declare (``ReIDNetwork.channel_groups``: PAB's keypoint groups)."""

from typing import Dict, List, Optional

import numpy as np
import torch
from tqdm import tqdm

from daaf.evaluation import inference_context
from daaf.utils.comm import unwrap_model
from daaf.utils.errors import UserError
from daaf.utils.visualization import colour_scale_panel, image_grid, label_panel, overlay_heatmap

from .branch_outputs import branch_predictions

__all__ = [
    "grad_cam_from_weights",
    "stage_channel_gradients",
    "grad_cam_maps",
    "mean_gradient_times_input",
    "paper_attention_maps",
    "ATTENTION_MAP_METHODS",
    "ATTENTION_LAYERS",
    "draw_attention_grid",
    "map_correlation",
    "attention_figure",
]


def grad_cam_from_weights(weights: torch.Tensor, activations: torch.Tensor) -> torch.Tensor:
    """Sum over d of ReLU(sum_c weights[b, d, c] * A[b, c]): (B, D, C) weights, (B, C, h, w)
    activations -> (B, h, w)."""
    return torch.einsum("bdc,bchw->bdhw", weights, activations).relu().sum(1)


# Layers that are not a stage output of the backbone, by the module that makes them in the project's
# ResNet and in the detectron2 adapter. "conv1" is the paper's A: the stride-2 map before max-pool.
# detectron2's stem applies its ReLU functionally, so there it is the map before the ReLU; the paper's
# maps are the same either way (where ReLU zeroes A it also zeroes dx/dA, so |dx/dA * A| agrees).
_LAYER_MODULES = {"conv1": ("stem.2", "body.stem.conv1")}
ATTENTION_LAYERS = ("conv1", "stem", "res2", "res3", "res4", "res5")


def _layer_module(backbone, layer: str):
    modules = dict(backbone.named_modules())
    for name in _LAYER_MODULES.get(layer, (layer, f"body.{layer}")):
        if name in modules:
            return modules[name]
    raise UserError(f"--stage: no module of the backbone makes '{layer}' (expected one of {', '.join(ATTENTION_LAYERS)})")


def _channel_groups(model) -> list:
    return model.channel_groups() if hasattr(model, "channel_groups") else []


def _attention_targets(model):
    """features -> {"holistic": test embedding (B, D), "group{g}": spatial mean of the channels of
    the network's channel group g (B, |S_g|)} (no groups for a network without them)."""
    groups = _channel_groups(model)

    def targets(features):
        out = {"holistic": model.heads(features[model.head_in_feature])}
        for g, group in enumerate(groups):
            out[f"group{g}"] = features[group.stage][:, group.channels].mean(dim=(-2, -1))
        return out

    return targets


def stage_channel_gradients(model, images: torch.Tensor, stage: str, targets_fn, chunk: int = 16):
    """For the activations A (B, C, h, w) of backbone layer ``stage``: A and, for each (B, D) target
    that ``targets_fn(features)`` returns by name, G[b, d, c] = sum over h, w of d target[b, d] / dA[b, c].

    Forward-mode differentiation: a spatially constant shift of channel c of A is one tangent, so
    C forward passes (``chunk`` channels at a time, as a replicated batch) give the gradients of
    every target at once, where reverse mode needs one backward per target component. Samples
    must not interact (the model in eval mode).
    """
    import torch.autograd.forward_ad as forward_ad

    module = _layer_module(model.backbone, stage)
    x = model.preprocess_image(images)
    captured = []
    handle = module.register_forward_hook(lambda mod, inputs, output: captured.append(output.clone()))
    try:
        with torch.no_grad():
            model.backbone(x)
    finally:
        handle.remove()
    activations = captured[0]
    b, c = activations.shape[:2]
    gradients = {}
    for start in range(0, c, chunk):
        k = min(chunk, c - start)
        tangent = torch.zeros(k, *activations.shape, device=activations.device, dtype=activations.dtype)
        tangent[torch.arange(k), :, start + torch.arange(k)] = 1.0
        tangent = tangent.flatten(0, 1)
        handle = module.register_forward_hook(lambda mod, inputs, output, tangent=tangent: forward_ad.make_dual(output, tangent))
        try:
            with forward_ad.dual_level(), torch.no_grad():
                outputs = targets_fn(model.backbone(x.repeat(k, 1, 1, 1)))
                for name, target in outputs.items():
                    jvp = forward_ad.unpack_dual(target).tangent  # (k * B, D)
                    gradients.setdefault(name, []).append(jvp.reshape(k, b, -1).permute(1, 2, 0))
        finally:
            handle.remove()
    return activations, {name: torch.cat(parts, dim=2) for name, parts in gradients.items()}


def grad_cam_maps(model, images: torch.Tensor, stage: str = "conv1") -> Dict[str, torch.Tensor]:
    """Standard Grad-CAM maps (B, h, w) at backbone layer ``stage``: "holistic" from the test
    embedding and, for a network with channel groups, "group{g}" from the average-pooled channels of
    group g (exactly :func:`grad_cam` of those targets, computed by :func:`stage_channel_gradients`)."""
    model = unwrap_model(model)
    with inference_context(model):
        activations, gradients = stage_channel_gradients(model, images, stage, _attention_targets(model))
    area = activations.shape[-2] * activations.shape[-1]
    return {name: grad_cam_from_weights(g / area, activations).cpu() for name, g in gradients.items()}


def mean_gradient_times_input(targets: torch.Tensor, activations: torch.Tensor, max_elements: int = 2**25, progress=None) -> torch.Tensor:
    """The paper's attention map of (B, N) targets over (B, C, h, w) activations A (Eqs. 5-8):
    (1/N) sum_n L^n with L^n = (1/C) sum_c |d targets[:, n] / dA_c (*) A_c| -> (B, h, w).

    One batched backward per chunk of components, the chunk sized so that its gradients hold at most
    ``max_elements`` numbers; samples must not interact (the model in eval mode). ``progress`` (a
    tqdm bar, optional) advances by the number of components done."""
    b, n = targets.shape
    chunk = max(1, min(n, max_elements // activations.numel()))
    eye = torch.eye(n, device=targets.device, dtype=targets.dtype)
    detached = activations.detach()
    total = torch.zeros(b, *activations.shape[-2:], device=activations.device, dtype=activations.dtype)
    for start in range(0, n, chunk):
        rows = eye[start : start + chunk]  # (k, N)
        grad_outputs = rows[:, None, :].expand(len(rows), b, n)
        (grads,) = torch.autograd.grad(targets, activations, grad_outputs, retain_graph=True, is_grads_batched=True)
        total += (grads * detached).abs().mean(dim=2).sum(dim=0)  # (k, B, C, h, w) -> (B, h, w)
        if progress is not None:
            progress.update(len(rows))
    return total / n


def paper_attention_maps(model, images: torch.Tensor, stage: str = "conv1") -> Dict[str, torch.Tensor]:
    """The paper's attention maps (B, h, w) at backbone layer ``stage`` (the paper's is conv1):
    "holistic" (HAM, Eqs. 5-6) from the test embedding and, for a network with channel groups,
    "group{g}" (PAM_g, Eqs. 7-8) from the global-average-pooled channels of group g."""
    model = unwrap_model(model)
    captured = []
    handle = _layer_module(model.backbone, stage).register_forward_hook(lambda mod, inputs, output: captured.append(output))
    try:
        with inference_context(model), torch.enable_grad():
            features = model.backbone(model.preprocess_image(images))
            targets = _attention_targets(model)(features)
            # one backward per embedding / pooled channel component: tens of seconds on a CPU
            with tqdm(total=sum(t.shape[1] for t in targets.values()), desc="attention maps", unit="gradient", leave=True) as bar:
                return {name: mean_gradient_times_input(t, captured[0], progress=bar).detach().cpu() for name, t in targets.items()}
    finally:
        handle.remove()


# How the attention tool and the demo compute their maps, by the name given to --method.
ATTENTION_MAP_METHODS = {"paper": paper_attention_maps, "grad-cam": grad_cam_maps}
_MAP_LABELS = {"paper": ("HAM", "PAM"), "grad-cam": ("CAM", "CAM")}


def draw_attention_grid(
    images: torch.Tensor, maps: Dict[str, torch.Tensor], max_columns: Optional[int] = None, notes: Optional[Dict[str, List[str]]] = None
) -> np.ndarray:
    """One row per image: the image, then each map (B, h, w) or (B, C, h, w) (max over C) overlaid
    on it, labelled with its name (and ``notes[name][b]`` if given) and, at the bottom, its minimum and
    maximum (each map is coloured from its own minimum to its maximum), and last the colour key. Returns
    an RGB grid."""
    rows: List[List[np.ndarray]] = []
    names = list(maps)[: max_columns or None]
    for i in range(len(images)):
        image = images[i].permute(1, 2, 0).cpu().numpy().astype(np.uint8)
        image = np.ascontiguousarray(np.kron(image, np.ones((2, 2, 1), dtype=np.uint8))) if image.shape[0] < 160 else image
        row = [label_panel(image, "input")]
        for name in names:
            m = maps[name][i]
            m = (m.amax(dim=0) if m.dim() == 3 else m).float().numpy()
            title = f"{name} {notes[name][i]}" if notes and name in notes else name
            row.append(label_panel(overlay_heatmap(image, m), title, footer=f"min {m.min():.3g} max {m.max():.3g}"))
        row.append(colour_scale_panel(*image.shape[:2]))
        rows.append(row)
    return image_grid(rows)


def attention_figure(model, images: torch.Tensor, stage: str = "conv1", branches: bool = False, method: str = "paper"):
    """The attention picture of uint8 images (B, 3, H, W): per image a row with the image, the
    holistic and per-group attention maps at ``stage`` by ``method`` (a name of
    ``ATTENTION_MAP_METHODS``) and, with ``branches``, the HAB / PAB predictions. Returns (RGB grid,
    names of the map columns)."""
    if method not in ATTENTION_MAP_METHODS:
        raise UserError(f"--method: unknown attention map method '{method}' (expected one of {', '.join(ATTENTION_MAP_METHODS)})")
    if branches and not getattr(unwrap_model(model), "branch_names", ()):  # before the maps' work
        raise UserError("--branches: this model has no attention branches (give the DAAF config and checkpoint)")
    holistic, partial = _MAP_LABELS[method]
    group_names = [g.name for g in _channel_groups(unwrap_model(model))]
    computed = ATTENTION_MAP_METHODS[method](model, images, stage)
    maps = {(holistic if k == "holistic" else f"{partial} {group_names[int(k[len('group') :])]}"): v for k, v in computed.items()}
    # how much a partial map says beyond the holistic one: their correlation over the pixels
    notes = {name: [f"r={r:.2f}" for r in map_correlation(m, maps[holistic])] for name, m in maps.items() if name != holistic}
    if branches:
        maps.update(branch_predictions(model, images))
    return draw_attention_grid(images, maps, notes=notes), list(maps)


def map_correlation(a: torch.Tensor, b: torch.Tensor) -> List[float]:
    """Pearson correlation over the pixels of each pair of maps (B, h, w), (B, h, w) -> B floats."""
    a, b = a.flatten(1).double(), b.flatten(1).double()
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return (a * b).sum(1).div((a.norm(dim=1) * b.norm(dim=1)).clamp(min=1e-30)).tolist()
