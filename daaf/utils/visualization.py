"""Pictures: CMC curves (more plots come with the visualization tools)."""

from typing import Dict

import numpy as np

from .file_io import atomic_write

__all__ = ["plot_cmc"]


def plot_cmc(curves: Dict[str, np.ndarray], path: str, max_rank: int = 50) -> None:
    """Save CMC curves {label: (R,) fractions in [0, 1]} as a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    for label, cmc in curves.items():
        cmc = np.asarray(cmc)[:max_rank]
        ranks = np.arange(1, len(cmc) + 1)
        ax.plot(ranks, cmc * 100, marker="o", markersize=2, label=f"{label} (R1 {cmc[0] * 100:.1f}%)")
    ax.set_xlabel("rank")
    ax.set_ylabel("matching rate (%)")
    ax.set_title("CMC")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png")
    plt.close(fig)
