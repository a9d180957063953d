"""Each query's results of an evaluation (inference/<dataset>/per_query.npz, written by every
evaluation): the numbers that let two runs on the same test split be compared query by query.

The file holds, per query in the loader's order: ``query_files`` (str), ``query_pids``,
``query_camids``, ``query_ap`` and ``query_inp`` (float32 in [0, 1], NaN for a query without a
true match) and ``query_first_match`` (1-based rank of its first true match, 0 without one)."""

import re
from typing import Dict

import numpy as np

from daaf.utils.errors import UserError
from daaf.utils.file_io import PathManager, atomic_write

__all__ = ["PER_QUERY_FILE", "save_per_query", "load_per_query", "per_query_metric"]

PER_QUERY_FILE = "per_query.npz"
_KEYS = ("query_files", "query_pids", "query_camids", "query_ap", "query_inp", "query_first_match")
_RANK = re.compile(r"Rank-(\d+)$")


def save_per_query(path: str, **arrays: np.ndarray) -> None:
    """Write the per-query arrays (every key of the module docstring, each (Q,)) atomically."""
    missing = [k for k in _KEYS if k not in arrays]
    if missing:
        raise ValueError(f"per-query results lack {missing}")
    with atomic_write(path, "wb") as f:
        np.savez_compressed(f, **{k: np.asarray(arrays[k]) for k in _KEYS})


def load_npz_arrays(path: str, keys, kind: str, missing_hint: str, remedy: str) -> Dict[str, np.ndarray]:
    """The arrays of an .npz file the evaluation wrote (never unpickled), which must hold ``keys``;
    one-line UserErrors: ``missing_hint`` (formatted with the path) when the file is not there,
    "not <kind>" when it is unreadable, and the missing keys with ``remedy``."""
    if not PathManager.isfile(path):
        raise UserError(missing_hint.format(path=path))
    with PathManager.open(path, "rb") as f:
        try:
            data = dict(np.load(f, allow_pickle=False))
        except Exception as e:
            raise UserError(f"{path}: not {kind} ({type(e).__name__})") from None
    missing = [k for k in keys if k not in data]
    if missing:
        raise UserError(f"{path}: lacks {missing}; {remedy}")
    return data


def load_per_query(path: str) -> Dict[str, np.ndarray]:
    """The arrays of a per_query.npz (never unpickled); UserError naming the file when it is
    missing, unreadable or inconsistent."""
    data = load_npz_arrays(
        path,
        _KEYS,
        kind="a per-query results file",
        missing_hint="per-query results not found: {path} (every evaluation writes them; evaluate the run with --eval-only)",
        remedy="evaluate the run again (--eval-only) to rewrite it",
    )
    lengths = {k: data[k].shape for k in _KEYS}
    if any(shape != (len(data["query_files"]),) for shape in lengths.values()):
        raise UserError(f"{path}: its arrays differ in shape ({lengths}); expected one value per query")
    return data


def per_query_metric(data: Dict[str, np.ndarray], metric: str) -> np.ndarray:
    """(Q,) float64 per-query values of ``metric`` in percent: "mAP" (AP), "mINP" (INP) or
    "Rank-k" (100 when the first true match is within the top k, else 0); NaN for a query without a
    true match. Their mean over the valid queries is the evaluation's metric."""
    valid = data["query_first_match"] > 0
    if metric == "mAP":
        values = data["query_ap"].astype(np.float64) * 100
    elif metric == "mINP":
        values = data["query_inp"].astype(np.float64) * 100
    elif _RANK.match(metric):
        k = int(_RANK.match(metric).group(1))
        values = ((data["query_first_match"] >= 1) & (data["query_first_match"] <= k)) * 100.0
    else:
        raise UserError(f"unknown metric '{metric}' (expected mAP, mINP or Rank-<k>)")
    return np.where(valid, values, np.nan)
