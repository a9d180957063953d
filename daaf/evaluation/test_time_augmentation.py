"""Test-time augmentation: embeddings averaged over horizontal flips and TriNet's five crops."""

from typing import List, Sequence, Tuple

import torch

from daaf.utils.errors import ConfigError

__all__ = ["embed_batch", "five_crops", "test_time_crops"]


def embed_batch(model, images: torch.Tensor, flip: bool = False, crops: Sequence = ()) -> torch.Tensor:
    """Embeddings (B, D) of a uint8 image batch (B, 3, H, W), averaged over the test-time
    augmentations: horizontal flip and/or crops (each (x0, y0, w, h), e.g. TriNet's 5 crops)."""
    views = [images[..., y : y + h, x : x + w] for (x, y, w, h) in crops] or [images]
    if flip:
        views = views + [v.flip(-1) for v in views]
    return torch.stack([model(v) for v in views]).mean(0)


def five_crops(height: int, width: int, crop_h: int, crop_w: int) -> List[Tuple[int, int, int, int]]:
    """The four corner crops and the centre crop (x0, y0, w, h) of a (height, width) image."""
    cy, cx = (height - crop_h) // 2, (width - crop_w) // 2
    corners = [(0, 0), (width - crop_w, 0), (0, height - crop_h), (width - crop_w, height - crop_h)]
    return [(x, y, crop_w, crop_h) for x, y in corners] + [(cx, cy, crop_w, crop_h)]


def test_time_crops(cfg) -> list:
    """TriNet's 5 crops (x0, y0, w, h) of an INPUT.CROP_FROM image when TEST.FIVE_CROP, else []."""
    if not cfg.TEST.FIVE_CROP:
        return []
    if len(cfg.INPUT.CROP_FROM) != 2:
        raise ConfigError("TEST.FIVE_CROP needs INPUT.CROP_FROM (the size the 5 crops are cut from)")
    return five_crops(*cfg.INPUT.CROP_FROM, *cfg.INPUT.SIZE_TEST)
