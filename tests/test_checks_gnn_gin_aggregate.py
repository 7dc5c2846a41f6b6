"""The self-check of Exercise 14.2 (the GIN aggregation ``(1 + eps) x_i + sum_{j -> i} x_j``)."""

import numpy as np
import pytest
import torch

from amla.checks.gnn.gin_aggregate import check_gin_aggregate, _gin_variant
from amla.graphs.pooling import gin_aggregate as course_gin_aggregate
from checks_support import fails, not_done, passes, raise_not_done


def _index_add(x, edge_index, eps):
    source, target = edge_index
    return (1 + eps) * x + torch.zeros_like(x).index_add(0, target, x[source])


def _scatter_add(x, edge_index, eps):
    source, target = edge_index
    out = torch.zeros_like(x).scatter_add(0, target[:, None].expand(-1, x.shape[1]), x[source])
    return out + x * (1 + eps)


def _one_hot_matmul(x, edge_index, eps):  # a dense adjacency that counts repeated edges
    n = x.shape[0]
    to = torch.nn.functional.one_hot(edge_index[1], n).to(x.dtype)
    frm = torch.nn.functional.one_hot(edge_index[0], n).to(x.dtype)
    return (to.T @ frm) @ x + (1.0 + eps) * x


def _loop(x, edge_index, eps):
    rows = [(1 + eps) * x[i] for i in range(x.shape[0])]
    for j, i in edge_index.t().tolist():
        rows[i] = rows[i] + x[j]
    return torch.stack(rows)


def _pyg_scatter(x, edge_index, eps):
    from torch_geometric.utils import scatter

    return (1 + eps) * x + scatter(x[edge_index[0]], edge_index[1], dim=0, dim_size=x.shape[0], reduce="sum")


def _index_add_on_a_clone(x, edge_index, eps):
    out = (1 + eps) * x.clone()
    out.index_add_(0, edge_index[1], x[edge_index[0]])
    return out


@pytest.mark.parametrize("fn", [_index_add, _scatter_add, _one_hot_matmul, _loop, _pyg_scatter, _index_add_on_a_clone,
                                course_gin_aggregate], ids=lambda f: f.__name__)
def test_accepts_correct_answers_written_differently(fn, capsys):
    passes(check_gin_aggregate, fn)
    assert "the rest of this hour uses your `gin_aggregate`" in capsys.readouterr().out.lower()


def test_not_done_returns_the_reference(capsys):
    reference = not_done(check_gin_aggregate, raise_not_done, capsys=capsys)
    x, edge_index = torch.randn(4, 3), torch.tensor([[0, 1, 2], [1, 2, 3]])
    assert torch.equal(reference(x, edge_index, 0.1), course_gin_aggregate(x, edge_index, 0.1))


@pytest.mark.parametrize("kind, phrase", [
    ("source", "messages go into the source"),
    ("mean", "neighbours are averaged"),
    ("max", "neighbours are max-pooled"),
    ("no_self", r"own term \(1 \+ eps\) x_i is missing"),
    ("no_eps", "eps is ignored"),
    ("eps_only", r"the 1 of \(1 \+ eps\) is missing"),
    ("eps_neighbours", r"\(1 \+ eps\) weights the neighbours"),
    ("unique", "an edge listed twice is counted once"),
    ("undirected", "made undirected"),
    ("no_loops", "self-loops were dropped"),
])
def test_names_the_known_mistakes(kind, phrase):
    fails(check_gin_aggregate, _gin_variant(kind), match=phrase)


def test_notices_a_changed_input():
    def in_place(x, edge_index, eps):
        x.mul_(1 + eps)
        return x.index_add(0, edge_index[1], x[edge_index[0]] / (1 + eps))

    fails(check_gin_aggregate, in_place, match=r"changed its argument `x` in place")


def test_refuses_the_wrong_type_and_dtype():
    fails(check_gin_aggregate, lambda x, e, eps: _index_add(x, e, eps).numpy(), match=r"should be a tensor")
    fails(check_gin_aggregate, lambda x, e, eps: None, match=r"returned None")

    def float32_buffer(x, edge_index, eps):  # torch.zeros(shape) is float32 whatever x is
        out = torch.zeros(x.shape).index_add(0, edge_index[1], x[edge_index[0]].float())
        return (1 + eps) * x.float() + out

    fails(check_gin_aggregate, float32_buffer,
          match=r"with float64 features.*dtype torch\.float32, expected torch\.float64")


def test_catches_a_bug_on_an_edge_input_only():
    def nodes_from_edges(x, edge_index, eps):  # the node count from the edges misses a last isolated node
        n = int(edge_index.max()) + 1
        out = torch.zeros(n, x.shape[1], dtype=x.dtype).index_add(0, edge_index[1], x[edge_index[0]])
        return (1 + eps) * x[:n] + out

    fails(check_gin_aggregate, nodes_from_edges, match=r"with an isolated node")

    def no_edges_crash(x, edge_index, eps):
        if edge_index.shape[1] == 0:
            return torch.stack([])  # a "nothing to aggregate" branch that never ran before
        return _index_add(x, edge_index, eps)

    fails(check_gin_aggregate, no_edges_crash, match=r"with a graph of one node and no edge.*raised")


@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad=True to a scalar")  # the bug itself
def test_catches_a_wrong_gradient():
    def eps_as_number(x, edge_index, eps):  # float(eps) cuts the learnable eps off the graph
        return (1 + float(eps)) * x + torch.zeros_like(x).index_add(0, edge_index[1], x[edge_index[0]])

    fails(check_gin_aggregate, eps_as_number, match=r"values are right but no gradient reaches `eps`")

    def neighbours_detached(x, edge_index, eps):
        return (1 + eps) * x + torch.zeros_like(x).index_add(0, edge_index[1], x[edge_index[0]].detach())

    fails(check_gin_aggregate, neighbours_detached, match=r"values are right but the gradient with respect to `x`")


def test_diagnoses_by_property_when_no_known_mistake_matches():
    def position_dependent(x, edge_index, eps):  # a bias that depends on the node id
        ids = torch.arange(x.shape[0], dtype=x.dtype)[:, None]
        return _index_add(x, edge_index, eps) + 1e-2 * ids

    fails(check_gin_aggregate, position_dependent, match=r"'relabelling the nodes permutes the rows")

    def drops_the_last_edge(x, edge_index, eps):
        return _index_add(x, edge_index[:, :-1], eps)

    fails(check_gin_aggregate, drops_the_last_edge,
          match=r"'one more edge a -> b adds x_a to row b only' does not hold")


def test_the_check_leaves_numpy_alone():
    state = np.random.get_state()[1].copy()
    check_gin_aggregate(_index_add)
    assert (np.random.get_state()[1] == state).all()
