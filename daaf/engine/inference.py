"""What the inference tools share: a trained model loaded exactly, image lists, feature extraction.

Used by tools/extract_features.py, tools/search.py, tools/visualize_attention.py and
tools/export_model.py.
"""

import argparse
import glob
import logging
import os
import re
import sys
from typing import List, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import DataLoader

from daaf.utils.errors import ConfigError, UserError

__all__ = [
    "positive_int",
    "check_output_file",
    "inference_argument_parser",
    "inference_config",
    "load_inference_model",
    "list_image_files",
    "build_image_list_loader",
    "read_test_images",
    "extract_features",
    "image_features",
    "test_time_crops",
    "count_parameters",
]

logger = logging.getLogger(__name__)


_CONFIG_KEY = re.compile(r"^[A-Z][A-Z0-9_]*(\.[A-Z0-9_]+)+$")


class InferenceArgumentParser(argparse.ArgumentParser):
    """argparse for the inference tools: --config-file plus the tool's options, then trailing
    ``KEY VALUE`` config overrides (MODEL.WEIGHTS names the checkpoint). The overrides start at
    the first config key (e.g. MODEL.WEIGHTS), so options that take several values (--input a b)
    may come right before them."""

    def __init__(self, description: str):
        super().__init__(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
        self.add_argument("--config-file", required=True, metavar="FILE", help="the config the model was trained with")
        self.epilog = "Config overrides go last, as KEY VALUE pairs: e.g. MODEL.WEIGHTS output/run/model_final.pth"

    def parse_args(self, args=None, namespace=None):
        argv = list(sys.argv[1:] if args is None else args)
        split = next((i for i, a in enumerate(argv) if _CONFIG_KEY.match(a)), len(argv))
        parsed = super().parse_args(argv[:split], namespace)
        parsed.opts = argv[split:]
        return parsed


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (argparse names the flag in its one-line error)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'")
    return value


def check_output_file(path: str, extensions: Sequence[str], flag: str = "--output") -> None:
    """UserError (one line) unless ``path`` can become a file with one of ``extensions`` (".npz"):
    checked before a tool's work, not after it."""
    if os.path.isdir(path):
        raise UserError(f"{flag} {path}: is a folder; give a file path ending in {' or '.join(extensions)}")
    if not path.lower().endswith(tuple(extensions)):
        raise UserError(f"{flag} {path}: expected a file name ending in {' or '.join(extensions)}")


def inference_argument_parser(description: str) -> InferenceArgumentParser:
    """The parser every inference tool starts from (see :class:`InferenceArgumentParser`)."""
    return InferenceArgumentParser(description)


def inference_config(config_file: str, opts: Sequence[str] = ()):
    """Defaults + ``config_file`` + KEY VALUE ``opts``, with cfg.IMPORTS imported; frozen."""
    from daaf.config import get_cfg
    from daaf.utils.logger import setup_logger

    from .defaults import import_user_modules

    setup_logger(name="daaf")
    cfg = get_cfg()
    cfg.merge_from_file(config_file)
    cfg.merge_from_list(list(opts or []))
    import_user_modules(cfg.IMPORTS)
    cfg.freeze()
    return cfg


def _examples(keys, n: int = 3) -> str:
    keys = list(keys)
    return ", ".join(keys[:n]) + (", ..." if len(keys) > n else "")


def load_inference_model(cfg, keep_branches: bool = False) -> torch.nn.Module:
    """Build MODEL.META_ARCHITECTURE and load MODEL.WEIGHTS into it, in eval mode.

    Without ``keep_branches`` the result is the base network (DAAF branches stripped). Raises a
    one-line UserError when MODEL.WEIGHTS is empty, unreadable, or does not fit the config (tensors
    missing or of another shape), so that a tool never runs a half-initialised model.
    """
    from daaf.modeling import build_model
    from daaf.modeling.meta_arch.reid_network import strip_branches
    from daaf.utils.checkpoint import DAAFCheckpointer

    weights = cfg.MODEL.WEIGHTS
    if not weights:
        raise UserError("MODEL.WEIGHTS is empty: give the checkpoint to use, e.g. MODEL.WEIGHTS output/<run>/model_final.pth")
    model = build_model(cfg)
    if not keep_branches:
        model = strip_branches(model)
    checkpointer = DAAFCheckpointer(model)
    checkpointer.load(weights)
    incompatible = checkpointer.last_incompatible
    missing = [k for k in incompatible.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or incompatible.incorrect_shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} tensors of the model are missing ({_examples(missing)})")
        if incompatible.incorrect_shapes:
            shapes = [f"{k} {tuple(a)} vs {tuple(b)}" for k, a, b in incompatible.incorrect_shapes]
            parts.append(f"{len(shapes)} have another shape, checkpoint vs model ({_examples(shapes, 2)})")
        raise UserError(f"{weights} does not fit the config: " + "; ".join(parts) + " - is it the config it was trained with?")
    return model.eval()


def count_parameters(model: torch.nn.Module) -> int:
    """Number of parameter elements."""
    return sum(p.numel() for p in model.parameters())


def list_image_files(inputs: Sequence[str]) -> List[str]:
    """Image paths from folders (searched recursively), glob patterns and files, sorted within each
    input, duplicates dropped. UserError naming the input that gives no image."""
    from daaf.data.datasets.bases import IMAGE_EXTENSIONS

    paths: List[str] = []
    for spec in inputs:
        if os.path.isdir(spec):
            found = sorted(
                os.path.join(d, f) for d, _, files in os.walk(spec) for f in files if f.lower().endswith(IMAGE_EXTENSIONS)
            )
        elif os.path.isfile(spec):
            found = [spec]
        else:
            found = sorted(p for p in glob.glob(spec, recursive=True) if p.lower().endswith(IMAGE_EXTENSIONS))
        if not found:
            raise UserError(f"no images found for '{spec}' (expected a folder, a glob such as 'crops/*.jpg', or image files)")
        paths += found
    return list(dict.fromkeys(paths))


def build_image_list_loader(cfg, paths: Sequence[str], batch_size: int = None, num_workers: int = 0) -> DataLoader:
    """Batches of the test transform (INPUT.SIZE_TEST) of ``paths``, in order; the batch dicts of
    :func:`daaf.data.reid_collate` with pid and camid -1."""
    from daaf.data import MappedDataset, ReIDDataLoader, ReIDDatasetMapper

    records = [{"file_name": p, "pid": -1, "camid": -1} for p in paths]
    return ReIDDataLoader(
        MappedDataset(records, ReIDDatasetMapper(cfg, is_train=False)),
        batch_size=batch_size or cfg.TEST.IMS_PER_BATCH,
        shuffle=False,
        num_workers=num_workers,
    )


def read_test_images(cfg, paths: Sequence[str]) -> torch.Tensor:
    """(N, 3, H, W) uint8: the images ``paths`` name, in order, through the test transform."""
    return next(iter(build_image_list_loader(cfg, paths, batch_size=len(paths))))["images"]


def test_time_crops(cfg) -> list:
    """TriNet's 5 crops (x0, y0, w, h) of an INPUT.CROP_FROM image when TEST.FIVE_CROP, else []."""
    from daaf.evaluation import five_crops

    if not cfg.TEST.FIVE_CROP:
        return []
    if len(cfg.INPUT.CROP_FROM) != 2:
        raise ConfigError("TEST.FIVE_CROP needs INPUT.CROP_FROM (the size the 5 crops are cut from)")
    return five_crops(*cfg.INPUT.CROP_FROM, *cfg.INPUT.SIZE_TEST)


@torch.no_grad()
def extract_features(model, loader, flip: bool = False, crops: Sequence = (), progress: bool = True) -> Tuple[np.ndarray, List[str]]:
    """Embeddings (N, D) float32 of every image of ``loader`` (test-time flip / crops averaged) and
    the file names, in loader order."""
    from tqdm import tqdm

    from daaf.evaluation import embed_batch

    model.eval()
    features, names = [], []
    for batch in tqdm(loader, desc="features", unit="batch", disable=not progress, leave=True):
        features.append(embed_batch(model, batch["images"], flip=flip, crops=crops).float().cpu())
        names += batch["file_names"]
    if not features:
        return np.zeros((0, 0), dtype=np.float32), []
    return torch.cat(features).numpy(), names


def image_features(cfg, inputs: Sequence[str], num_workers: int = 0, progress: bool = True, model=None) -> Tuple[np.ndarray, List[str]]:
    """(features (N, D), file names) of the images ``inputs`` name (see :func:`list_image_files`),
    embedded by ``model`` (default: the base network of MODEL.WEIGHTS) with the config's test-time
    augmentation."""
    paths = list_image_files(inputs)
    model = model if model is not None else load_inference_model(cfg)
    loader = build_image_list_loader(cfg, paths, num_workers=num_workers)
    return extract_features(model, loader, flip=cfg.TEST.FLIP.ENABLED, crops=test_time_crops(cfg), progress=progress)
