"""Text in the pictures lies inside them: every string the panels draw (measured with OpenCV's
own text size) and every matplotlib text of the CMC plot (measured by its renderer)."""

import cv2
import numpy as np
import pytest
import torch

from daaf.analysis.attention_maps import draw_attention_grid
from daaf.utils import visualization
from daaf.utils.visualization import cmc_figure, colour_scale_panel, fit_text, label_panel, ranked_list_row


@pytest.fixture
def drawn_text(monkeypatch):
    """Every cv2.putText call of the visualisation module: (image shape, text, origin, scale)."""
    calls = []
    original = cv2.putText

    def recording_put_text(image, text, origin, font, scale, colour, thickness=1, line_type=cv2.LINE_8):
        calls.append((image.shape, text, origin, font, scale, thickness))
        return original(image, text, origin, font, scale, colour, thickness, line_type)

    monkeypatch.setattr(visualization.cv2, "putText", recording_put_text)
    return calls


def assert_inside(calls):
    assert calls
    for shape, text, (x, y), font, scale, thickness in calls:
        (width, height), descent = cv2.getTextSize(text, font, scale, thickness)
        assert x >= 0 and x + width <= shape[1], f"'{text}' spans x {x}..{x + width} of a {shape[1]}-pixel-wide panel"
        assert y - height >= 0 and y + descent <= shape[0], f"'{text}' spans y {y - height}..{y + descent} of {shape[0]} pixels"


def test_ranked_list_query_title_wraps_and_keeps_the_first_match_rank(drawn_text):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (64, 32, 3), dtype=np.uint8)
    ranked_list_row(image, [image] * 3, [0.1234, 0.5, 12.75], [True, False, True], "q1234 AP 3.4%, 1st match #1234")
    assert_inside(drawn_text)
    texts = [text for shape, text, *_ in drawn_text]
    query_lines = texts[: texts.index("1: 0.123")]
    assert len(query_lines) >= 2 and " ".join(query_lines).endswith("1st match #1234")  # nothing of the title is lost


def test_attention_grid_titles_footers_and_key_fit_small_crops(drawn_text):
    images = torch.randint(0, 255, (2, 3, 64, 32), dtype=torch.uint8)
    maps = {"HAM": torch.rand(2, 16, 8), "PAM wrists+hips": torch.rand(2, 16, 8) * 1e-4}
    notes = {"PAM wrists+hips": ["r=-0.12", "r=0.98"]}
    draw_attention_grid(images, maps, notes=notes)
    assert_inside(drawn_text)
    texts = [t for _, t, *_ in drawn_text]
    assert any("min" in t for t in texts) and any("max" in t for t in texts)
    assert {"1", "0.5", "0"} <= set(texts)  # the colour key has numbers


def test_fit_text_wraps_words_before_shrinking_and_cuts_only_overlong_words():
    lines, scale = fit_text("aaa bbb ccc", visualization._text_width("aaa bbb", 0.5), 0.5)
    assert lines == ["aaa bbb", "ccc"] and scale == 0.5
    lines, scale = fit_text("x" * 200, 40, 0.5)
    assert scale == visualization._MIN_FONT_SCALE and "".join(lines) == "x" * 200
    assert all(visualization._text_width(line, scale) <= 40 for line in lines)


def test_label_panel_leaves_the_panel_below_the_strips_untouched():
    panel = np.full((128, 64, 3), 200, np.uint8)
    out = label_panel(panel, "a very long title that wraps", footer="min 0.001 max 12.3")
    assert out.shape == panel.shape and (out[50:70] == 200).all()
    assert (panel == 200).all()  # a copy


def test_colour_key_is_a_bar_from_the_maximum_down_to_the_minimum():
    panel = colour_scale_panel(128, 64)
    column = panel[:, 4].astype(int)
    coloured = np.flatnonzero(np.ptp(column, axis=1) > 60)  # JET rows are far from grey
    top, bottom = column[coloured[0]], column[coloured[-1]]
    assert top[0] > top[2] and bottom[2] > bottom[0]  # red at the top, blue at the bottom


def test_cmc_legend_lies_inside_the_figure_and_leaves_the_axes_their_width():
    labels = [f"DAAF-BoT (ResNet-50, last stride 1) + re-ranking on {name}" for name in ("Market1501", "DukeMTMC-reID", "CUHK03")]
    fig = cmc_figure({label: np.linspace(0.5, 1.0, 50) for label in labels})
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    figure_box = fig.bbox
    drawn = fig.get_tightbbox(renderer).transformed(fig.dpi_scale_trans)  # what is drawn, in pixels
    assert drawn.x0 >= 0 and drawn.y0 >= 0 and drawn.x1 <= figure_box.x1 and drawn.y1 <= figure_box.y1
    axes_box = fig.axes[0].get_window_extent(renderer)
    assert axes_box.width >= 0.7 * figure_box.width and axes_box.x0 > 0
    legend_box = fig.legends[0].get_window_extent(renderer)
    assert legend_box.y1 <= axes_box.y0  # the legend never covers the curves
    import matplotlib.pyplot as plt

    plt.close(fig)
