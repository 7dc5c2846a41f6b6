"""The graph views of Hours 13-14, without a browser: ``EmbeddingExplorer`` and ``NeighbourhoodAttention``."""

from __future__ import annotations

import re
from typing import Any

import ipywidgets as widgets
import matplotlib
import numpy as np
import pytest
import torch
from IPython.core.formatters import DisplayFormatter
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.figure import Figure

from amla.views.base import WIDGET_VIEW_MIMETYPE, View
from amla.views.embedding import EmbeddingExplorer
from amla.views.graph_attention import NeighbourhoodAttention

matplotlib.use("Agg")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
N = 12


def ring_graph(n: int = N) -> torch.Tensor:
    """A ring with a chord, both directions of every edge: [2, E]."""
    pairs = [(i, (i + 1) % n) for i in range(n)] + [(0, n // 2)]
    one_way = torch.tensor(pairs).T
    return torch.cat([one_way, one_way.flip(0)], dim=1)


def embedding_frames(epochs: list[int], n: int = N) -> dict[int, torch.Tensor]:
    """Points that spread out and move over the epochs: every frame is different."""
    g = torch.Generator().manual_seed(0)
    base = torch.randn(n, 2, generator=g)
    return {e: base * (1 + 0.3 * k) + torch.tensor([0.5 * k, -0.2 * k]) for k, e in enumerate(epochs)}


def labels_of(n: int = N) -> torch.Tensor:
    return torch.arange(n) % 3


# --- the embedding explorer -------------------------------------------------------------------------------------


def scatter_points(fig: Figure) -> np.ndarray:
    """The positions of the first scatter (all points) of the figure's axes."""
    collections = [c for c in fig.axes[0].collections if isinstance(c, PathCollection)]
    return np.asarray(collections[0].get_offsets())


def test_explorer_slider_range_is_the_saved_epochs_and_every_epoch_has_its_picture() -> None:
    epochs = [0, 10, 20, 30]
    frames = embedding_frames(epochs)
    ex = EmbeddingExplorer(frames, labels_of(), ring_graph(), title="ring")
    slider = ex.controls["epoch"]
    assert isinstance(ex, View) and isinstance(slider, widgets.IntSlider) and isinstance(ex.play, widgets.Play)
    assert list(range(slider.min, slider.max + 1, slider.step)) == epochs
    assert (ex.play.min, ex.play.max, ex.play.step) == (slider.min, slider.max, slider.step)
    assert slider.value == 30, "starts at the last saved epoch"
    assert ex.link.source == (ex.play, "value") and ex.link.target == (slider, "value")
    assert ex.widget.children[0].children[:2] == (ex.play, slider)
    pictures = {}
    for epoch in epochs:
        slider.value = epoch
        assert ex.epoch == epoch and ex.png.startswith(PNG_MAGIC) and bytes(ex.image.value) == ex.png
        pictures[epoch] = ex.png
    assert len(set(pictures.values())) == len(epochs), "a frame change changes the picture"
    assert ex.png_for(10) == pictures[10] and ex.epoch == 30
    assert ex.show(20) is ex and ex.epoch == 20 and ex.png == pictures[20]
    assert ex.select(-1).epoch == 30
    ex.close()


def test_explorer_uneven_epochs_use_a_selection_slider_played_by_index() -> None:
    epochs = [0, 1, 5, 50]
    ex = EmbeddingExplorer(embedding_frames(epochs), labels_of())
    slider = ex.controls["epoch"]
    assert isinstance(slider, widgets.SelectionSlider)
    assert [value for _, value in slider.options] == epochs and slider.value == 50
    assert (ex.play.min, ex.play.max) == (0, 3)
    assert ex.link.source == (ex.play, "value") and ex.link.target == (slider, "index")
    before = ex.png
    slider.index = 1  # what the Play button does in the browser
    assert ex.epoch == 1 and ex.png != before
    ex.close()


def test_explorer_picture_of_epoch_k_is_drawn_from_frames_k_on_one_axis_range() -> None:
    epochs = [0, 10, 20]
    frames = embedding_frames(epochs)
    edge_index = ring_graph()
    ex = EmbeddingExplorer(frames, labels_of(), edge_index)
    every = torch.cat(list(frames.values())).numpy()
    limits = set()
    for epoch in epochs:
        ex.select(epoch)
        fig = ex.figure()
        np.testing.assert_allclose(scatter_points(fig), frames[epoch].numpy())
        (edges,) = [c for c in fig.axes[0].collections if isinstance(c, LineCollection)]
        assert len(edges.get_segments()) == edge_index.shape[1] // 2, "each undirected edge drawn once"
        ends = {tuple(np.round(point, 6)) for segment in edges.get_segments() for point in segment}
        assert ends == {tuple(np.round(p, 6)) for p in frames[epoch].double().numpy()}, "edges join this frame's points"
        assert f"epoch {epoch}" in fig.axes[0].get_title()
        (x0, x1), (y0, y1) = fig.axes[0].get_xlim(), fig.axes[0].get_ylim()
        limits.add((x0, x1, y0, y1))
        assert x0 < every[:, 0].min() and x1 > every[:, 0].max() and y0 < every[:, 1].min() and y1 > every[:, 1].max()
    assert len(limits) == 1, "every frame is drawn on the same axis range"


def test_explorer_legend_names_communities_and_the_labelled_nodes() -> None:
    mask = torch.zeros(N, dtype=torch.bool)
    mask[[0, 4, 8]] = True
    ex = EmbeddingExplorer(embedding_frames([0, 1]), labels_of(), ring_graph(), label_names=["red", "green", "blue"],
                           highlight=mask, axis_labels=None)
    fig = ex.figure()
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend[:3] == ["red", "green", "blue"] and "labelled (3)" in legend and any("edges" in t for t in legend)
    assert list(fig.axes[0].get_xticks()) == [] and list(fig.axes[0].get_yticks()) == []
    highlighted = [c for c in fig.axes[0].collections if isinstance(c, PathCollection)][1]
    np.testing.assert_allclose(highlighted.get_offsets(), embedding_frames([0, 1])[1].numpy()[[0, 4, 8]])
    same = EmbeddingExplorer(embedding_frames([0, 1]), labels_of(), highlight=[8, 4, 0])
    assert same.highlight.tolist() == [0, 4, 8]
    plain = EmbeddingExplorer({3: np.zeros((5, 2))})  # GAN samples style: no labels, no edges, one frame
    assert plain.slider.disabled and plain.png.startswith(PNG_MAGIC) and plain.figure().axes[0].get_legend() is None


def test_explorer_display_leaves_a_static_png_beside_the_widget() -> None:
    ex = EmbeddingExplorer(embedding_frames([0, 1, 2]), labels_of(), ring_graph())
    data, _ = DisplayFormatter().format(ex)
    assert "image/png" in data and WIDGET_VIEW_MIMETYPE in data
    assert data[WIDGET_VIEW_MIMETYPE]["model_id"] == ex.widget.model_id


@pytest.mark.parametrize("make, message", [
    (lambda: EmbeddingExplorer({}, None), r"non-empty dict \{epoch: points \[N, 2\]\}"),
    (lambda: EmbeddingExplorer([torch.zeros(N, 2)], None), r"non-empty dict"),
    (lambda: EmbeddingExplorer({0: torch.zeros(N, 2), 1: torch.zeros(N - 1, 2)}, None),
     r"same N points, got N by epoch \{0: 12, 1: 11\}"),
    (lambda: EmbeddingExplorer({0: torch.zeros(N, 3)}, None), r"frames\[0\] must be points \[N, 2\], got shape \(12, 3\)"),
    (lambda: EmbeddingExplorer({"a": torch.zeros(N, 2)}, None), r"keys must be int epochs"),
    (lambda: EmbeddingExplorer({0: torch.full((N, 2), float("nan"))}, None), r"NaN or inf"),
    (lambda: EmbeddingExplorer({0: torch.zeros(N, 2)}, torch.zeros(N - 2)), r"labels must be \[N\] = \[12\].*\(10,\)"),
    (lambda: EmbeddingExplorer({0: torch.zeros(N, 2)}, torch.full((N,), 0.5)), r"labels must hold integers"),
    (lambda: EmbeddingExplorer({0: torch.zeros(N, 2)}, labels_of(), torch.tensor([[0, 12], [1, 2]])),
     r"edge_index has node id 12, out of range for the N = 12 points.*0\.\.11"),
    (lambda: EmbeddingExplorer({0: torch.zeros(N, 2)}, labels_of(), torch.zeros(3, 4)),
     r"edge_index must be \[2, E\].*\(3, 4\)"),
    (lambda: EmbeddingExplorer({0: torch.zeros(N, 2)}, labels_of(), label_names=["a"]),
     r"label_names has 1 names but labels go up to 2; expected at least 3"),
    (lambda: EmbeddingExplorer({0: torch.zeros(N, 2)}, labels_of(), highlight=torch.ones(3, dtype=torch.bool)),
     r"highlight mask must be \[N\] = \[12\]"),
    (lambda: EmbeddingExplorer({0: torch.zeros(N, 2)}, labels_of(), highlight=[40]), r"highlight has node id 40"),
])
def test_explorer_bad_input_is_one_line(make: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        make()
    assert "\n" not in str(info.value)


def test_explorer_select_unknown_epoch() -> None:
    ex = EmbeddingExplorer(embedding_frames([0, 10]), labels_of())
    with pytest.raises(ValueError, match=r"no frame of epoch 5; saved: \[0, 10\]"):
        ex.select(5)


# --- neighbourhood attention ------------------------------------------------------------------------------------


def gat_like(heads: int = 2, n: int = N, self_loops: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The ring graph (+ self-loops) and softmax weights over every node's incoming edges, [E, heads]."""
    edge_index = ring_graph(n)
    if self_loops:
        edge_index = torch.cat([edge_index, torch.arange(n).repeat(2, 1)], dim=1)
    logits = torch.randn(edge_index.shape[1], heads, generator=torch.Generator().manual_seed(1))
    weights = torch.zeros_like(logits)
    for i in range(n):
        into = edge_index[1] == i
        weights[into] = logits[into].softmax(dim=0)
    return edge_index, weights


def panel_texts(ax: Any) -> tuple[list[float], list[str]]:
    """The weights printed on a panel's spokes and the names on its neighbour nodes."""
    texts = [t.get_text() for t in ax.texts]
    numbers = [float(t) for t in texts if re.fullmatch(r"\d\.\d\d", t)]
    names = [t for t in texts if not re.fullmatch(r"\d\.\d\d", t) and t != "no incoming edges"]
    return numbers, names


def test_attention_defaults_to_the_node_with_most_incoming_edges() -> None:
    edge_index, weights = gat_like()
    view = NeighbourhoodAttention(edge_index, weights, title="GAT")
    # nodes 0 and 6 have the chord: 3 neighbours + self-loop; the first of them is the default
    assert view.controls["node"].value == 0 and isinstance(view.controls["node"], widgets.Dropdown)
    assert view.controls["head"].value == -1
    assert view.png.startswith(PNG_MAGIC)
    fig = view.figure()
    assert len(fig.axes) == 2 + 1, "one panel per head, and the colorbar"
    assert "sum to 1" in " ".join(t.get_text() for t in fig.texts)


def test_attention_node_selection_picks_the_incoming_edges_and_changes_the_picture() -> None:
    edge_index, weights = gat_like()
    view = NeighbourhoodAttention(edge_index, weights)
    pictures = {}
    for node in (0, 3, 6):
        view.controls["node"].value = node
        pictures[node] = view.png
        into = view.incoming(node)
        np.testing.assert_array_equal(into, torch.nonzero(edge_index[1] == node).flatten().numpy())
        fig = view.figure()
        for head, ax in enumerate(fig.axes[:2]):
            numbers, names = panel_texts(ax)
            expected = weights[into, head].numpy()
            np.testing.assert_allclose(sorted(numbers), sorted(np.round(expected, 2)), atol=1e-9)
            sources = sorted("self" if int(j) == node else str(int(j)) for j in edge_index[0, into])
            assert sorted(names[:-1]) == sources and names[-1] == str(node), "neighbours around, target in the middle"
            assert ax.get_title() == f"head {head}: sum = 1.000"
    assert len(set(pictures.values())) == 3, "the node selection changes the picture"
    view.select(node=3, head=1)
    fig = view.figure()
    assert len(fig.axes) == 2 and fig.axes[0].get_title() == "head 1: sum = 1.000"
    numbers, _ = panel_texts(fig.axes[0])
    np.testing.assert_allclose(sorted(numbers), sorted(np.round(weights[view.incoming(3), 1].double().numpy(), 2)))


def test_attention_one_head_hides_the_head_selector_and_warns_when_weights_do_not_sum_to_1() -> None:
    edge_index, weights = gat_like(heads=1)
    view = NeighbourhoodAttention(edge_index, weights[:, 0] * 0.8, node_names=[f"v{i}" for i in range(N)])
    assert view.controls["head"].layout.display == "none" and view.controls["head"].value == 0
    texts = " ".join(t.get_text() for t in view.figure().texts)
    assert "WARNING" in texts and "do not sum to 1" in texts and "0.800" in texts
    ok = NeighbourhoodAttention(edge_index, weights)
    assert "WARNING" not in " ".join(t.get_text() for t in ok.figure().texts)
    assert view.controls["node"].options[0][0].startswith("0: v0")


def test_attention_big_graph_uses_a_number_box_and_draws_the_heaviest_edges() -> None:
    n = 400
    hub_sources = torch.arange(1, 41)
    edge_index = torch.stack([torch.cat([hub_sources, torch.arange(n)]), torch.cat([torch.zeros(40).long(),
                                                                                  torch.arange(n)])])
    weights = torch.ones(edge_index.shape[1])
    weights[:40] = torch.linspace(1, 40, 40)
    weights[:41] = weights[:41] / weights[:41].sum()  # node 0: 40 neighbours + its self-loop (edge 40)
    view = NeighbourhoodAttention(edge_index, weights, max_neighbours=5)
    assert isinstance(view.controls["node"], widgets.BoundedIntText) and view.controls["node"].value == 0
    numbers, names = panel_texts(view.figure().axes[0])
    assert sorted(names[:-1]) == sorted(str(j) for j in range(36, 41)), "the 5 heaviest incoming edges"
    assert "the heaviest 5 drawn" in " ".join(t.get_text() for t in view.figure().texts)
    view.controls["node"].value = 7
    numbers, names = panel_texts(view.figure().axes[0])
    assert names == ["self", "7"] and numbers == [1.0]


@pytest.mark.parametrize("make, message", [
    (lambda: NeighbourhoodAttention(torch.zeros(3, 4).long(), torch.ones(4)), r"edge_index must be \[2, E\].*\(3, 4\)"),
    (lambda: NeighbourhoodAttention(ring_graph(), torch.ones(5, 2)), r"weights must be \[E, H\] or \[E\] with E = 26.*\(5, 2\)"),
    (lambda: NeighbourhoodAttention(ring_graph(), torch.ones(26, 2, 2)), r"weights must be \[E, H\]"),
    (lambda: NeighbourhoodAttention(torch.tensor([[0, -1], [1, 0]]), torch.ones(2)), r"node id -1"),
    (lambda: NeighbourhoodAttention(ring_graph(), torch.ones(26), node_names=["a"] * 5),
     r"node id 11, out of range for node_names = 5; expected ids in 0..4"),
    (lambda: NeighbourhoodAttention(ring_graph(), torch.ones(26), labels=torch.zeros(12), node_names=["a"] * 5),
     r"number of nodes disagrees"),
    (lambda: NeighbourhoodAttention(ring_graph(), torch.full((26,), float("nan"))), r"NaN or inf"),
    (lambda: NeighbourhoodAttention(ring_graph(), torch.ones(26), node=99), r"node must be a node id in 0..11"),
    (lambda: NeighbourhoodAttention(ring_graph(), torch.ones(26, 2), head=2), r"head must be -1 \(all heads\) or 0..1"),
])
def test_attention_bad_input_is_one_line(make: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        make()
    assert "\n" not in str(info.value)


def test_attention_display_leaves_a_static_png_beside_the_widget() -> None:
    view = NeighbourhoodAttention(*gat_like())
    data, _ = DisplayFormatter().format(view)
    assert "image/png" in data and WIDGET_VIEW_MIMETYPE in data
    view.close()
