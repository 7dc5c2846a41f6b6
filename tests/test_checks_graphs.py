"""The self-checks of Hour 13: Exercise 13.1 (message passing with scatter-add) and 13.2 (the GCN normalisation)."""

import pytest
import torch

from amla.checks import graphs as C
from amla.checks.graphs.gcn_norm import _gcn_norm_variant
from amla.checks.graphs.propagate import _propagate_variant
from amla.graphs.message_passing import dense_adjacency, gcn_norm, propagate
from checks_support import fails, not_done, passes, raise_not_done

pytest.importorskip("torch_geometric")

# --- Exercise 13.1 -----------------------------------------------------------------------------------------


def _p_index_add(x, edge_index, edge_weight=None):
    msg = x[edge_index[0]]
    if edge_weight is not None:
        msg = msg * edge_weight[:, None]
    out = torch.zeros_like(x)
    out.index_add_(0, edge_index[1], msg)
    return out


def _p_scatter_add(x, edge_index, edge_weight=None):
    w = torch.ones(edge_index.size(1), dtype=x.dtype) if edge_weight is None else edge_weight
    msg = x.index_select(0, edge_index[0]) * w.view(-1, 1)
    index = edge_index[1].view(-1, 1).expand(-1, x.size(1))
    return torch.zeros(x.shape, dtype=x.dtype).scatter_add(0, index, msg)


def _p_scatter_reduce(x, edge_index, edge_weight=None):
    msg = x[edge_index[0]] * (1.0 if edge_weight is None else edge_weight.unsqueeze(1))
    index = edge_index[1].unsqueeze(1).repeat(1, x.shape[1])
    return x.new_zeros(x.shape).scatter_reduce(0, index, msg, reduce="sum", include_self=True)


def _p_dense(x, edge_index, edge_weight=None):
    n = x.size(0)
    w = torch.ones(edge_index.size(1), dtype=x.dtype) if edge_weight is None else edge_weight
    a = torch.zeros(n, n, dtype=x.dtype).index_put((edge_index[1], edge_index[0]), w, accumulate=True)
    return a @ x


def _p_pyg_scatter(x, edge_index, edge_weight=None):
    from torch_geometric.utils import scatter

    msg = x[edge_index[0]] if edge_weight is None else x[edge_index[0]] * edge_weight[:, None]
    return scatter(msg, edge_index[1], dim=0, dim_size=x.size(0), reduce="sum")


def _p_loop(x, edge_index, edge_weight=None):
    rows = [torch.zeros(x.size(1), dtype=x.dtype) for _ in range(x.size(0))]
    for e, (j, i) in enumerate(edge_index.T.tolist()):
        w = 1.0 if edge_weight is None else edge_weight[e]
        rows[i] = rows[i] + w * x[j]
    return torch.stack(rows)


@pytest.mark.parametrize("fn", [_p_index_add, _p_scatter_add, _p_scatter_reduce, _p_dense, _p_pyg_scatter, _p_loop],
                         ids=lambda f: f.__name__)
def test_propagate_accepts_correct_answers_written_differently(fn, capsys):
    passes(C.check_propagate, fn)
    assert "the rest of this hour uses your `propagate`" in capsys.readouterr().out.lower()


def test_propagate_not_done_returns_the_reference(capsys):
    reference = not_done(C.check_propagate, raise_not_done, capsys=capsys)
    x, ei = torch.randn(4, 2), torch.tensor([[0, 1, 2], [1, 2, 0]])
    assert torch.equal(reference(x, ei), propagate(x, ei))


@pytest.mark.parametrize("kind, phrase", [
    ("at_source", "summed at the source instead of the target"),
    ("target_features", "the target's own features"),
    ("overwrite", r"`out\[target\] \+= messages` does not add up repeated indices"),
    ("mean", "messages are averaged"),
    ("max", "combined with a max"),
    ("self", "own features are added"),
    ("no_weight", "edge weights are ignored"),
    ("size_from_edges", "number of nodes is taken from edge_index"),
])
def test_propagate_names_the_known_mistakes(kind, phrase):
    fails(C.check_propagate, _propagate_variant(kind), match=phrase)


def test_propagate_notices_a_changed_input():
    def in_place(x, edge_index, edge_weight=None):
        out = x  # no copy: index_add_ writes into the caller's x
        out.zero_().index_add_(0, edge_index[1], x.clone()[edge_index[0]])
        return out

    fails(C.check_propagate, in_place, match=r"changed its argument `x` in place")

    def sorts_edges(x, edge_index, edge_weight=None):
        edge_index[1], order = edge_index[1].sort()  # sorts the caller's edge list in place
        edge_index[0] = edge_index[0][order]
        w = None if edge_weight is None else edge_weight[order]
        return _p_index_add(x, edge_index, w)

    fails(C.check_propagate, sorts_edges, match=r"changed its argument `edge_index` in place")


def test_propagate_refuses_the_wrong_type_and_dtype():
    fails(C.check_propagate, lambda x, ei, w=None: _p_index_add(x, ei, w).tolist(), match=r"should be a tensor")
    fails(C.check_propagate, lambda x, ei, w=None: _p_index_add(x.double(), ei, None if w is None else w.double()),
          match=r"dtype torch\.float64, expected torch\.float32")
    fails(C.check_propagate, lambda x, ei, w=None: None, match=r"returned None")


def test_propagate_catches_a_bug_on_an_edge_input_only():
    def float32_zeros(x, edge_index, edge_weight=None):  # torch.zeros(...) without dtype: float32 always
        msg = x[edge_index[0]] if edge_weight is None else x[edge_index[0]] * edge_weight[:, None]
        return torch.zeros(x.shape).index_add(0, edge_index[1], msg.float())

    fails(C.check_propagate, float32_zeros, match=r"with float64 features.*dtype torch\.float32, expected torch\.float64")

    def empty_crash(x, edge_index, edge_weight=None):  # edge_index.max() of an empty edge list raises
        n = max(x.size(0), int(edge_index.max()) + 1)
        return _p_index_add(x[:n], edge_index, edge_weight)

    fails(C.check_propagate, empty_crash, match=r"with a single node and no edge.*raised RuntimeError")

    def loops_dropped(x, edge_index, edge_weight=None):  # "cleaning" the graph drops the self-loops
        keep = edge_index[0] != edge_index[1]
        return _p_index_add(x, edge_index[:, keep], None if edge_weight is None else edge_weight[keep])

    fails(C.check_propagate, loops_dropped, match=r"with repeated edges .* and a self-loop")

    def weights_not_broadcast(x, edge_index, edge_weight=None):  # [E, F] * [E]: the weights need a trailing axis
        msg = x[edge_index[0]]
        return torch.zeros_like(x).index_add(0, edge_index[1], msg if edge_weight is None else msg * edge_weight)

    fails(C.check_propagate, weights_not_broadcast, match=r"with edge weights .* your code raised RuntimeError")


def test_propagate_catches_a_wrong_gradient():
    fails(C.check_propagate, lambda x, ei, w=None: _p_index_add(x, ei, w).detach(),
          match=r"values are right but the output is detached")

    def frozen_weights(x, edge_index, edge_weight=None):
        return _p_index_add(x, edge_index, None if edge_weight is None else edge_weight.detach())

    fails(C.check_propagate, frozen_weights, match=r"values are right but no gradient reaches `edge_weight`")


def test_propagate_diagnoses_by_property_when_no_known_mistake_matches():
    def leaks_to_silent_nodes(x, edge_index, edge_weight=None):  # a constant added to every row
        return _p_index_add(x, edge_index, edge_weight) + 0.1

    fails(C.check_propagate, leaks_to_silent_nodes, match=r"'a node that receives no edge gets 0' does not hold")


# --- Exercise 13.2 -----------------------------------------------------------------------------------------


def _n_pyg(edge_index, num_nodes, edge_weight=None, add_self_loops=True):
    from torch_geometric.nn.conv.gcn_conv import gcn_norm as pyg_gcn_norm

    return pyg_gcn_norm(edge_index, edge_weight, num_nodes, add_self_loops=add_self_loops)


def _n_loops_first(edge_index, num_nodes, edge_weight=None, add_self_loops=True):
    """Self-loops first, degrees by scatter_add, the mask with torch.where."""
    w = torch.ones(edge_index.size(1)) if edge_weight is None else edge_weight
    if add_self_loops:
        has_loop = torch.zeros(num_nodes, dtype=torch.bool)
        has_loop[edge_index[0][edge_index[0] == edge_index[1]]] = True
        missing = (~has_loop).nonzero().flatten()
        edge_index = torch.cat([torch.stack([missing, missing]), edge_index], 1)
        w = torch.cat([torch.ones(len(missing), dtype=w.dtype), w])
    deg = torch.zeros(num_nodes, dtype=w.dtype).scatter_add(0, edge_index[1], w)
    inv = torch.where(deg > 0, deg.clamp(min=1e-30).rsqrt(), torch.zeros_like(deg))
    return edge_index, inv[edge_index[0]] * w * inv[edge_index[1]]


def _n_dense(edge_index, num_nodes, edge_weight=None, add_self_loops=True):
    """Dense A + I, D^-1/2 as a diagonal matrix, then back to an edge list of the nonzero entries."""
    w = torch.ones(edge_index.size(1)) if edge_weight is None else edge_weight
    a = dense_adjacency(edge_index, num_nodes, w)  # a[i, j]: edges j -> i
    if add_self_loops:
        a = a + torch.diag((a.diagonal() == 0).to(a.dtype))
    d = a.sum(1)
    inv = torch.diag(torch.nan_to_num(d.pow(-0.5), posinf=0.0))
    a_hat = inv @ a @ inv
    target, source = a.nonzero(as_tuple=True)
    return torch.stack([source, target]), a_hat[target, source]


def _n_loop(edge_index, num_nodes, edge_weight=None, add_self_loops=True):
    pairs = edge_index.T.tolist()
    w = [1.0] * len(pairs) if edge_weight is None else list(edge_weight.unbind())
    if add_self_loops:
        looped = {i for i, j in pairs if i == j}
        for i in range(num_nodes):
            if i not in looped:
                pairs.append([i, i])
                w.append(torch.tensor(1.0, dtype=edge_weight.dtype if edge_weight is not None else torch.float32))
    deg = [0.0] * num_nodes
    for (j, i), wi in zip(pairs, w):
        deg[i] = deg[i] + wi
    out = [wi / (deg[j] * deg[i]) ** 0.5 if bool(deg[j] * deg[i] > 0) else wi * 0.0 for (j, i), wi in zip(pairs, w)]
    ei = torch.tensor(pairs, dtype=torch.long).reshape(-1, 2).T
    dtype = edge_weight.dtype if edge_weight is not None else torch.float32
    return ei, torch.stack([torch.as_tensor(v, dtype=dtype) for v in out]) if out else torch.zeros(0, dtype=dtype)


@pytest.mark.parametrize("fn", [_n_pyg, _n_loops_first, _n_dense, _n_loop], ids=lambda f: f.__name__)
def test_gcn_norm_accepts_correct_answers_written_differently(fn, capsys):
    passes(C.check_gcn_norm, fn)
    assert "the rest of this hour uses your `gcn_norm`" in capsys.readouterr().out.lower()


def test_gcn_norm_not_done_returns_the_reference(capsys):
    reference = not_done(C.check_gcn_norm, raise_not_done, capsys=capsys)
    ei = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
    for got, want in zip(reference(ei, 3), gcn_norm(ei, 3)):
        assert torch.equal(got, want)


@pytest.mark.parametrize("kind, phrase", [
    ("no_loops", "self-loops are missing"),
    ("loops_always", "self-loops are added even with add_self_loops=False"),
    ("double_loops", "already has a self-loop gets a second one"),
    ("deg_before_loops", "degree is counted before the self-loops"),
    ("d_inv", r"D\^-1 A_hat"),
    ("d_inv_both", r"D\^-1 on both sides"),
    ("one_side", "only one side is normalised"),
    ("deg_source", "degree is counted at the source"),
    ("deg_unweighted", "degree counts edges but ignores their weights"),
    ("no_weight", "edge weights are ignored"),
    ("inf", "zero degree gives deg"),
])
def test_gcn_norm_names_the_known_mistakes(kind, phrase):
    fails(C.check_gcn_norm, _gcn_norm_variant(kind), match=phrase)


def test_gcn_norm_notices_a_changed_input():
    def sorts_in_place(edge_index, num_nodes, edge_weight=None, add_self_loops=True):
        order = edge_index[1].argsort(stable=True)
        edge_index.copy_(edge_index[:, order])  # the caller's edge list, reordered
        w = None if edge_weight is None else edge_weight[order]
        return gcn_norm(edge_index, num_nodes, w, add_self_loops)

    fails(C.check_gcn_norm, sorts_in_place, match=r"changed its argument `edge_index` in place")

    def weights_in_place(edge_index, num_nodes, edge_weight=None, add_self_loops=True):
        ei, w = gcn_norm(edge_index, num_nodes, edge_weight, add_self_loops)
        if edge_weight is not None and not add_self_loops:
            edge_weight.copy_(w)  # "reuses" the caller's tensor
            return ei, edge_weight
        return ei, w

    fails(C.check_gcn_norm, weights_in_place, match=r"changed its argument `edge_weight` in place")


def test_gcn_norm_refuses_the_wrong_type_and_dtype():
    fails(C.check_gcn_norm, lambda ei, n, w=None, loops=True: gcn_norm(ei, n, w, loops)[1],
          match=r"must return the pair \(edge_index, edge_weight\)")
    fails(C.check_gcn_norm, lambda ei, n, w=None, loops=True: (gcn_norm(ei, n, w, loops)[0].int(),
                                                                gcn_norm(ei, n, w, loops)[1]),
          match=r"torch\.long tensor of shape \[2, E\], got dtype torch\.int32")
    fails(C.check_gcn_norm, lambda ei, n, w=None, loops=True: (gcn_norm(ei, n, w, loops)[0],
                                                                gcn_norm(ei, n, w, loops)[1].double()),
          match=r"dtype torch\.float64, expected torch\.float32")


def test_gcn_norm_catches_a_bug_on_an_edge_input_only():
    def float32_weights(edge_index, num_nodes, edge_weight=None, add_self_loops=True):
        ei, w = gcn_norm(edge_index, num_nodes, edge_weight, add_self_loops)
        return ei, w.float()

    fails(C.check_gcn_norm, float32_weights, match=r"with float64 edge weights.*dtype torch\.float32")

    def nodes_from_edges(edge_index, num_nodes, edge_weight=None, add_self_loops=True):  # loops only up to max id
        n = int(edge_index.max()) + 1 if edge_index.numel() else num_nodes
        ei, w = gcn_norm(edge_index, n, edge_weight, add_self_loops)
        return ei, w

    fails(C.check_gcn_norm, nodes_from_edges, match=r"with two isolated nodes")


def test_gcn_norm_catches_a_wrong_gradient():
    def detached(edge_index, num_nodes, edge_weight=None, add_self_loops=True):
        ei, w = gcn_norm(edge_index, num_nodes, edge_weight, add_self_loops)
        return ei, w.detach()

    fails(C.check_gcn_norm, detached, match=r"values are right but .*(detached|no gradient reaches `edge_weight`)")

    def degree_detached(edge_index, num_nodes, edge_weight=None, add_self_loops=True):
        ei, w = gcn_norm(edge_index, num_nodes, None if edge_weight is None else edge_weight.detach(), add_self_loops)
        if edge_weight is None:
            return ei, w
        raw = torch.cat([edge_weight[edge_index[0] != edge_index[1]], torch.ones(num_nodes, dtype=w.dtype)]) \
            if add_self_loops else edge_weight
        if add_self_loops and bool((edge_index[0] == edge_index[1]).any()):
            return ei, w
        return ei, w.detach() / raw.detach() * raw  # the degrees carry no gradient, the edge's own weight does

    fails(C.check_gcn_norm, degree_detached, match=r"values are right but the gradient with respect to `edge_weight`")


def test_gcn_norm_diagnoses_by_property_when_no_known_mistake_matches():
    def halved(edge_index, num_nodes, edge_weight=None, add_self_loops=True):  # a stray factor 1/2
        ei, w = gcn_norm(edge_index, num_nodes, edge_weight, add_self_loops)
        return ei, 0.5 * w

    fails(C.check_gcn_norm, halved, match=r"'A_hat sqrt\(d\) = sqrt\(d\) on an undirected graph' does not hold")
