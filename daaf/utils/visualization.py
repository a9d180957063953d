"""Pictures a person would rather look at than read: CMC curves, heat-map overlays, grids."""

from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

from .file_io import atomic_write

__all__ = [
    "plot_cmc",
    "cmc_figure",
    "fit_text",
    "overlay_heatmap",
    "colour_scale_panel",
    "image_grid",
    "save_image",
    "label_panel",
    "bordered",
    "fit_panel",
    "ranked_list_row",
]


def cmc_figure(curves: Dict[str, np.ndarray], max_rank: int = 50):
    """A matplotlib figure of CMC curves {label: (R,) fractions in [0, 1]}; the legend sits under
    the axes (one line per curve, the figure grows with them) so long labels never squeeze the plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    legend_inches = 0.25 * len(curves) + 0.2
    fig = plt.figure(figsize=(5.5, 4 + legend_inches), dpi=100)
    ax = fig.add_axes((0.13, (legend_inches + 0.55) / (4 + legend_inches), 0.82, 3.05 / (4 + legend_inches)))
    for label, cmc in curves.items():
        cmc = np.asarray(cmc)[:max_rank]
        ranks = np.arange(1, len(cmc) + 1)
        ax.plot(ranks, cmc * 100, marker="o", markersize=2, label=f"{label} (Rank-1 {cmc[0] * 100:.1f}%)")
    ax.set_xlabel("rank")
    ax.set_ylabel("matching rate (%)")
    ax.set_title("CMC")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    fig.legend(loc="lower left", bbox_to_anchor=(0.02, 0.01), frameon=False, fontsize="small")
    _shrink_legend_to_fit(fig)
    return fig


def _shrink_legend_to_fit(fig, smallest: float = 5.0) -> None:
    """Lower the legend's font size until it lies inside the figure's width."""
    legend = fig.legends[0]
    renderer = fig.canvas.get_renderer()
    size = legend.get_texts()[0].get_fontsize() if legend.get_texts() else smallest
    while legend.get_window_extent(renderer).x1 > fig.bbox.x1 and size > smallest:
        size -= 0.5
        for text in legend.get_texts():
            text.set_fontsize(size)


def plot_cmc(curves: Dict[str, np.ndarray], path: str, max_rank: int = 50) -> None:
    """Save CMC curves {label: (R,) fractions in [0, 1]} as a PNG at ``path`` (:func:`cmc_figure`)."""
    import matplotlib.pyplot as plt

    fig = cmc_figure(curves, max_rank)
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


_FONT = cv2.FONT_HERSHEY_SIMPLEX
_MIN_FONT_SCALE = 0.25


def _text_width(text: str, scale: float) -> int:
    return cv2.getTextSize(text, _FONT, scale, 1)[0][0]


def fit_text(text: str, width: int, scale: float) -> Tuple[List[str], float]:
    """Lines and font scale at which ``text`` fits ``width`` pixels: words wrap onto new lines, and
    the scale shrinks (down to 0.25) only while one word alone is wider than the panel; a word still
    too wide at the smallest scale is cut into pieces that fit."""
    words = text.split()
    if not words:
        return [], scale
    widest = max(_text_width(w, scale) for w in words)
    if widest > width:
        scale = max(_MIN_FONT_SCALE, scale * width / widest)
    pieces = []
    for word in words:
        while _text_width(word, scale) > width and len(word) > 1:
            cut = max(i for i in range(1, len(word)) if _text_width(word[:i], scale) <= width or i == 1)
            pieces.append(word[:cut])
            word = word[cut:]
        pieces.append(word)
    lines = [pieces[0]]
    for piece in pieces[1:]:
        joined = f"{lines[-1]} {piece}"
        if _text_width(joined, scale) <= width:
            lines[-1] = joined
        else:
            lines.append(piece)
    return lines, scale


def _line_metrics(scale: float) -> Tuple[int, int]:
    """(ascent, line height) in pixels of a line of text at ``scale``."""
    (_, ascent), descent = cv2.getTextSize("Hg", _FONT, scale, 1)
    return ascent, ascent + descent + 3


def panel_font_scale(height: int) -> float:
    """The font scale of the text on a panel ``height`` pixels high."""
    return max(10, height // 14) / 30.0


def label_panel(panel: np.ndarray, text: str, colour=(255, 255, 255), footer: str = "") -> np.ndarray:
    """A copy of an RGB panel with ``text`` written on a dark strip at its top (and ``footer`` on one
    at its bottom); text that is wider than the panel wraps onto more lines (:func:`fit_text`)."""
    out = panel.copy()
    height, width = out.shape[:2]
    margin = 2
    for line, at_top in ((text, True), (footer, False)):
        lines, scale = fit_text(line, width - 2 * margin, panel_font_scale(height))
        if not lines:
            continue
        ascent, line_height = _line_metrics(scale)
        strip = min(height, line_height * len(lines) + 1)
        top = 0 if at_top else height - strip
        out[top : top + strip] = (out[top : top + strip] * 0.3).astype(np.uint8)
        for k, piece in enumerate(lines):
            cv2.putText(out, piece, (margin, top + k * line_height + ascent + 2), _FONT, scale, colour, 1, cv2.LINE_AA)
    return out


def label_height(text: str, width: int, height: int) -> int:
    """How many pixels high :func:`label_panel`'s strip for ``text`` is on a (height, width) panel."""
    lines, scale = fit_text(text, width - 4, panel_font_scale(height))
    return _line_metrics(scale)[1] * len(lines) + 1 if lines else 0


# The fractions of a map's range that the colour key names.
_KEY_TICKS = (1.0, 0.75, 0.5, 0.25, 0.0)


def colour_scale_panel(height: int, width: int) -> np.ndarray:
    """The key of :func:`overlay_heatmap`'s colours, RGB (height, width, 3): a JET bar with ticks
    at 0 (each map's minimum, bottom) to 1 (its maximum, top); every map prints its own minimum and
    maximum under it."""
    title = "key: share of each map's range"
    panel = label_panel(np.full((height, width, 3), 255, np.uint8), title)
    bar_width = max(width // 4, 4)
    scale = fit_text("0.75", width - bar_width - 8, panel_font_scale(height))[1]
    ascent = _line_metrics(scale)[0]
    top, bottom = label_height(title, width, height) + ascent, height - ascent
    ramp = np.linspace(255, 0, bottom - top, dtype=np.float32)[:, None].repeat(bar_width, axis=1)
    panel[top:bottom, 2 : 2 + bar_width] = cv2.applyColorMap(np.uint8(ramp), cv2.COLORMAP_JET)[:, :, ::-1]
    for tick in _KEY_TICKS:
        y = int(round(bottom - 1 - tick * (bottom - top - 1)))
        cv2.line(panel, (2 + bar_width, y), (5 + bar_width, y), (0, 0, 0), 1)
        cv2.putText(panel, f"{tick:g}", (bar_width + 7, y + ascent // 2), _FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)
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
