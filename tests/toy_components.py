"""A toy meta-architecture for engine tests, importable by subprocesses through cfg.IMPORTS.

Its loss depends on its parameters only (not on the batch), so two runs that take the same
optimizer steps end with identical weights whatever data they saw. Environment variables:
TOY_SLEEP (seconds per step, to kill a run mid-way), TOY_NAN_AT (iteration whose loss is NaN).
"""

import os
import time

import torch
from torch import nn

from daaf.data import ReIDBatch
from daaf.modeling import META_ARCH_REGISTRY

if "ToyReIDNet" not in META_ARCH_REGISTRY:

    @META_ARCH_REGISTRY.register()
    class ToyReIDNet(nn.Module):
        def __init__(self, cfg):
            super().__init__()
            generator = torch.Generator().manual_seed(0)
            self.fc = nn.Linear(3, 4)
            with torch.no_grad():
                self.fc.weight.copy_(torch.randn(4, 3, generator=generator))
                self.fc.bias.zero_()
            self.register_buffer("step_count", torch.zeros((), dtype=torch.long))
            self.last_file_names = []

        def forward(self, batch):
            images = batch.images if isinstance(batch, ReIDBatch) else batch
            emb = self.fc(images.float().mean(dim=(2, 3)) / 255.0)
            if not self.training:
                return emb
            self.last_file_names = list(batch.file_names)
            if os.environ.get("TOY_SLEEP"):
                time.sleep(float(os.environ["TOY_SLEEP"]))
            loss = (self.fc.weight - 1.0).pow(2).sum() + 0.0 * emb.sum()
            nan_at = os.environ.get("TOY_NAN_AT")
            if nan_at is not None and int(self.step_count) == int(nan_at):
                loss = loss * float("nan")
            self.step_count += 1
            return {"loss_toy": loss, "loss_bias": self.fc.bias.pow(2).sum() + 0.1}


# ---- a test-double person labeler (PSEUDO_LABEL.NAME ToyPersonLabeler) ----
# Deterministic per image: the person is whatever differs from the border colour. Environment:
# TOY_LABEL_SLEEP (seconds per batch, to kill a run mid-way), TOY_LABEL_LOG (a file to which each
# call appends the number of images it labelled), TOY_LABEL_FAIL_CALL (the call, counted from 1 in
# this process, that raises a bare AssertionError).
import numpy as np  # noqa: E402

from daaf.pseudo_label import PSEUDO_LABELER_REGISTRY, PersonLabel, PersonLabeler  # noqa: E402

if "ToyPersonLabeler" not in PSEUDO_LABELER_REGISTRY:

    @PSEUDO_LABELER_REGISTRY.register()
    class ToyPersonLabeler(PersonLabeler):
        weights = "toy-weights"

        def __init__(self, cfg):
            self.keypoint_thresh = cfg.PSEUDO_LABEL.KEYPOINT_THRESH
            self.min_area = 0.05

        def info(self):
            return {"keypoint_thresh": self.keypoint_thresh, "min_area": self.min_area}

        calls = 0

        def __call__(self, images):
            ToyPersonLabeler.calls += 1
            if str(ToyPersonLabeler.calls) == os.environ.get("TOY_LABEL_FAIL_CALL"):
                raise AssertionError()  # as a bare assert in detectron2 fails: no message
            if os.environ.get("TOY_LABEL_SLEEP"):
                time.sleep(float(os.environ["TOY_LABEL_SLEEP"]))
            if os.environ.get("TOY_LABEL_LOG"):
                with open(os.environ["TOY_LABEL_LOG"], "a") as f:
                    f.write(f"{len(images)}\n")
            return [self.person(image) for image in images]

        def person(self, image):
            gray = image.astype(np.float64).mean(axis=2)
            border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
            mask = (np.abs(gray - np.median(border)) > 40).astype(np.uint8)
            if mask.mean() < self.min_area:
                return None
            ys, xs = np.nonzero(mask)
            x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
            rows = (np.arange(17) + 0.5) / 17 * (y1 - y0) + y0
            scores = np.array([mask[int(r)].mean() for r in rows])
            keypoints = np.stack([np.full(17, (x0 + x1) / 2.0), rows, np.where(scores >= self.keypoint_thresh, 2.0, 0.0)], axis=1)
            return PersonLabel(mask, keypoints, scores, np.array([x0, y0, x1, y1], dtype=np.float64), float(mask.mean()))
