"""Query-gallery distances from features, one chunk of queries at a time."""

from typing import Iterator, Tuple

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["compute_distance_chunks", "compute_distance"]


def _prepare(features: torch.Tensor, metric: str) -> torch.Tensor:
    features = torch.as_tensor(features).float()
    if metric == "cosine":
        return F.normalize(features, dim=1)
    if metric == "euclidean":
        return features
    raise ValueError(f"TEST.METRIC: expected 'cosine' or 'euclidean', got '{metric}'")


def compute_distance_chunks(query: torch.Tensor, gallery: torch.Tensor, metric: str = "cosine", chunk_size: int = 512) -> Iterator[Tuple[np.ndarray, slice]]:
    """Yield ((chunk, G) float32 distances, slice of the queries) for (Q, D) and (G, D) features.

    cosine: 1 - cos(q, g); euclidean: ||q - g||. Peak memory is chunk_size x G, not Q x G.
    """
    q = _prepare(query, metric)
    g = _prepare(gallery, metric).to(q.device)
    g_sq = g.pow(2).sum(1) if metric == "euclidean" else None
    for start in range(0, len(q), chunk_size):
        block = q[start : start + chunk_size]
        if metric == "cosine":
            dist = 1.0 - block @ g.t()
        else:
            dist = (block.pow(2).sum(1, keepdim=True) + g_sq[None] - 2.0 * block @ g.t()).clamp_(min=0).sqrt_()
        yield dist.cpu().numpy().astype(np.float32, copy=False), slice(start, start + len(block))


def compute_distance(query, gallery, metric: str = "cosine") -> np.ndarray:
    """The whole (Q, G) distance matrix (for small sets; prefer the chunked generator)."""
    chunks = [d for d, _ in compute_distance_chunks(query, gallery, metric)]
    return np.concatenate(chunks, axis=0) if chunks else np.zeros((0, len(gallery)), dtype=np.float32)
