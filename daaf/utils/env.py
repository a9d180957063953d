"""Seeding and a short description of the software environment for the log."""

import os
import platform
import random
import sys
from datetime import datetime

import numpy as np
import torch


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
    import torchvision

    from daaf import __version__

    rows = [
        ("sys.platform", sys.platform),
        ("Python", sys.version.replace("\n", " ")),
        ("machine", platform.machine()),
        ("numpy", np.__version__),
        ("daaf", __version__),
        ("PyTorch", torch.__version__),
        ("torchvision", torchvision.__version__),
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
