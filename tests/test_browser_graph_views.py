"""The graph views of Hours 13-14 in a real browser: JupyterLab + Debian's chromium, driven by Playwright.

One notebook shows both views on Zachary's karate club (networkx's copy, no download): ``EmbeddingExplorer`` on 4
hand-made "epochs" of 2-D positions (random -> spring layout, so every frame is different) and
``NeighbourhoodAttention`` on softmax weights of 2 heads over every node's incoming edges, and writes the kernel's
picture of every epoch and of the nodes the test picks. The test runs it with "Run > Run All Cells", moves the
explorer's epoch slider with the keyboard (as a user would) and checks that the picture changed and is exactly the
kernel's picture of that epoch, then picks another node in the attention view's dropdown and checks the same.
One JupyterLab session and one notebook for both views, to keep CI time low. Screenshots go to
test-artifacts/browser/ (git-ignored).

Skipped where chromium or playwright is missing, failing instead under AMLA_REQUIRE_BROWSER=1 (CI).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from browser_pages import _browser_required  # noqa: F401 - the fixture browser_mark() asks for in CI
from browser_pages import IMAGE_LOADED, IMAGE_REPLACED, KERNEL_OK_CELL, SLIDER_HANDLE, browser_mark, \
    changed_fraction, chromium_page, inked_fraction, lab_with, open_and_run_all, shown_png
from browser_support import ARTIFACTS, LabServer, step

pytestmark = browser_mark()


NOTEBOOK = "graph_views.ipynb"
EPOCHS = [0, 10, 20, 30]
EXPLORER_CLASS = "amla-browser-test-embedding"
ATTENTION_CLASS = "amla-browser-test-attention"
NODES = [33, 5]  # the default (most incoming edges) and the one the test picks

DATA_CELL = f"""\
from pathlib import Path
import networkx as nx
import torch
g = nx.karate_club_graph()
n = g.number_of_nodes()
pairs = torch.tensor(list(g.edges())).T
edge_index = torch.cat([pairs, pairs.flip(0)], dim=1)
labels = torch.tensor([0 if g.nodes[i]["club"] == "Mr. Hi" else 1 for i in range(n)])
end = torch.tensor([nx.spring_layout(g, seed=0)[i] for i in range(n)], dtype=torch.float32)
start = torch.randn(n, 2, generator=torch.Generator().manual_seed(0)) * 0.6
frames = {{e: start + (end - start) * k / 3 for k, e in enumerate({EPOCHS})}}
"""

EXPLORER_CELL = f"""\
from amla.views.embedding import EmbeddingExplorer
explorer = EmbeddingExplorer(frames, labels, edge_index, title="karate club", label_names=["Mr. Hi", "Officer"],
                             highlight=[0, 33], highlight_name="labelled")
for e in {EPOCHS}:  # the kernel's own picture of every epoch, for the test to compare
    Path(f"expected-epoch-{{e}}.png").write_bytes(explorer.png_for(e))
explorer.widget.add_class("{EXPLORER_CLASS}")
explorer.show()
"""

ATTENTION_CELL = f"""\
from amla.views.graph_attention import NeighbourhoodAttention
loops = torch.cat([edge_index, torch.arange(n).repeat(2, 1)], dim=1)
logits = torch.randn(loops.shape[1], 2, generator=torch.Generator().manual_seed(1)) * 1.5
alpha = torch.zeros_like(logits)
for i in range(n):
    into = loops[1] == i
    alpha[into] = logits[into].softmax(dim=0)
attention = NeighbourhoodAttention(loops, alpha, labels=labels, title="GAT layer 1")
assert attention.controls["node"].value == {NODES[0]}
for node in {NODES[::-1]}:
    attention.select(node=node)
    Path(f"expected-node-{{node}}.png").write_bytes(attention.png)
attention.widget.add_class("{ATTENTION_CLASS}")
attention
"""


@pytest.fixture(scope="module")
def lab(lab_server: LabServer) -> Iterator[LabServer]:
    yield from lab_with(lab_server, {NOTEBOOK: [KERNEL_OK_CELL, DATA_CELL, EXPLORER_CELL, ATTENTION_CELL]})


def settle(page: Any, image: Any, old_src: str | None, expected: bytes, timeout_s: float = 20) -> bytes:
    """Wait for the picture to be replaced, then until it settles on ``expected`` (or time runs out)."""
    page.wait_for_function(IMAGE_REPLACED, arg=[image.element_handle(), old_src], timeout=30_000)
    deadline = time.monotonic() + timeout_s
    shown = shown_png(page, image)
    while shown != expected and time.monotonic() < deadline:
        time.sleep(0.3)
        shown = shown_png(page, image)
    return shown


def test_graph_views_in_chromium(lab: LabServer) -> None:
    start = time.monotonic()
    epochs = {e: (lab.root / f"expected-epoch-{e}.png") for e in EPOCHS}
    with chromium_page(lab) as page:
        open_and_run_all(page, lab, NOTEBOOK)
        ran = time.monotonic() - start
        explorer = page.locator(f".{EXPLORER_CLASS}")
        image = explorer.locator("img.widget-image")
        slider = explorer.locator(
            SLIDER_HANDLE).first
        with step("the explorer renders (Play button, epoch slider, a loaded picture)", 120):
            image.wait_for(state="visible", timeout=120_000)
            page.wait_for_function(IMAGE_LOADED, arg=image.element_handle(), timeout=30_000)
            explorer.locator(".widget-play, .widget-hbox button").first.wait_for(state="visible", timeout=10_000)
            slider.wait_for(state="visible", timeout=10_000)
            readout = explorer.locator(".widget-readout").first
            assert readout.inner_text().strip() == str(EPOCHS[-1]), f"the slider starts at {readout.inner_text()!r}"
        expected = {e: path.read_bytes() for e, path in epochs.items()}
        with step("the picture is the kernel's picture of the last epoch", 30):
            old_src = image.get_attribute("src")
            explorer_before = shown_png(page, image)
            shot_before = image.screenshot()
            explorer.screenshot(path=str(ARTIFACTS / "embedding-explorer-before.png"))
            assert inked_fraction(shot_before) > 0.05, "the rendered picture is blank"
            assert explorer_before == expected[EPOCHS[-1]], "the picture in the page is not the kernel's last epoch"
        target = EPOCHS[1]
        with step(f"move the epoch slider to {target} with the keyboard and wait for the redraw", 40):
            slider.focus()
            for _ in range(len(EPOCHS) - 1 - EPOCHS.index(target)):
                page.keyboard.press("ArrowLeft")
            explorer_after = settle(page, image, old_src, expected[target])
            shot_after = image.screenshot()
            explorer.screenshot(path=str(ARTIFACTS / "embedding-explorer-after.png"))
            assert readout.inner_text().strip() == str(target), f"the slider shows {readout.inner_text()!r}"

        attention = page.locator(f".{ATTENTION_CLASS}")
        att_image = attention.locator("img.widget-image")
        dropdown = attention.locator(".widget-dropdown select").first
        nodes = {node: (lab.root / f"expected-node-{node}.png").read_bytes() for node in NODES}
        with step("the attention view renders, on the kernel's picture of the default node", 30):
            att_image.scroll_into_view_if_needed()
            page.wait_for_function(IMAGE_LOADED, arg=att_image.element_handle(), timeout=30_000)
            att_src = att_image.get_attribute("src")
            att_before = shown_png(page, att_image)
            att_shot_before = att_image.screenshot()
            attention.screenshot(path=str(ARTIFACTS / "neighbourhood-attention-before.png"))
            assert inked_fraction(att_shot_before) > 0.03, "the rendered attention picture is blank"
            assert att_before == nodes[NODES[0]], "the attention picture is not the kernel's for the default node"
        with step(f"pick node {NODES[1]} in the node dropdown and wait for the redraw", 40):
            dropdown.select_option(index=NODES[1])
            att_after = settle(page, att_image, att_src, nodes[NODES[1]])
            att_shot_after = att_image.screenshot()
            attention.screenshot(path=str(ARTIFACTS / "neighbourhood-attention-after.png"))
    assert explorer_after != explorer_before, "the explorer's picture did not change after moving the slider"
    assert changed_fraction(shot_before, shot_after) > 0.01, "the explorer's rendered picture barely changed"
    matching = [e for e, png in expected.items() if png == explorer_after]
    assert matching == [target], f"after moving the slider to epoch {target} the page shows the kernel's epoch {matching}"
    assert att_after != att_before, "the attention picture did not change after picking another node"
    assert changed_fraction(att_shot_before, att_shot_after) > 0.01, "the attention picture barely changed"
    assert att_after == nodes[NODES[1]], f"after picking node {NODES[1]} the page does not show the kernel's picture"
    print(f"graph views browser test: {time.monotonic() - start:.1f} s (open + Run All: {ran:.1f} s)")
