"""The trained model an inference tool uses, loaded exactly, and the features of image files."""

from typing import List, Sequence, Tuple

import numpy as np
import torch

from daaf.data.image_list import build_image_list_loader, list_image_files
from daaf.evaluation import extract_features, test_time_crops
from daaf.modeling import build_model, strip_branches
from daaf.utils.checkpoint import DAAFCheckpointer
from daaf.utils.errors import UserError

__all__ = ["load_inference_model", "image_features"]


def load_inference_model(cfg, keep_branches: bool = False) -> torch.nn.Module:
    """Build MODEL.META_ARCHITECTURE and load MODEL.WEIGHTS into it, in eval mode.

    Without ``keep_branches`` the result is the base network (DAAF branches stripped). Raises a
    one-line UserError when MODEL.WEIGHTS is empty, unreadable, or does not fit the config (tensors
    missing or of another shape), so that a tool never runs a half-initialised model.
    """
    weights = cfg.MODEL.WEIGHTS
    if not weights:
        raise UserError("MODEL.WEIGHTS is empty: give the checkpoint to use, e.g. MODEL.WEIGHTS output/<run>/model_final.pth")
    model = build_model(cfg)
    if not keep_branches:
        model = strip_branches(model)
    DAAFCheckpointer(model, trusted=cfg.MODEL.TRUSTED_WEIGHTS).load_exactly(weights)
    return model.eval()


def image_features(cfg, inputs: Sequence[str], num_workers: int = 0, progress: bool = True, model=None) -> Tuple[np.ndarray, List[str]]:
    """(features (N, D), file names) of the images ``inputs`` name (see :func:`list_image_files`),
    embedded by ``model`` (default: the base network of MODEL.WEIGHTS) with the config's test-time
    augmentation."""
    paths = list_image_files(inputs)
    model = model if model is not None else load_inference_model(cfg)
    loader = build_image_list_loader(cfg, paths, num_workers=num_workers)
    return extract_features(model, loader, flip=cfg.TEST.FLIP.ENABLED, crops=test_time_crops(cfg), progress=progress)
