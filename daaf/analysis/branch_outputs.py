"""What the training-only branches of a DAAF model predict at inference (the paper's Figs. 7-8),
and how well the peaks of predicted keypoint heatmaps find the keypoints (PCK)."""

from typing import Dict, Optional

import torch

from daaf.data import PersonLabels, ReIDBatch, ReIDDatasetMapper, attach_labels, build_augmentations, collate_reid_batch, get_dataset
from daaf.data.person_labels import label_file_path, resolve_labels_dir
from daaf.evaluation import inference_context
from daaf.utils.comm import unwrap_model
from daaf.utils.errors import UserError

__all__ = [
    "branch_predictions",
    "predicted_keypoint_heatmaps",
    "PCK_ALPHA",
    "heatmap_peaks",
    "heatmap_peak_hits",
    "keypoint_pck",
    "format_pck",
    "labelled_query_batch",
]


@torch.no_grad()
def branch_predictions(model, images: torch.Tensor, label_masks: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
    """What each training-only branch with a ``predict`` method predicts for uint8 images
    (B, 3, H, W), by its name: one map (B, n, h, w), or, for a branch that predicts per group,
    "<branch> <group name>" each (e.g. "HAB" the person mask, "PAB head" the head's heatmaps).
    With ``label_masks`` (B, H, W), the crops' label-file masks follow each branch that predicts a
    person mask, as "label mask" (the paper's Fig. 7 shows the detector's mask beside HAB's)."""
    model = unwrap_model(model)
    out = {}
    with inference_context(model):
        features = model.backbone(model.preprocess_image(images))
        for name in getattr(model, "branch_names", ()):
            branch = model.branch(name)
            if not hasattr(branch, "predict"):
                continue
            pred = branch.predict(features)
            if isinstance(pred, list):
                labels = getattr(branch, "group_names", None) or [f"g{g}" for g in range(len(pred))]
                out.update({f"{name} {label}": p.cpu() for label, p in zip(labels, pred)})
            else:
                out[name] = pred.cpu()
                if label_masks is not None and getattr(branch, "predicts_person_mask", False):
                    out["label mask"] = label_masks.float().cpu()
    return out


@torch.no_grad()
def predicted_keypoint_heatmaps(model, images: torch.Tensor) -> list:
    """The keypoint heatmaps the model's branches predict for uint8 images (B, 3, H, W): a list of
    ``KeypointHeatmaps`` (name, keypoint ids, (B, n, h, w) on the CPU); empty when none does."""
    model = unwrap_model(model)
    if not getattr(model, "predicts_keypoints", False):
        return []
    with inference_context(model):
        features = model.backbone(model.preprocess_image(images))
        return [h._replace(heatmaps=h.heatmaps.cpu()) for h in model.keypoint_heatmaps(features)]


PCK_ALPHA = 0.1  # the PCK threshold the tools report by default, x the crop height


def heatmap_peaks(heatmaps: torch.Tensor, image_size) -> torch.Tensor:
    """(B, K, 2) [x, y] image pixels of ``image_size`` (H, W) of the peaks of (B, K, h, w) heatmaps
    (argmax, at the pixel centre, scaled to the image)."""
    h, w = heatmaps.shape[-2:]
    scale = torch.tensor([image_size[1] / w, image_size[0] / h])
    flat = heatmaps.float().cpu().flatten(2).argmax(-1)
    return (torch.stack([flat % w, flat // w], dim=-1).float() + 0.5) * scale


def heatmap_peak_hits(heatmaps: torch.Tensor, keypoints: torch.Tensor, image_size, alpha: float = PCK_ALPHA):
    """Which keypoints the peaks of (B, K, h, w) heatmaps find: the peak (:func:`heatmap_peaks`)
    within ``alpha`` x the image height of the true keypoint (B, K, 3) [x, y, v] given in image
    pixels of ``image_size`` (H, W). Returns (hits, visible), (B, K) bool."""
    peaks = heatmap_peaks(heatmaps, image_size)
    truth = keypoints.float().cpu()
    visible = truth[..., 2] > 0
    hits = ((peaks - truth[..., :2]).norm(dim=-1) <= alpha * image_size[0]) & visible
    return hits, visible


# the entries of keypoint_pck's result that are not a group's PCK
_PCK_SUMMARY_KEYS = ("all", "fixed_pose", "spread")


def keypoint_pck(model, images: torch.Tensor, keypoints: torch.Tensor, alpha: float = PCK_ALPHA) -> Dict[str, float]:
    """PCK@alpha (share of visible keypoints whose heatmap peak lies within alpha x the image
    height) of the keypoint heatmaps the model's branches predict (DAAF's PAB), for uint8 images
    (B, 3, H, W) with keypoints (B, 17, 3) in their pixels: {"all": over every keypoint, and per
    group its name (e.g. "head"), "fixed_pose": the PCK of one fixed guess, each keypoint's median
    position over these crops (what a branch that ignores its input can reach at best, about),
    "spread": the mean over pixels of the predictions' standard deviation across the crops (0 when
    the branch ignores its input)}."""
    predictions = predicted_keypoint_heatmaps(model, images)
    if not predictions:
        raise UserError("keypoint PCK needs a model whose branches predict keypoint heatmaps (a DAAF config with PAB and its checkpoint)")
    result, hits_all, visible_all = {}, 0, 0
    for name, group, heatmaps in predictions:
        hits, visible = heatmap_peak_hits(heatmaps, keypoints[:, group], images.shape[-2:], alpha)
        result[name] = float(hits.sum() / visible.sum().clamp(min=1))
        hits_all, visible_all = hits_all + int(hits.sum()), visible_all + int(visible.sum())
    result["all"] = hits_all / max(visible_all, 1)
    truth = keypoints.float().cpu()
    visible = truth[..., 2] > 0
    median = truth[..., :2].masked_fill(~visible[..., None], float("nan")).nanmedian(dim=0).values  # (17, 2)
    fixed_hits = ((truth[..., :2] - median).norm(dim=-1) <= alpha * images.shape[-2]) & visible
    result["fixed_pose"] = float(fixed_hits.sum() / visible.sum().clamp(min=1))
    stacked = torch.cat([p.heatmaps for p in predictions], dim=1)
    result["spread"] = float(stacked.std(dim=0).mean()) if len(stacked) > 1 else 0.0
    return result


def format_pck(pck: Dict[str, float], alpha: float) -> str:
    """One line of :func:`keypoint_pck`'s result."""
    groups = ", ".join(f"{k} {v:.2f}" for k, v in pck.items() if k not in _PCK_SUMMARY_KEYS)
    return (
        f"keypoint heatmap peak PCK@{alpha:g} {pck['all']:.3f} ({groups}); one fixed pose scores {pck['fixed_pose']:.3f}; "
        f"prediction spread across crops {pck['spread']:.3g}"
    )


def labelled_query_batch(cfg, num_images: int = 0) -> ReIDBatch:
    """The first ``num_images`` (0: all) query crops of the config's first test dataset as the one
    INPUT.SIZE_TEST crop the network reads, with the masks and keypoints of their label file."""
    name = cfg.DATASETS.TEST[0] if cfg.DATASETS.TEST else cfg.DATASETS.TRAIN[0]
    records = [dict(r) for r in get_dataset(name, cfg.DATASETS.ROOT, log=False).query[: num_images or None]]
    attach_labels(records, label_file_path(resolve_labels_dir(cfg), name, "query"))
    mapper = ReIDDatasetMapper(
        is_train=False,
        augmentations=build_augmentations(cfg, False, single_crop=True),
        image_format=cfg.INPUT.FORMAT,
        input_fields=PersonLabels.FIELDS,
    )
    return collate_reid_batch([mapper(r) for r in records])
