"""Pictures a person would rather look at than read: CMC curves, heat-map overlays, grids."""

from typing import Dict, Sequence

import cv2
import numpy as np

from .file_io import atomic_write

__all__ = [
    "plot_cmc",
    "overlay_heatmap",
    "colour_scale_panel",
    "image_grid",
    "save_image",
    "label_panel",
    "bordered",
    "fit_panel",
    "ranked_list_row",
]


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


def overlay_heatmap(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """(H, W, 3) uint8 RGB image + (h, w) map -> RGB overlay (the map normalised to [0, 1],
    resized to the image and coloured with the JET colour map)."""
    heat = np.asarray(heatmap, dtype=np.float32)
    heat = heat - heat.min()
    heat = heat / heat.max() if heat.max() > 0 else heat
    heat = cv2.resize(heat, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
    colour = cv2.applyColorMap(np.uint8(255 * heat), cv2.COLORMAP_JET)[:, :, ::-1]
    return np.uint8(np.clip((1 - alpha) * image + alpha * colour, 0, 255))


def label_panel(panel: np.ndarray, text: str, colour=(255, 255, 255), footer: str = "") -> np.ndarray:
    """A copy of an RGB panel with ``text`` written on a dark strip at its top (and ``footer``
    on one at its bottom)."""
    out = panel.copy()
    strip = max(10, out.shape[0] // 14)
    for line, top in ((text, 0), (footer, out.shape[0] - strip)):
        if line:
            out[top : top + strip] = (out[top : top + strip] * 0.3).astype(np.uint8)
            cv2.putText(out, line, (2, top + strip - 3), cv2.FONT_HERSHEY_SIMPLEX, strip / 30.0, colour, 1, cv2.LINE_AA)
    return out


def colour_scale_panel(height: int, width: int) -> np.ndarray:
    """The key of :func:`overlay_heatmap`'s colours: a JET bar from each map's minimum (bottom)
    to its maximum (top), which the panels print as "max ..."; RGB (height, width, 3)."""
    panel = np.full((height, width, 3), 255, np.uint8)
    bar_width = max(width // 4, 4)
    ramp = np.linspace(255, 0, height, dtype=np.float32)[:, None].repeat(bar_width, axis=1)
    panel[:, 2 : 2 + bar_width] = cv2.applyColorMap(np.uint8(ramp), cv2.COLORMAP_JET)[:, :, ::-1]
    scale = max(height // 14, 10) / 30.0
    for text, y in (("max", 14), ("each", height // 2 - 8), ("map's", height // 2 + 4), ("own", height // 2 + 16), ("min", height - 4)):
        cv2.putText(panel, text, (bar_width + 4, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return panel


def image_grid(rows: Sequence[Sequence[np.ndarray]], pad: int = 4, background: int = 255) -> np.ndarray:
    """Arrange RGB panels (each row a list; panels are resized to the first panel's size) in a grid."""
    h, w = rows[0][0].shape[:2]
    columns = max(len(r) for r in rows)
    grid = np.full((len(rows) * (h + pad) + pad, columns * (w + pad) + pad, 3), background, dtype=np.uint8)
    for i, row in enumerate(rows):
        for j, panel in enumerate(row):
            if panel.shape[:2] != (h, w):
                panel = cv2.resize(panel, (w, h), interpolation=cv2.INTER_LINEAR)
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            grid[y : y + h, x : x + w] = panel
    return grid


def save_image(path: str, rgb: np.ndarray) -> None:
    """Write an RGB uint8 image (PNG/JPEG by extension) atomically."""
    ok, data = cv2.imencode("." + path.rsplit(".", 1)[-1], np.ascontiguousarray(rgb[:, :, ::-1]))
    if not ok:
        raise ValueError(f"cannot encode image for {path}")
    with atomic_write(path, "wb") as f:
        f.write(data.tobytes())


def bordered(panel: np.ndarray, colour, width: int = 3) -> np.ndarray:
    """A copy of a panel with a coloured border (ranked lists: green correct, red wrong)."""
    out = panel.copy()
    out[:width], out[-width:], out[:, :width], out[:, -width:] = colour, colour, colour, colour
    return out


# Border colours of ranked lists (RGB).
QUERY_COLOUR = (40, 90, 230)
MATCH_COLOUR = (30, 180, 60)
NON_MATCH_COLOUR = (220, 40, 40)
UNKNOWN_COLOUR = (150, 150, 150)


def fit_panel(image: np.ndarray, size=(256, 128)) -> np.ndarray:
    """An RGB image resized to a (height, width) panel."""
    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


def ranked_list_row(
    query: np.ndarray, gallery: Sequence[np.ndarray], distances: Sequence[float], correct=None, query_text: str = "query", size=(256, 128)
) -> list:
    """Panels of one ranked list: the query (blue border) then the gallery images best first, each
    labelled "rank: distance" with a green (same identity) / red (other) / grey (unknown) border.

    ``correct``: a bool per gallery image, or None when identities are unknown (search)."""
    row = [label_panel(bordered(fit_panel(query, size), QUERY_COLOUR, 4), query_text)]
    for rank, (image, distance) in enumerate(zip(gallery, distances), start=1):
        colour = UNKNOWN_COLOUR if correct is None else MATCH_COLOUR if correct[rank - 1] else NON_MATCH_COLOUR
        row.append(label_panel(bordered(fit_panel(image, size), colour, 4), f"{rank}: {distance:.3f}"))
    return row
