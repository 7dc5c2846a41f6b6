"""amla.views.AttentionViewer and plot_attention, headless."""

from __future__ import annotations

import base64
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from IPython.core.formatters import DisplayFormatter
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from amla.views import AttentionViewer, fig_to_png, plot_attention
from amla.views.attention import ACCENT
from amla.views.base import WIDGET_VIEW_MIMETYPE

matplotlib.use("Agg")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TOKENS = "the cat sat on the mat".split()


def weights(layers: int = 2, heads: int = 3, queries: int = 6, keys: int = 6, seed: int = 0) -> torch.Tensor:
    """Softmaxed random scores: every layer, head and query row differs."""
    generator = torch.Generator().manual_seed(seed)
    return (3 * torch.randn(layers, heads, queries, keys, generator=generator)).softmax(-1)


def outlines(ax: Any) -> list[Rectangle]:
    """The selected-query outline(s) of a heatmap: its unfilled rectangles."""
    return [p for p in ax.patches if isinstance(p, Rectangle) and not p.get_fill()]


def with_bad_values() -> torch.Tensor:
    w = torch.rand(6, 6)
    w[1, 0], w[3, 2] = float("nan"), float("inf")
    return w


def count_draws(view: AttentionViewer) -> list[int]:
    calls: list[int] = []
    original = view.draw

    def counted() -> Figure:
        calls.append(1)
        return original()

    view.draw = counted  # type: ignore[method-assign]
    return calls


# --- input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(6, 6), (3, 6, 6), (2, 3, 6, 6)])
def test_two_three_and_four_dims_are_accepted(shape: tuple[int, ...]) -> None:
    view = AttentionViewer(torch.rand(shape).softmax(-1), TOKENS)
    padded = (1,) * (4 - len(shape)) + shape
    assert view.weights.shape == padded and view.keys == TOKENS
    assert view.png.startswith(PNG_MAGIC)
    assert [text.get_text() for text in view.figure().axes[0].get_yticklabels()] == TOKENS
    assert (view.layer.layout.display == "none") == (padded[0] == 1)
    assert (view.head.layout.display == "none") == (padded[1] == 1)
    assert (view.all_heads.layout.display == "none") == (padded[1] == 1)


def test_cross_attention_keys_and_default_last_query() -> None:
    view = AttentionViewer(np.full((4, 7), 1 / 7), ["21", "March", "1984", "</s>"], list("1984-03"))
    assert view.query.value == 3 and view.query.label == "3: </s>"
    assert [t.get_text() for t in view.figure().axes[0].get_xticklabels()] == list("1984-03")
    assert all(c.layout.display == "none" for c in (view.layer, view.head, view.all_heads))
    assert view.query.layout.display != "none"


BAD_INPUTS: list[tuple[dict[str, Any], type[Exception], str]] = [
    (dict(weights=torch.rand(6)), ValueError,
     r"weights must be \[layers, heads, queries, keys\] or fewer leading dims, got shape \(6,\)"),
    (dict(weights=torch.tensor(0.5)), ValueError, r"got shape \(\)"),
    (dict(weights=torch.rand(1, 2, 3, 6, 6)), ValueError, r"got shape \(1, 2, 3, 6, 6\)"),
    (dict(weights=torch.rand(2, 4, 7, 6)), ValueError,
     r"weights have 7 queries x 6 keys \(shape \(2, 4, 7, 6\)\) but 6 query tokens were given"),
    (dict(weights=torch.rand(6, 5), keys=list("abcd")), ValueError,
     r"6 queries x 5 keys \(shape \(6, 5\)\) but 4 key tokens were given"),
    (dict(weights=torch.rand(6, 5)), ValueError,
     r"but no keys were given, so the 6 query tokens .* with 5 tokens"),
    (dict(weights=with_bad_values()), ValueError,
     r"must be finite, but 2 of 36 values are nan or inf \(the first at index \(1, 0\), shape \(6, 6\)\)"),
    (dict(weights=torch.rand(2, 1, 6, 6), layer_names=["enc"]), ValueError,
     r"layer_names has 1 names but weights have 2 layers \(shape \(2, 1, 6, 6\)\)"),
    (dict(weights=torch.rand(6, 0)), ValueError, r"empty dimension: shape \(6, 0\)"),
    (dict(queries="the cat sat on the mat"), TypeError, r"got the string 'the cat sat on the mat'; split it"),
    (dict(weights=[["a"] * 6] * 6), TypeError, "weights must be a tensor or array of numbers, got list"),
]


@pytest.mark.parametrize(("kwargs", "error", "message"), BAD_INPUTS)
def test_bad_input_is_a_one_line_error(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    arguments = dict(weights=torch.rand(6, 6), queries=TOKENS) | kwargs
    with pytest.raises(error, match=message) as info:
        AttentionViewer(**arguments)
    assert "\n" not in str(info.value)


def test_grad_bfloat16_numpy_and_number_inputs_work() -> None:
    scores = torch.randn(2, 6, 6, requires_grad=True)
    view = AttentionViewer(scores.softmax(-1), TOKENS)  # grad-requiring, non-leaf
    assert view.weights.dtype == np.float64 and view.weights.shape == (1, 2, 6, 6)
    bf16 = AttentionViewer(scores.detach().softmax(-1).to(torch.bfloat16), TOKENS)
    assert np.allclose(bf16.weights, view.weights, atol=1e-2)
    from_numpy = AttentionViewer(scores.detach().softmax(-1).numpy(), np.array(TOKENS))
    assert np.allclose(from_numpy.weights, view.weights)
    numbers = AttentionViewer(torch.rand(3, 3), [0.5, 1.25, 2.0])
    assert numbers.queries == ["0.5", "1.25", "2"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_input_works() -> None:
    w = weights().cuda().requires_grad_()
    assert np.allclose(AttentionViewer(w, TOKENS).weights, weights().numpy())


# --- controls -------------------------------------------------------------------------------------


def test_each_control_change_redraws_once_and_changes_the_picture() -> None:
    view = AttentionViewer(weights(), TOKENS, layer_names=["enc", "dec"])
    assert view.layer.label == "enc" and view.head.label == "head 0"
    draws = count_draws(view)
    seen = {view.png}
    for control, value in [(view.head, 2), (view.query, 1), (view.layer, 1), (view.all_heads, True)]:
        before = len(draws)
        control.value = value
        assert len(draws) == before + 1, control.description
        assert view.png not in seen, control.description
        seen.add(view.png)
        assert bytes(view.image.value) == view.png
    view.head.value = 2  # unchanged value: no redraw
    assert len(draws) == 4


def test_query_selection_moves_the_outline_and_the_strip() -> None:
    w = weights(1, 1)
    view = AttentionViewer(w, TOKENS)
    [box] = outlines(view.figure().axes[0])
    assert box.get_y() == pytest.approx(5 - 0.5)
    view.query.value = 2
    fig = view.figure()
    heat, _colorbar, strip = fig.axes
    [box] = outlines(heat)
    assert box.get_y() == pytest.approx(2 - 0.5) and box.get_width() == 6
    label = heat.get_yticklabels()[2]
    assert label.get_text() == "sat" and label.get_color() == ACCENT
    texts = [t.get_text() for t in strip.texts]
    assert texts[0::2] == TOKENS
    assert texts[1::2] == [f"{v:.2f}" for v in w[0, 0, 2].tolist()]
    assert "query 2 'sat'" in strip.get_title(loc="left")


def test_all_heads_shows_a_grid_on_one_scale() -> None:
    w = weights(layers=2, heads=4)
    view = AttentionViewer(w, TOKENS)
    assert len(view.figure().axes) == 3  # heatmap, colorbar, token strip
    view.select(all_heads=True, head=1)
    fig = view.figure()
    assert len(fig.axes) == 4 + 1  # a heatmap per head + one colorbar
    titles = [ax.get_title() for ax in fig.axes[:4]]
    assert titles == ["head 0", "head 1", "head 2", "head 3"]
    assert fig.axes[1].title.get_color() == ACCENT
    limits = [ax.images[0].get_clim() for ax in fig.axes[:4]]
    assert limits == [(0.0, pytest.approx(float(w[0].max())))] * 4
    assert all(len(outlines(ax)) == 1 for ax in fig.axes[:4])
    view.select(layer=1)
    assert view.figure().axes[0].images[0].get_array()[0, 0] == pytest.approx(float(w[1, 0, 0, 0]))
    view.select(all_heads=False)
    assert len(view.figure().axes) == 3


def test_select_sets_several_controls_with_one_redraw() -> None:
    view = AttentionViewer(weights(), TOKENS, layer_names=["enc", "dec"])
    draws = count_draws(view)
    assert view.select(layer="dec", head=-1, query=0) is view
    assert len(draws) == 1
    assert view.values == {"layer": 1, "head": 2, "all_heads": False, "query": 0}
    view.select(layer=1, head=2)  # nothing changes: no redraw
    assert len(draws) == 1
    view.head.value = 0  # the controls still redraw on their own afterwards
    assert len(draws) == 2
    for bad, message in [(dict(head=3), r"head must be an int in 0..2"), (dict(layer="mid"), r"'enc', 'dec'"),
                         (dict(query=True), "query must be an int")]:
        with pytest.raises(ValueError, match=message):
            view.select(**bad)


# --- pictures -------------------------------------------------------------------------------------


def test_long_sequences_stay_legible() -> None:
    tokens = [f"token{i}" if i % 7 else f"averyveryverylongtoken{i}" for i in range(64)]
    view = AttentionViewer(weights(1, 2, 64, 64), tokens)
    fig = view.figure()
    width, height = fig.get_size_inches()
    assert width <= 10.5 and height <= 11
    heat = fig.axes[0]
    labels = heat.get_yticklabels()
    assert len(labels) == 64 and min(label.get_fontsize() for label in labels) >= 5
    assert labels[7].get_text() == "averyveryvery…"
    grid = view.select(all_heads=True).figure()
    assert grid.get_size_inches()[0] <= 10.5
    shown = grid.axes[0].get_yticklabels()
    assert 8 <= len(shown) < 64 and shown[0].get_fontsize() >= 5  # thinned, not shrunk to nothing


def test_tokens_are_not_parsed_as_math() -> None:
    fig = plot_attention(torch.eye(3), ["$x$", "cost $5", "\n"], None)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["$x$", "cost $5", "'\\n'"]
    fig_to_png(fig)  # renders without a mathtext error


def test_plot_attention_figure_and_ax() -> None:
    fig = plot_attention(torch.rand(3, 5).softmax(-1), ["a", "b", "c"], list("vwxyz"), title="cross")
    assert isinstance(fig, Figure) and len(fig.axes) == 2 and fig._suptitle.get_text() == "cross"
    assert fig.axes[1].get_ylim()[0] == 0.0  # the colorbar starts at 0
    host = Figure(figsize=(8, 3))
    left, right = host.subplots(1, 2)
    assert plot_attention(np.eye(4), None, ax=right, title="identity") is host
    assert right.get_title() == "identity" and [t.get_text() for t in right.get_xticklabels()] == list("0123")
    with pytest.raises(ValueError, match=r"must be \[queries, keys\], got shape \(2, 4, 4\); pick one map"):
        plot_attention(torch.rand(2, 4, 4), list("abcd"))


def test_no_figures_leak() -> None:
    open_before = plt.get_fignums()
    view = AttentionViewer(weights(), TOKENS)
    view.select(head=1, query=0)
    view.all_heads.value = True
    fig_to_png(plot_attention(torch.eye(3), list("abc")))
    assert plt.get_fignums() == open_before
    view.close()


def test_mimebundle_has_widget_png_and_text() -> None:
    view = AttentionViewer(weights(), TOKENS)
    bundle = view._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "image/png", WIDGET_VIEW_MIMETYPE}
    assert base64.b64decode(bundle["image/png"]) == view.png
    assert bundle[WIDGET_VIEW_MIMETYPE]["model_id"] == view.widget.model_id
    assert bundle["text/plain"] == "<AttentionViewer layer=0, head=0, all_heads=False, query=5>"
    data, _metadata = DisplayFormatter().format(view)
    assert {"text/plain", "image/png", WIDGET_VIEW_MIMETYPE} <= set(data)
