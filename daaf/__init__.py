"""DAAF-ReID: Deep Attention Aware Feature learning for person re-identification."""

import os

__version__ = "0.1.0"

# PyTorch's CPU allocator returns every large tensor's memory to the system when it is freed, so
# each full-resolution map of a step (DAAF's decoders: hundreds of MB) is page-faulted in again,
# 4 KB at a time: that cost more than the arithmetic of PAB's decoder. With this variable set,
# PyTorch backs tensors of 2 MB and more with transparent huge pages (where the kernel offers
# them), 6x faster to fault in; it is read once, when torch first allocates, so it is set here,
# before the package imports torch. An explicit THP_MEM_ALLOC_ENABLE=0 turns it off.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")


def __getattr__(name):
    # the Python API is imported when first used, so that `import daaf` stays light
    if name == "FeatureExtractor":
        from daaf.engine.feature_extractor import FeatureExtractor

        return FeatureExtractor
    raise AttributeError(f"module 'daaf' has no attribute {name!r}")
