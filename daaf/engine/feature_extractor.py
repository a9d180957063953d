"""FeatureExtractor: a trained model as a feature extractor, in three lines of Python.

    from daaf import FeatureExtractor
    extractor = FeatureExtractor.from_run("output/synthetic/trinet_R18", device="cpu")
    features = extractor(["a.jpg", "b.jpg"])            # (2, D) torch.Tensor

The images go through the run's own test preprocessing (INPUT.SIZE_TEST, INPUT.FORMAT) and
test-time augmentation (TEST.FLIP, TEST.FIVE_CROP), in batches, under ``torch.inference_mode``, so
the features are those the evaluation ranks and ``tools/extract_features.py`` writes.
"""

import os
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch

from daaf.config import build_config
from daaf.data import ReIDDatasetMapper
from daaf.data.build import MappedDataset
from daaf.data.image_check import drop_or_refuse_bad_images
from daaf.data.loader import ReIDDataLoader
from daaf.evaluation import compute_distance, extract_features, test_time_crops, top_k
from daaf.utils.errors import UserError

from .inference_model import load_inference_model

__all__ = ["FeatureExtractor"]

CHANNEL_ORDERS = ("RGB", "BGR")


def _run_weights(run_dir: str) -> str:
    """The final weights of a run folder, else the checkpoint its last_checkpoint tag names."""
    final = os.path.join(run_dir, "model_final.pth")
    if os.path.isfile(final):
        return final
    tag = os.path.join(run_dir, "last_checkpoint")
    if os.path.isfile(tag):
        with open(tag) as f:
            return os.path.join(run_dir, f.read().strip())
    raise UserError(f"{run_dir}: holds no model_final.pth and no last_checkpoint; is it the OUTPUT_DIR of a training?")


class FeatureExtractor:
    """Embeds person crops with a trained model (its base network), as the evaluation does.

    Args:
        cfg: the frozen config of the model (its INPUT.* and TEST.* decide the preprocessing).
        model: the network to use; None loads the base network of cfg.MODEL.WEIGHTS.
        device: where the model runs ("cpu", "cuda", "cuda:1"); None keeps cfg.MODEL.DEVICE.
        batch_size: images per forward pass (default TEST.IMS_PER_BATCH).
        num_workers: processes that read image files (0: in this process).
    """

    def __init__(self, cfg, model: Optional[torch.nn.Module] = None, *, device: Optional[str] = None, batch_size=None, num_workers=0):
        if device is not None:
            cfg = cfg.clone()
            cfg.defrost()
            cfg.MODEL.DEVICE = device
            cfg.freeze()
        self.cfg = cfg
        self.model = (model if model is not None else load_inference_model(cfg)).eval()
        self.batch_size = int(batch_size or cfg.TEST.IMS_PER_BATCH)
        self.num_workers = int(num_workers)
        self._mapper = ReIDDatasetMapper(cfg, is_train=False)

    @classmethod
    def from_run(cls, run_dir: str, opts: Sequence[str] = (), **kwargs) -> "FeatureExtractor":
        """From a training's OUTPUT_DIR: its config.yaml and model_final.pth (else the checkpoint
        its last_checkpoint names), with KEY VALUE ``opts`` on top; ``kwargs`` as the constructor's."""
        config = os.path.join(run_dir, "config.yaml")
        if not os.path.isfile(config):
            raise UserError(f"{run_dir}: no config.yaml; is it the OUTPUT_DIR of a training?")
        return cls.from_config(config, _run_weights(run_dir), opts, **kwargs)

    @classmethod
    def from_config(cls, config_file: str, weights: str, opts: Sequence[str] = (), **kwargs) -> "FeatureExtractor":
        """From a config file, the weights to load and KEY VALUE ``opts``; ``kwargs`` as the constructor's."""
        return cls(build_config(config_file, ["MODEL.WEIGHTS", weights, *opts]), **kwargs)

    def _records(self, images, channel_order: str) -> list:
        """Mapper records of ``images``: file paths as they are, arrays converted to INPUT.FORMAT."""
        if channel_order not in CHANNEL_ORDERS:
            raise UserError(f"channel_order: expected 'RGB' or 'BGR', got {channel_order!r}")
        if isinstance(images, torch.Tensor):
            if images.dtype != torch.uint8 or images.dim() not in (3, 4) or images.shape[-3] != 3:
                raise UserError(f"expected a uint8 tensor (N, 3, H, W) or (3, H, W), got {images.dtype} of shape {tuple(images.shape)}")
            batch = images[None] if images.dim() == 3 else images
            images = list(batch.permute(0, 2, 3, 1).cpu().numpy())
        elif isinstance(images, (str, os.PathLike, np.ndarray)) or _is_pil(images):
            images = [images]
        records = []
        for index, image in enumerate(images):
            if isinstance(image, (str, os.PathLike)):
                records.append({"file_name": os.fspath(image), "pid": -1, "camid": -1})
                continue
            if _is_pil(image):
                image, order = np.asarray(image.convert("RGB")), "RGB"
            elif isinstance(image, np.ndarray):
                order = channel_order
            else:
                raise UserError(
                    f"image {index}: expected a file path, an HxWx3 uint8 array, a PIL image or a uint8 tensor, got {type(image).__name__}"
                )
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise UserError(f"image {index}: expected an HxWx3 uint8 array ({order}), got {image.dtype} of shape {image.shape}")
            if order != self.cfg.INPUT.FORMAT:
                image = image[:, :, ::-1]
            records.append({"file_name": f"<image {index}>", "image": np.ascontiguousarray(image), "pid": -1, "camid": -1})
        return records

    def __call__(self, images, *, channel_order: str = "RGB", as_numpy: bool = False) -> Union[torch.Tensor, np.ndarray]:
        """(N, D) float32 features of ``images``: a file path, an HxWx3 uint8 array, a PIL image,
        a list of any of these, or a uint8 tensor (N, 3, H, W). ``channel_order`` says whether
        arrays and tensors are RGB (PIL images are converted) or BGR (as OpenCV reads them)."""
        records = self._records(images, channel_order)
        if not records:
            raise UserError("no images to embed")
        files = [r for r in records if "image" not in r]
        if files and self.cfg.DATALOADER.CHECK_IMAGES:
            drop_or_refuse_bad_images(files, skip=False, what="input images", max_pixels=self.cfg.INPUT.MAX_IMAGE_PIXELS, skippable=False)
        loader = ReIDDataLoader(
            MappedDataset(records, self._mapper), batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers
        )
        with torch.inference_mode():
            features, _ = extract_features(
                self.model, loader, flip=self.cfg.TEST.FLIP.ENABLED, crops=test_time_crops(self.cfg), progress=False
            )
        return features if as_numpy else torch.from_numpy(features)

    def distance(self, query, gallery) -> np.ndarray:
        """The (Q, G) distances of two sets of features (or of images, embedded first) under
        TEST.METRIC, computed by the evaluation's own distance function."""
        return compute_distance(self._features(query), self._features(gallery), self.cfg.TEST.METRIC)

    def top_k(self, query, gallery, k: int = 10) -> Tuple[np.ndarray, np.ndarray]:
        """(indices, distances), each (Q, min(k, G)): each query's k nearest gallery items, nearest first."""
        return top_k(self.distance(query, gallery), k)

    def _features(self, value) -> torch.Tensor:
        if isinstance(value, np.ndarray) and value.dtype != np.uint8 and value.ndim == 2:
            return torch.from_numpy(value)
        if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dim() == 2:
            return value
        return self(value)


def _is_pil(value) -> bool:
    return type(value).__module__.startswith("PIL.")
