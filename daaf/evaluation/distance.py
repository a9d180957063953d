"""Query-gallery distances from features: the one place that defines the metrics ("cosine",
"euclidean") the evaluator, re-ranking and the tools use."""

from typing import Iterator, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "METRICS",
    "prepare_features",
    "squared_norms",
    "pairwise_distance",
    "paired_distance",
    "compute_distance_chunks",
    "compute_distance",
]

METRICS = ("cosine", "euclidean")


def prepare_features(features, metric: str) -> torch.Tensor:
    """(N, D) features as float32 as the metric compares them: L2-normalised for cosine."""
    features = torch.as_tensor(features).float()
    if metric == "cosine":
        return F.normalize(features, dim=1)
    if metric == "euclidean":
        return features
    raise ValueError(f"TEST.METRIC: expected one of {', '.join(METRICS)}, got '{metric}'")


def squared_norms(features: torch.Tensor, metric: str) -> Optional[torch.Tensor]:
    """What :func:`pairwise_distance` can reuse for prepared (N, D) features compared many times:
    their squared norms (N,) for euclidean, None for cosine (which needs none)."""
    return features.pow(2).sum(1) if metric == "euclidean" else None


def pairwise_distance(a: torch.Tensor, b: torch.Tensor, metric: str, b_sq: Optional[torch.Tensor] = None) -> torch.Tensor:
    """(M, N) distances between prepared features (M, D) and (N, D): 1 - cos for cosine, ||a - b||
    for euclidean (``b_sq``: b's squared norms (N,), when known). One matrix product either way."""
    if metric == "cosine":
        return 1.0 - a @ b.t()
    if b_sq is None:
        b_sq = b.pow(2).sum(1)
    return torch.addmm(a.pow(2).sum(1, keepdim=True) + b_sq[None], a, b.t(), alpha=-2.0).clamp_(min=0).sqrt_()


def paired_distance(a: torch.Tensor, b: torch.Tensor, metric: str) -> torch.Tensor:
    """(P,) distances between the rows of prepared features a and b (P, D), as pairwise_distance
    computes them."""
    if metric == "cosine":
        return 1.0 - (a * b).sum(1)
    return (a.pow(2).sum(1) + b.pow(2).sum(1) - 2.0 * (a * b).sum(1)).clamp_(min=0).sqrt_()


def compute_distance_chunks(
    query: torch.Tensor, gallery: torch.Tensor, metric: str = "cosine", chunk_size: int = 512, keep_on_device: bool = False
) -> Iterator[Tuple[Union[np.ndarray, torch.Tensor], slice]]:
    """Yield ((chunk, G) float32 distances, slice of the queries) for (Q, D) and (G, D) features,
    computed on the query features' device: NumPy arrays, or with ``keep_on_device`` tensors left
    where they were computed.

    cosine: 1 - cos(q, g); euclidean: ||q - g||. Peak memory is chunk_size x G, not Q x G.
    """
    q = prepare_features(query, metric)
    g = prepare_features(gallery, metric).to(q.device)
    g_sq = squared_norms(g, metric)
    for start in range(0, len(q), chunk_size):
        block = q[start : start + chunk_size]
        dist = pairwise_distance(block, g, metric, g_sq)
        if not keep_on_device:
            dist = dist.cpu().numpy().astype(np.float32, copy=False)
        yield dist, slice(start, start + len(block))


def compute_distance(query, gallery, metric: str = "cosine") -> np.ndarray:
    """The whole (Q, G) distance matrix (for small sets; prefer the chunked generator)."""
    chunks = [d for d, _ in compute_distance_chunks(query, gallery, metric)]
    return np.concatenate(chunks, axis=0) if chunks else np.zeros((0, len(gallery)), dtype=np.float32)
