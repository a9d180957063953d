"""Image files a user names (folders, globs, files) and loaders over them with the test transform."""

import glob
import os
from typing import List, Sequence

import torch

from daaf.utils.errors import UserError

from .build import MappedDataset
from .datasets import IMAGE_EXTENSIONS
from .image_check import drop_or_refuse_bad_images
from .loader import ReIDDataLoader
from .mapper import ReIDDatasetMapper, build_augmentations

__all__ = ["list_image_files", "build_image_list_loader", "read_test_images"]


def list_image_files(inputs: Sequence[str]) -> List[str]:
    """Image paths from folders (searched recursively), glob patterns and files, sorted within each
    input, duplicates dropped. UserError naming the input that gives no image."""
    paths: List[str] = []
    for spec in inputs:
        if os.path.isdir(spec):
            found = sorted(os.path.join(d, f) for d, _, files in os.walk(spec) for f in files if f.lower().endswith(IMAGE_EXTENSIONS))
        elif os.path.isfile(spec):
            found = [spec]
        else:
            found = sorted(p for p in glob.glob(spec, recursive=True) if p.lower().endswith(IMAGE_EXTENSIONS))
        if not found:
            raise UserError(f"no images found for '{spec}' (expected a folder, a glob such as 'crops/*.jpg', or image files)")
        paths += found
    return list(dict.fromkeys(paths))


def build_image_list_loader(
    cfg, paths: Sequence[str], batch_size: int = None, num_workers: int = 0, single_crop: bool = False
) -> ReIDDataLoader:
    """Batches of the test transform of ``paths`` (``single_crop``: at INPUT.SIZE_TEST also for a
    five-crop test, :func:`build_augmentations`), in order; :class:`ReIDBatch` with pid and camid -1."""
    records = [{"file_name": p, "pid": -1, "camid": -1} for p in paths]
    if cfg.DATALOADER.CHECK_IMAGES:
        drop_or_refuse_bad_images(records, skip=False, what="input images", max_pixels=cfg.INPUT.MAX_IMAGE_PIXELS, skippable=False)
    return ReIDDataLoader(
        MappedDataset(records, ReIDDatasetMapper(cfg, is_train=False, augmentations=build_augmentations(cfg, False, single_crop))),
        batch_size=batch_size or cfg.TEST.IMS_PER_BATCH,
        shuffle=False,
        num_workers=num_workers,
    )


def read_test_images(cfg, paths: Sequence[str]) -> torch.Tensor:
    """(N, 3, H, W) uint8: the images ``paths`` name, in order, as the one crop of INPUT.SIZE_TEST
    the network reads (what attention maps and branch outputs are computed on)."""
    return next(iter(build_image_list_loader(cfg, paths, batch_size=len(paths), single_crop=True))).images
