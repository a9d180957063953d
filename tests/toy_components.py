"""A toy meta-architecture for engine tests, importable by subprocesses through cfg.IMPORTS.

Its loss depends on its parameters only (not on the batch), so two runs that take the same
optimizer steps end with identical weights whatever data they saw. Environment variables:
TOY_SLEEP (seconds per step, to kill a run mid-way), TOY_NAN_AT (iteration whose loss is NaN).
"""

import os
import time

import torch
from torch import nn

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
            images = batch["images"] if isinstance(batch, dict) else batch
            emb = self.fc(images.float().mean(dim=(2, 3)) / 255.0)
            if not self.training:
                return emb
            self.last_file_names = list(batch["file_names"])
            if os.environ.get("TOY_SLEEP"):
                time.sleep(float(os.environ["TOY_SLEEP"]))
            loss = (self.fc.weight - 1.0).pow(2).sum() + 0.0 * emb.sum()
            nan_at = os.environ.get("TOY_NAN_AT")
            if nan_at is not None and int(self.step_count) == int(nan_at):
                loss = loss * float("nan")
            self.step_count += 1
            return {"loss_toy": loss, "loss_bias": self.fc.bias.pow(2).sum() + 0.1}
