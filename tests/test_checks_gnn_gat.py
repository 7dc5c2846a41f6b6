"""The self-check of Hour 14's Exercise 14.1 (GAT's attention weights on edges)."""

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("torch_geometric")

from amla.checks import gnn as C  # noqa: E402
from amla.checks.gnn.gat import _attention_variant  # noqa: E402
from amla.graphs.gat import gat_attention  # noqa: E402
from checks_support import fails, not_done, passes, raise_not_done  # noqa: E402


def _with_loops(alpha_src, edge_index):
    n = alpha_src.size(0)
    loops = torch.arange(n)
    return torch.cat([edge_index[0], loops]), torch.cat([edge_index[1], loops]), n


def _loop_over_nodes(alpha_src, alpha_dst, edge_index, negative_slope=0.2):
    src, dst, n = _with_loops(alpha_src, edge_index)
    scores = F.leaky_relu(alpha_src[src] + alpha_dst[dst], negative_slope)
    out = torch.zeros_like(scores)
    for i in range(n):
        into = (dst == i).nonzero().flatten()
        out = out.index_put((into,), torch.softmax(scores[into], dim=0))
    return out


def _pyg_softmax(alpha_src, alpha_dst, edge_index, negative_slope=0.2):
    from torch_geometric.utils import add_self_loops, softmax

    edges, _ = add_self_loops(edge_index, num_nodes=alpha_src.size(0))
    scores = F.leaky_relu(alpha_src[edges[0]] + alpha_dst[edges[1]], negative_slope)
    return softmax(scores, edges[1], num_nodes=alpha_src.size(0))


def _scatter_amax(alpha_src, alpha_dst, edge_index, negative_slope=0.2):
    src, dst, n = _with_loops(alpha_src, edge_index)
    e = torch.where(alpha_src[src] + alpha_dst[dst] > 0, alpha_src[src] + alpha_dst[dst],
                    negative_slope * (alpha_src[src] + alpha_dst[dst]))
    heads = e.size(1)
    idx = dst[:, None].expand(-1, heads)
    top = torch.full((n, heads), float("-inf"), dtype=e.dtype).scatter_reduce(0, idx, e, reduce="amax")
    ex = torch.exp(e - top[dst])
    return ex / torch.zeros(n, heads, dtype=e.dtype).index_add(0, dst, ex)[dst]


def _dense_masked(alpha_src, alpha_dst, edge_index, negative_slope=0.2):
    src, dst, n = _with_loops(alpha_src, edge_index)
    scores = F.leaky_relu(alpha_dst[:, None, :] + alpha_src[None, :, :], negative_slope)  # [i, j, H]
    mask = torch.zeros(n, n, dtype=torch.bool)
    mask[dst, src] = True
    scores = scores.masked_fill(~mask[:, :, None], torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores, dim=1)
    return weights[dst, src]


def _logsumexp(alpha_src, alpha_dst, edge_index, negative_slope=0.2):
    src, dst, n = _with_loops(alpha_src, edge_index)
    s = F.leaky_relu(alpha_src[src] + alpha_dst[dst], negative_slope)
    top = torch.zeros(n, s.size(1), dtype=s.dtype).scatter_reduce(0, dst[:, None].expand_as(s), s.detach(), "amax", include_self=False)
    lse = (torch.zeros(n, s.size(1), dtype=s.dtype).index_add(0, dst, (s - top[dst]).exp())).log() + top
    return (s - lse[dst]).exp()


@pytest.mark.parametrize("fn", [_loop_over_nodes, _pyg_softmax, _scatter_amax, _dense_masked, _logsumexp],
                         ids=lambda f: f.__name__)
def test_accepts_correct_answers_written_differently(fn, capsys):
    passes(C.check_gat_attention, fn)
    assert "the rest of this hour uses your `gat_attention`" in capsys.readouterr().out.lower()


def test_not_done_returns_the_reference(capsys):
    reference = not_done(C.check_gat_attention, raise_not_done, capsys=capsys)
    a, b = torch.randn(4, 2), torch.randn(4, 2)
    edges = torch.tensor([[0, 1, 2], [1, 2, 3]])
    assert torch.equal(reference(a, b, edges), gat_attention(a, b, edges))


@pytest.mark.parametrize("kind, phrase", [
    ("outgoing", "over each node's outgoing edges"),
    ("swapped", "alpha_src of the target and alpha_dst of the source"),
    ("global", "over all the edges at once"),
    ("heads", "over the heads"),
    ("no_max", "without subtracting each target's maximum"),
    ("slope_001", "slope 0.01"),
    ("relu", "go through a ReLU"),
    ("no_leaky", "skip the LeakyReLU"),
    ("slope_fixed", "negative_slope argument is ignored"),
    ("no_loops", "self-loops are missing"),
    ("loops_first", "self-loops come first"),
    ("nodes_from_edges", r"edge_index\.max\(\) \+ 1"),
])
def test_names_the_known_mistakes(kind, phrase):
    fails(C.check_gat_attention, _attention_variant(kind), match=phrase)


def test_no_max_is_caught_on_the_large_scores():
    fails(C.check_gat_attention, _attention_variant("no_max"), match=r"with scores as large as 1e4.*got nan")


def test_notices_a_changed_input():
    def shifts_in_place(alpha_src, alpha_dst, edge_index, negative_slope=0.2):
        alpha_src -= alpha_src.max()  # "for stability", on the caller's tensor
        return gat_attention(alpha_src, alpha_dst, edge_index, negative_slope)

    fails(C.check_gat_attention, shifts_in_place, match=r"changed its argument `alpha_src` in place")


def test_refuses_the_wrong_type_and_dtype():
    fails(C.check_gat_attention, lambda a, b, e, s=0.2: gat_attention(a, b, e, s).tolist(), match=r"should be a tensor")
    fails(C.check_gat_attention, lambda a, b, e, s=0.2: gat_attention(a.double(), b.double(), e, s),
          match=r"dtype torch\.float64")
    fails(C.check_gat_attention, lambda a, b, e, s=0.2: gat_attention(a, b, e, s)[:, 0], match=r"shape")


def test_catches_a_bug_on_an_edge_input_only():
    def float32_only(alpha_src, alpha_dst, edge_index, negative_slope=0.2):
        return gat_attention(alpha_src.float(), alpha_dst.float(), edge_index, negative_slope)

    fails(C.check_gat_attention, float32_only, match=r"with float64 .*dtype torch\.float32, expected torch\.float64")

    def clamped(alpha_src, alpha_dst, edge_index, negative_slope=0.2):  # "safe" scores: wrong only beyond 50
        src, dst, n = _with_loops(alpha_src, edge_index)
        s = F.leaky_relu(alpha_src[src] + alpha_dst[dst], negative_slope).clamp(-50, 50)
        ex = s.exp()
        return ex / torch.zeros(n, s.size(1), dtype=s.dtype).index_add(0, dst, ex)[dst]

    fails(C.check_gat_attention, clamped, match=r"with scores as large as 1e4")

    def skips_lonely_nodes(alpha_src, alpha_dst, edge_index, negative_slope=0.2):
        out = gat_attention(alpha_src, alpha_dst, edge_index, negative_slope)
        n = alpha_src.size(0)
        degree = torch.zeros(n, dtype=torch.long).index_add(0, edge_index[1], torch.ones_like(edge_index[1]))
        lonely = torch.cat([torch.zeros(edge_index.size(1), dtype=torch.bool), degree == 0])
        return out.masked_fill(lonely[:, None], 0.0)  # a node with only its self-loop gets weight 0, not 1

    fails(C.check_gat_attention, skips_lonely_nodes, match=r"sum to 1' does not hold.*node 3|sum to 1' does not hold")


def test_catches_a_wrong_gradient():
    fails(C.check_gat_attention, lambda a, b, e, s=0.2: gat_attention(a, b, e, s).detach(),
          match=r"values are right but the attention is detached")

    def frozen_denominator(alpha_src, alpha_dst, edge_index, negative_slope=0.2):
        src, dst, n = _with_loops(alpha_src, edge_index)
        s = F.leaky_relu(alpha_src[src] + alpha_dst[dst], negative_slope)
        top = torch.full((n, s.size(1)), float("-inf"), dtype=s.dtype).scatter_reduce(
            0, dst[:, None].expand_as(s), s.detach(), "amax")
        ex = (s - top[dst]).exp()
        total = torch.zeros(n, s.size(1), dtype=s.dtype).index_add(0, dst, ex)
        return ex / total.detach()[dst]  # the sum treated as a constant: right values, wrong gradient

    fails(C.check_gat_attention, frozen_denominator, match=r"values are right but the gradient")


def test_diagnoses_by_property_when_no_known_mistake_matches():
    def sigmoid_weights(alpha_src, alpha_dst, edge_index, negative_slope=0.2):
        src, dst, _ = _with_loops(alpha_src, edge_index)
        return torch.sigmoid(F.leaky_relu(alpha_src[src] + alpha_dst[dst], negative_slope))

    fails(C.check_gat_attention, sigmoid_weights, match=r"'the weights of each node's incoming edges sum to 1' does "
                                                        r"not hold")

    def sorted_by_target(alpha_src, alpha_dst, edge_index, negative_slope=0.2):
        order = torch.argsort(edge_index[1], stable=True)  # sorts the edges and forgets to put them back
        return gat_attention(alpha_src, alpha_dst, edge_index[:, order], negative_slope)

    fails(C.check_gat_attention, sorted_by_target, match=r"'permuting the edges permutes the weights' does not hold")
