"""The statistics of the tables: mean +- sample std over seeds, differences paired by seed."""

from typing import Optional, Sequence, Tuple

import numpy as np

__all__ = ["summarize", "paired_differences"]


def summarize(values: Sequence[float]) -> Tuple[float, float]:
    """(mean, sample standard deviation; 0 for one value) of a non-empty sequence."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def paired_differences(ours: Sequence[Optional[float]], base: Sequence[Optional[float]]) -> np.ndarray:
    """ours - base for the seeds where both are known (None: not run yet)."""
    return np.array([a - b for a, b in zip(ours, base) if a is not None and b is not None], dtype=np.float64)
