"""The trained model an inference tool uses, loaded exactly."""

import torch

from daaf.modeling import build_model, strip_branches
from daaf.utils.checkpoint import DAAFCheckpointer
from daaf.utils.errors import UserError

__all__ = ["load_inference_model"]


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
