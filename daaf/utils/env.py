"""Seeding, a short description of the software environment for the log, the device a config
names, and how the process keeps freed CPU memory."""

import ctypes
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


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


def keep_freed_cpu_memory() -> bool:
    """Have glibc's malloc keep the memory of freed CPU tensors for the next ones instead of
    returning it to the system; returns whether that is now in effect (False: not glibc,
    DAAF_KEEP_FREED_MEMORY=0, or PyTorch's huge-page allocations turned off, see daaf/__init__.py);
    a ConfigError for a DAAF_KEEP_FREED_MEMORY other than 0 or 1.

    By default glibc serves every allocation of 32 MB or more with its own mmap and unmaps it when
    freed, so each full-size map of a training step (DAAF's decoder outputs: hundreds of MB) is
    page-faulted in and zeroed by the kernel again, every step: on 2 cores that took more time than
    PAB's arithmetic (the system time of the DAAF-BoT benchmark fell about 4x with this). Here large
    allocations come from the heap and freed memory stays in it, as a caching allocator does; the
    process keeps its peak footprint. What is computed does not change.
    """
    setting = os.environ.get("DAAF_KEEP_FREED_MEMORY", "1")
    if setting not in ("0", "1"):
        raise ConfigError(f"DAAF_KEEP_FREED_MEMORY: expected 0 or 1, got '{setting}'")
    if setting == "0" or os.environ.get("THP_MEM_ALLOC_ENABLE") != "1":
        # PyTorch aligns its huge-page tensors to 2 MB, which leaves glibc room to reuse a freed
        # block for the next tensor of its size; without huge pages (64-byte alignment) a freed
        # block is not reused until it merges with its neighbours, and the heap grows meanwhile
        return False
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # no mmap'ed chunks (they are unmapped when freed), and never trim the heap's top: glibc reads
    # the int -1 as the largest size_t (a threshold given as a positive int would end at 2 GB)
    return mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, -1) == 1
