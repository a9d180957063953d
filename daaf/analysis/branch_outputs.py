"""What the training-only branches of a DAAF model predict at inference (the paper's Figs. 7-8),
and how well PAB's heatmap peaks find the keypoints (PCK)."""

from typing import Dict

import torch

from daaf.data import PERSON_LABEL_FIELDS, ReIDBatch, ReIDDatasetMapper, attach_labels, build_augmentations, collate_reid_batch, get_dataset
from daaf.data.person_labels import label_file_path, resolve_labels_dir
from daaf.evaluation import inference_context
from daaf.utils.errors import UserError

__all__ = ["branch_predictions", "PCK_ALPHA", "heatmap_peak_hits", "pab_keypoint_pck", "format_pck", "labelled_query_batch"]


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


def labelled_query_batch(cfg, num_images: int = 0) -> ReIDBatch:
    """The first ``num_images`` (0: all) query crops of the config's first test dataset, test-
    transformed, with the masks and keypoints of their label file."""
    name = cfg.DATASETS.TEST[0] if cfg.DATASETS.TEST else cfg.DATASETS.TRAIN[0]
    records = [dict(r) for r in get_dataset(name, cfg.DATASETS.ROOT, log=False).query[: num_images or None]]
    attach_labels(records, label_file_path(resolve_labels_dir(cfg), name, "query"))
    mapper = ReIDDatasetMapper(
        is_train=False, augmentations=build_augmentations(cfg, False), image_format=cfg.INPUT.FORMAT, label_fields=PERSON_LABEL_FIELDS
    )
    return collate_reid_batch([mapper(r) for r in records])
