"""The seed statistics of the tables: mean +- sample std over seeds, differences paired by seed.
The paired interval over seeds and queries is :mod:`daaf.evaluation.comparison`'s."""

from typing import Optional, Sequence, Tuple

import numpy as np

__all__ = ["summarize", "seed_differences"]


def summarize(values: Sequence[float]) -> Tuple[float, Optional[float]]:
    """(mean, sample standard deviation; None for one value: no spread to tell) of a non-empty sequence."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else None


def seed_differences(ours: Sequence[Optional[float]], base: Sequence[Optional[float]]) -> np.ndarray:
    """ours - base for the seeds where both are known (None: not run yet)."""
    return np.array([a - b for a, b in zip(ours, base) if a is not None and b is not None], dtype=np.float64)
