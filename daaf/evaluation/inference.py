"""Running a model over a loader in inference mode: for an evaluator, or for the features alone."""

import datetime
import logging
import time
from contextlib import ExitStack, contextmanager
from typing import List, Sequence, Tuple

import numpy as np
import torch
from tqdm import tqdm

from daaf.utils import comm

from .evaluator import DatasetEvaluator
from .test_time_augmentation import embed_batch

__all__ = ["inference_context", "inference_on_dataset", "extract_features"]

logger = logging.getLogger(__name__)


@contextmanager
def inference_context(model):
    """Put the model in eval mode for the block and restore its previous mode after."""
    training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(training)


def inference_on_dataset(model, data_loader, evaluator: DatasetEvaluator, flip_test: bool = False, crops: Sequence = ()):
    """Run ``model`` (eval mode, no grad) over ``data_loader`` and return ``evaluator.evaluate()``."""
    num_devices = comm.get_world_size()
    total = len(data_loader)
    logger.info(f"Start inference on {len(data_loader.dataset)} images ({num_devices} process(es))")
    evaluator.reset()
    start = time.perf_counter()
    with ExitStack() as stack:
        stack.enter_context(inference_context(model))
        stack.enter_context(torch.no_grad())
        # leave=True: the bar ends its line, so the log line after it starts a line of its own
        for batch in tqdm(data_loader, total=total, desc="inference", disable=not comm.is_main_process(), leave=True):
            outputs = embed_batch(model, batch.images, flip=flip_test, crops=crops)
            evaluator.process(batch, outputs)
    duration = time.perf_counter() - start
    logger.info(f"Inference done in {datetime.timedelta(seconds=int(duration))} ({duration / max(total, 1):.4f} s / batch)")
    results = evaluator.evaluate()
    return results if results is not None else {}


@torch.no_grad()
def extract_features(model, loader, flip: bool = False, crops: Sequence = (), progress: bool = True) -> Tuple[np.ndarray, List[str]]:
    """Embeddings (N, D) float32 of every image of ``loader`` (test-time flip / crops averaged) and
    the file names, in loader order."""
    features, names = [], []
    with inference_context(model):
        for batch in tqdm(loader, desc="features", unit="batch", disable=not progress, leave=True):
            features.append(embed_batch(model, batch.images, flip=flip, crops=crops).float().cpu())
            names += batch.file_names
    if not features:
        return np.zeros((0, 0), dtype=np.float32), []
    return torch.cat(features).numpy(), names
