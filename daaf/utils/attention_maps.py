"""What a model looks at: the paper's attention maps (holistic HAM and partial PAM per PAB group,
Eqs. 5-8) or standard Grad-CAM, and the HAB mask / PAB heatmaps a trained DAAF model predicts (the
paper's Figs. 7-8)."""

from typing import Dict, List, Optional

import numpy as np
import torch
from tqdm import tqdm

from daaf.evaluation.evaluator import inference_context

from .errors import UserError
from .visualization import colour_scale_panel, image_grid, label_panel, overlay_heatmap

__all__ = [
    "grad_cam",
    "grad_cam_from_weights",
    "stage_channel_gradients",
    "grad_cam_maps",
    "mean_gradient_times_input",
    "paper_attention_maps",
    "ATTENTION_MAP_METHODS",
    "ATTENTION_LAYERS",
    "branch_predictions",
    "PCK_ALPHA",
    "heatmap_peak_hits",
    "pab_keypoint_pck",
    "labelled_query_batch",
    "format_pck",
    "draw_attention_grid",
    "map_correlation",
    "attention_figure",
]


def grad_cam_from_weights(weights: torch.Tensor, activations: torch.Tensor) -> torch.Tensor:
    """Sum over d of ReLU(sum_c weights[b, d, c] * A[b, c]): (B, D, C) weights, (B, C, h, w)
    activations -> (B, h, w)."""
    return torch.einsum("bdc,bchw->bdhw", weights, activations).relu().sum(1)


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


def _attention_targets(model):
    """features -> {"holistic": test embedding (B, D), "group{g}": spatial mean of PAB group g's
    channels of the final map (B, |S_g|)} (no groups for a model without PAB)."""
    pab = model.branches["PAB"] if "PAB" in getattr(model, "branches", {}) else None

    def targets(features):
        out = {"holistic": model.heads(features[model.head_in_feature])}
        if pab is not None:
            final = features[pab.source]
            for g in range(len(pab.groups)):
                out[f"group{g}"] = final[:, pab.group_slice(g)].mean(dim=(-2, -1))
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
        handle = module.register_forward_hook(lambda mod, inputs, output: forward_ad.make_dual(output, tangent))
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
    embedding and, for a model with a PAB branch, "group{g}" from the average-pooled channels of PAB
    group g (exactly :func:`grad_cam` of those targets, computed by :func:`stage_channel_gradients`)."""
    model = getattr(model, "module", model)
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
    "holistic" (HAM, Eqs. 5-6) from the test embedding and, for a model with PAB, "group{g}" (PAM_g,
    Eqs. 7-8) from the global-average-pooled channels of group g of the final map."""
    model = getattr(model, "module", model)
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
_MAP_LABELS = {"paper": ("HAM", "PAM g"), "grad-cam": ("CAM holistic", "CAM group")}


@torch.no_grad()
def branch_predictions(model, images: torch.Tensor) -> Dict[str, torch.Tensor]:
    """What the training-only branches predict for uint8 images (B, 3, H, W): "HAB" (B, 1, h, w)
    person mask and, per PAB group g, "PAB g{g}" (B, n_g, h, w) heatmaps (or stripe images)."""
    model = getattr(model, "module", model)
    with inference_context(model):
        features = model.backbone(model.preprocess_image(images))
        out = {}
        for name, branch in getattr(model, "branches", {}).items():
            pred = branch.predict(features)
            if isinstance(pred, list):
                out.update({f"{name} g{g}": p.cpu() for g, p in enumerate(pred)})
            else:
                out[name] = pred.cpu()
    return out


PCK_ALPHA = 0.1  # the PCK threshold the tools report by default, x the crop height


def heatmap_peak_hits(heatmaps: torch.Tensor, keypoints: torch.Tensor, image_size, alpha: float = PCK_ALPHA):
    """Which keypoints the peaks of (B, K, h, w) heatmaps find: the peak (argmax, at the pixel
    centre, scaled to the image) within ``alpha`` x the image height of the true keypoint (B, K, 3)
    [x, y, v] given in image pixels of ``image_size`` (H, W). Returns (hits, visible), (B, K) bool."""
    h, w = heatmaps.shape[-2:]
    scale = torch.tensor([image_size[1] / w, image_size[0] / h])
    flat = heatmaps.float().cpu().flatten(2).argmax(-1)
    peaks = (torch.stack([flat % w, flat // w], dim=-1).float() + 0.5) * scale
    truth = keypoints.float().cpu()
    visible = truth[..., 2] > 0
    hits = ((peaks - truth[..., :2]).norm(dim=-1) <= alpha * image_size[0]) & visible
    return hits, visible


@torch.no_grad()
def pab_keypoint_pck(model, images: torch.Tensor, keypoints: torch.Tensor, alpha: float = PCK_ALPHA) -> Dict[str, float]:
    """PCK@alpha (share of visible keypoints whose PAB heatmap peak lies within alpha x the image
    height) of a keypoint PAB for uint8 images (B, 3, H, W) with keypoints (B, 17, 3) in their
    pixels: {"all": over every keypoint, "g{g}": per group, "fixed_pose": the PCK of one fixed guess,
    each keypoint's median position over these crops (what a PAB that ignores its input can reach
    at best, about), "spread": the mean over pixels of the predictions' standard deviation across
    the crops (0 when PAB ignores its input)}."""
    branches = getattr(getattr(model, "module", model), "branches", {})
    pab = branches["PAB"] if "PAB" in branches else None
    if pab is None or pab.target != "keypoints":
        raise UserError("PAB keypoint PCK needs a model with a keypoint PAB branch (a DAAF config and checkpoint)")
    predictions = branch_predictions(model, images)
    result, hits_all, visible_all = {}, 0, 0
    for g, group in enumerate(pab.groups):
        hits, visible = heatmap_peak_hits(predictions[f"PAB g{g}"], keypoints[:, group], images.shape[-2:], alpha)
        result[f"g{g}"] = float(hits.sum() / visible.sum().clamp(min=1))
        hits_all, visible_all = hits_all + int(hits.sum()), visible_all + int(visible.sum())
    result["all"] = hits_all / max(visible_all, 1)
    truth = keypoints.float().cpu()
    visible = truth[..., 2] > 0
    median = truth[..., :2].masked_fill(~visible[..., None], float("nan")).nanmedian(dim=0).values  # (17, 2)
    fixed_hits = ((truth[..., :2] - median).norm(dim=-1) <= alpha * images.shape[-2]) & visible
    result["fixed_pose"] = float(fixed_hits.sum() / visible.sum().clamp(min=1))
    stacked = torch.cat([predictions[f"PAB g{g}"] for g in range(len(pab.groups))], dim=1)
    result["spread"] = float(stacked.std(dim=0).mean()) if len(stacked) > 1 else 0.0
    return result


def format_pck(pck: Dict[str, float], alpha: float) -> str:
    """One line of :func:`pab_keypoint_pck`'s result."""
    groups = " ".join(f"{k} {v:.2f}" for k, v in pck.items() if k.startswith("g"))
    return (
        f"PAB peak PCK@{alpha:g} {pck['all']:.3f} ({groups}); one fixed pose scores {pck['fixed_pose']:.3f}; "
        f"prediction spread across crops {pck['spread']:.3g}"
    )


def labelled_query_batch(cfg, num_images: int = 0) -> dict:
    """The first ``num_images`` (0: all) query crops of the config's first test dataset, test-
    transformed, with their label-file masks and keypoints: a batch as ``reid_collate`` makes it."""
    from daaf.data import MappedDataset, ReIDDatasetMapper, attach_labels, get_dataset, reid_collate, resolve_labels_dir
    from daaf.data.mapper import build_augmentations
    from daaf.pseudo_label.label_file import label_file_path

    name = cfg.DATASETS.TEST[0] if cfg.DATASETS.TEST else cfg.DATASETS.TRAIN[0]
    records = [dict(r) for r in get_dataset(name, cfg.DATASETS.ROOT, log=False).query[: num_images or None]]
    attach_labels(records, label_file_path(resolve_labels_dir(cfg), name, "query"))
    mapper = ReIDDatasetMapper(is_train=False, augmentations=build_augmentations(cfg, False), image_format=cfg.INPUT.FORMAT, use_labels=True)
    items = [MappedDataset(records, mapper)[i] for i in range(len(records))]
    return reid_collate(items)


def draw_attention_grid(images: torch.Tensor, maps: Dict[str, torch.Tensor], max_columns: Optional[int] = None, notes: Optional[Dict[str, List[str]]] = None) -> np.ndarray:
    """One row per image: the image, then each map (B, h, w) or (B, C, h, w) (max over C) overlaid
    on it, labelled with its name (and ``notes[name][b]`` if given) and, at the bottom, its maximum
    (each map is coloured from its own minimum to its maximum), and last the colour key. Returns
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
            row.append(label_panel(overlay_heatmap(image, m), title, footer=f"max {m.max():.3g}"))
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
    if branches and not getattr(getattr(model, "module", model), "branches", {}):  # before the maps' work
        raise UserError("--branches: this model has no attention branches (give the DAAF config and checkpoint)")
    holistic, group = _MAP_LABELS[method]
    computed = ATTENTION_MAP_METHODS[method](model, images, stage)
    maps = {(holistic if k == "holistic" else group + k[len("group"):]): v for k, v in computed.items()}
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
