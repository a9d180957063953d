"""Seeding, a short description of the software environment for the log, and the device a
config names."""

import os
import platform
import random
import sys
from datetime import datetime

import numpy as np
import torch

from .errors import ConfigError


def seed_all_rng(seed=None) -> int:
    """Seed Python, NumPy and torch RNGs. ``None`` draws a fresh seed. Returns the seed used."""
    if seed is None:
        seed = os.getpid() + int(datetime.now().strftime("%S%f")) + int.from_bytes(os.urandom(2), "big")
        seed %= 2**31
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    return seed


def collect_env_info() -> str:
    """A table of versions (Python, torch, CUDA, detectron2 if present) for the log."""
    from importlib.metadata import PackageNotFoundError, version

    from daaf import __version__

    try:
        torchvision_version = version("torchvision")  # without importing it (slow)
    except PackageNotFoundError:
        torchvision_version = "not installed"

    rows = [
        ("sys.platform", sys.platform),
        ("Python", sys.version.replace("\n", " ")),
        ("machine", platform.machine()),
        ("numpy", np.__version__),
        ("daaf", __version__),
        ("PyTorch", torch.__version__),
        ("torchvision", torchvision_version),
        ("CUDA available", torch.cuda.is_available()),
    ]
    if torch.cuda.is_available():
        rows.append(("GPU", ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))))
    try:
        import detectron2

        rows.append(("detectron2", detectron2.__version__))
    except ImportError:
        rows.append(("detectron2", "not installed (optional: only the detectron2 labeler/backbone need it)"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def resolve_device(device: str, key: str) -> torch.device:
    """``device`` ("cpu", "cuda", "cuda:1") as a torch.device; a one-line UserError naming the
    config ``key`` when it asks for CUDA on a machine without it."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"{key} is '{device}' but no CUDA device is available; set {key} cpu")
    try:
        return torch.device(device)
    except RuntimeError:
        raise ConfigError(f"{key}: '{device}' is not a device (expected cpu, cuda or cuda:N)") from None
