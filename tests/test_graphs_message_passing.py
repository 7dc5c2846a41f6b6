"""Hour 13's message passing against PyTorch Geometric: ``propagate``, ``gcn_norm``, ``GCNLayer`` (equal to
``GCNConv`` with copied weights, to 1e-5), its ``MessagePassing`` twin, and the ``GCN`` model the hour trains."""

import pytest
import torch

pytest.importorskip("torch_geometric")

from torch_geometric.nn import GCNConv  # noqa: E402
from torch_geometric.nn.conv.gcn_conv import gcn_norm as pyg_gcn_norm  # noqa: E402
from torch_geometric.utils import scatter, to_undirected  # noqa: E402

from amla.graphs.message_passing import (  # noqa: E402
    GCN, SGC, GCNConvMP, GCNLayer, dense_adjacency, degrees, gcn_norm, propagate)

ATOL = 1e-5


def _random_graph(n: int, e: int, seed: int, *, undirected: bool = False, loops: bool = False,
                  isolated: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n - isolated, (2, e), generator=g)
    if not loops:
        ei = ei[:, ei[0] != ei[1]]
    return to_undirected(ei, num_nodes=n) if undirected else ei


GRAPHS = {
    "directed": dict(n=12, e=30),
    "undirected": dict(n=12, e=20, undirected=True),
    "with self-loops": dict(n=10, e=30, loops=True),
    "isolated nodes": dict(n=12, e=20, undirected=True, isolated=3),
}


@pytest.fixture(params=list(GRAPHS), ids=list(GRAPHS))
def graph(request):
    spec = GRAPHS[request.param]
    return spec["n"], _random_graph(seed=len(request.param), **spec)


class TestPropagate:
    def test_equals_pyg_scatter_and_the_dense_matmul(self, graph):
        n, ei = graph
        x, w = torch.randn(n, 5), torch.rand(ei.size(1))
        for weight in (None, w):
            got = propagate(x, ei, weight)
            msg = x[ei[0]] if weight is None else x[ei[0]] * weight[:, None]
            torch.testing.assert_close(got, scatter(msg, ei[1], dim=0, dim_size=n, reduce="sum"))
            torch.testing.assert_close(got, dense_adjacency(ei, n, weight) @ x)

    def test_isolated_and_empty(self):
        x = torch.randn(3, 2)
        assert torch.equal(propagate(x, torch.zeros(2, 0, dtype=torch.long)), torch.zeros(3, 2))
        out = propagate(x, torch.tensor([[0], [1]]))
        assert torch.equal(out[1], x[0]) and torch.equal(out[[0, 2]], torch.zeros(2, 2))

    def test_keeps_float64_and_gradients(self):
        x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
        ei = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]])
        out = propagate(x, ei)
        assert out.dtype == torch.float64
        assert torch.autograd.gradcheck(lambda t: propagate(t, ei), (x,))

    def test_bad_input_says_what_is_wrong(self):
        with pytest.raises(ValueError, match=r"\[2, E\]"):
            propagate(torch.randn(3, 2), torch.tensor([0, 1]))
        with pytest.raises(ValueError, match=r"ids in \[0, 2\]"):
            propagate(torch.randn(3, 2), torch.tensor([[0], [3]]))
        with pytest.raises(ValueError, match=r"int64"):
            propagate(torch.randn(3, 2), torch.tensor([[0], [1]], dtype=torch.int32))
        with pytest.raises(ValueError, match=r"edge_weight must have shape \(1,\)"):
            propagate(torch.randn(3, 2), torch.tensor([[0], [1]]), torch.ones(2))

    def test_degrees(self):
        ei = torch.tensor([[0, 0, 1, 2], [1, 2, 2, 0]])
        assert degrees(ei, 4).tolist() == [1, 1, 2, 0]
        assert degrees(ei, 4, at="source").tolist() == [2, 1, 1, 0]
        assert degrees(ei, 4, torch.tensor([0.5, 1.0, 2.0, 3.0])).tolist() == [3.0, 0.5, 3.0, 0.0]


class TestGcnNorm:
    @pytest.mark.parametrize("self_loops", [True, False])
    @pytest.mark.parametrize("weighted", [False, True])
    def test_equals_pyg_gcn_norm(self, graph, self_loops, weighted):
        n, ei = graph
        w = torch.rand(ei.size(1)) + 0.1 if weighted else None
        ours = dense_adjacency(*gcn_norm(ei, n, w, self_loops)[:1], n, gcn_norm(ei, n, w, self_loops)[1])
        pyg_ei, pyg_w = pyg_gcn_norm(ei, w, n, add_self_loops=self_loops)
        torch.testing.assert_close(ours, dense_adjacency(pyg_ei, n, pyg_w), atol=ATOL, rtol=0)
        # the same edges in the same order as PyG's add_remaining_self_loops, not only the same matrix
        assert torch.equal(gcn_norm(ei, n, w, self_loops)[0], pyg_ei)

    def test_symmetric_and_sqrt_degree_eigenvector(self):
        n, ei = 9, _random_graph(9, 15, seed=3, undirected=True)
        a_hat = dense_adjacency(*gcn_norm(ei, n)[:1], n, gcn_norm(ei, n)[1])
        torch.testing.assert_close(a_hat, a_hat.T)
        d = (dense_adjacency(ei, n) + torch.eye(n)).sum(1)
        torch.testing.assert_close(a_hat @ d.sqrt(), d.sqrt())
        assert torch.linalg.eigvalsh(a_hat).max().item() == pytest.approx(1.0, abs=1e-5)

    def test_zero_degree_gives_zero_not_inf(self):
        ei = torch.tensor([[0, 1], [1, 2]])  # node 0 receives nothing
        _, w = gcn_norm(ei, 3, add_self_loops=False)
        assert torch.isfinite(w).all() and w[0] == 0

    def test_does_not_change_its_inputs(self):
        ei, w = torch.tensor([[0, 1, 1], [1, 0, 1]]), torch.tensor([1.0, 2.0, 3.0])
        before = ei.clone(), w.clone()
        gcn_norm(ei, 2, w)
        assert torch.equal(ei, before[0]) and torch.equal(w, before[1])


def _copied(conv: GCNConv, **kw) -> tuple[GCNLayer, "GCNConvMP"]:
    layer = GCNLayer(conv.in_channels, conv.out_channels, **kw)
    layer.load_state_dict(conv.state_dict())
    mp = GCNConvMP(conv.in_channels, conv.out_channels, **kw)
    mp.load_state_dict(conv.state_dict())
    return layer, mp


class TestGCNLayer:
    @pytest.mark.parametrize("self_loops", [True, False])
    @pytest.mark.parametrize("weighted", [False, True])
    def test_equals_gcnconv_with_copied_weights(self, graph, self_loops, weighted):
        n, ei = graph
        torch.manual_seed(0)
        conv = GCNConv(6, 4, add_self_loops=self_loops)
        torch.nn.init.normal_(conv.bias)  # a nonzero bias, so it is compared too
        layer, mp = _copied(conv, add_self_loops=self_loops)
        x, w = torch.randn(n, 6), (torch.rand(ei.size(1)) + 0.1 if weighted else None)
        want = conv(x, ei, w)
        assert (layer(x, ei, w) - want).abs().max() <= ATOL
        assert (mp(x, ei, w) - want).abs().max() <= ATOL

    def test_gradients_equal_gcnconv(self, graph):
        n, ei = graph
        torch.manual_seed(1)
        conv = GCNConv(5, 3)
        layer, _ = _copied(conv)
        x = torch.randn(n, 5)
        conv(x, ei).square().sum().backward()
        layer(x, ei).square().sum().backward()
        for (name, p), q in zip(conv.named_parameters(), layer.parameters()):
            torch.testing.assert_close(q.grad, p.grad, atol=ATOL, rtol=1e-4, msg=name)

    def test_normalize_false_and_no_bias(self):
        torch.manual_seed(2)
        conv = GCNConv(4, 3, normalize=False, bias=False)
        layer = GCNLayer(4, 3, normalize=False, bias=False)
        layer.load_state_dict(conv.state_dict())
        ei, x, w = _random_graph(8, 20, seed=5), torch.randn(8, 4), torch.rand(20)
        for weight in (None, w[: ei.size(1)]):
            torch.testing.assert_close(layer(x, ei, weight), conv(x, ei, weight), atol=ATOL, rtol=0)

    def test_parameter_names_and_init_match_gcnconv(self):
        conv, layer = GCNConv(7, 5), GCNLayer(7, 5)
        assert set(layer.state_dict()) == set(conv.state_dict()) == {"lin.weight", "bias"}
        assert layer.lin.weight.shape == conv.lin.weight.shape and torch.equal(layer.bias, torch.zeros(5))

    def test_float64(self):
        conv = GCNConv(3, 2).double()
        layer, _ = _copied(conv)
        layer = layer.double()
        ei, x = _random_graph(6, 12, seed=7, undirected=True), torch.randn(6, 3, dtype=torch.float64)
        torch.testing.assert_close(layer(x, ei), conv(x, ei), atol=1e-12, rtol=0)

    def test_runs_on_the_functions_it_is_given(self):
        calls = {"propagate": 0, "gcn_norm": 0}

        def my_propagate(x, edge_index, edge_weight=None):
            calls["propagate"] += 1
            return propagate(x, edge_index, edge_weight)

        def my_norm(edge_index, num_nodes, edge_weight=None, add_self_loops=True):
            calls["gcn_norm"] += 1
            return gcn_norm(edge_index, num_nodes, edge_weight, add_self_loops)

        layer = GCNLayer(3, 2, propagate=my_propagate, gcn_norm=my_norm)
        layer(torch.randn(4, 3), torch.tensor([[0, 1, 2], [1, 2, 3]]))
        assert calls == {"propagate": 1, "gcn_norm": 1}

    def test_cached_normalisation(self):
        calls = []

        def my_norm(*args):
            calls.append(1)
            return gcn_norm(*args)

        layer = GCNLayer(3, 2, gcn_norm=my_norm, cached=True)
        ei, x = torch.tensor([[0, 1], [1, 0]]), torch.randn(2, 3)
        first = layer(x, ei)
        torch.testing.assert_close(layer(x, ei), first)
        assert len(calls) == 1

    def test_wrong_feature_size_is_named(self):
        with pytest.raises(ValueError, match=r"expects x of shape \[N, 3\], got \(4, 5\)"):
            GCNLayer(3, 2)(torch.randn(4, 5), torch.tensor([[0], [1]]))


class TestGCN:
    def test_shapes_and_embedding(self):
        torch.manual_seed(0)
        ei = _random_graph(10, 20, seed=1, undirected=True)
        x = torch.randn(10, 6)
        plain = GCN(6, 8, 3, num_layers=2)
        assert plain(x, ei).shape == (10, 3)
        logits, emb = GCN(6, 8, 4, num_layers=3, embedding_dim=2, hops=3)(x, ei, return_embedding=True)
        assert logits.shape == (10, 4) and emb.shape == (10, 2)

    def test_two_layers_equal_two_gcnconvs(self):
        torch.manual_seed(3)
        ei, x = _random_graph(9, 18, seed=2, undirected=True), torch.randn(9, 5)
        model = GCN(5, 7, 3, num_layers=2).eval()
        c1, c2 = GCNConv(5, 7), GCNConv(7, 3)
        c1.load_state_dict(model.layers[0].state_dict())
        c2.load_state_dict(model.layers[1].state_dict())
        torch.testing.assert_close(model(x, ei), c2(torch.relu(c1(x, ei)), ei), atol=ATOL, rtol=0)

    def test_hops_are_appnp(self):
        from torch_geometric.nn import APPNP

        torch.manual_seed(4)
        ei, x = _random_graph(9, 18, seed=4, undirected=True), torch.randn(9, 5)
        model = GCN(5, 7, 3, num_layers=1, hops=5, alpha=0.2).eval()
        want = APPNP(K=5, alpha=0.2)(model.layers[0](x, ei), ei)
        torch.testing.assert_close(model(x, ei), want, atol=ATOL, rtol=0)

    def test_cached_gcn_normalises_once(self):
        calls = []

        def my_norm(*args):
            calls.append(1)
            return gcn_norm(*args)

        ei, x = _random_graph(8, 16, seed=6, undirected=True), torch.randn(8, 4)
        model = GCN(4, 5, 3, num_layers=3, gcn_norm=my_norm, cached=True)
        first = model(x, ei)
        torch.testing.assert_close(model(x, ei), first)
        assert len(calls) == 3  # once per layer, not per call

    def test_rejects_zero_layers(self):
        with pytest.raises(ValueError, match="num_layers"):
            GCN(3, 4, 2, num_layers=0)


class TestSGC:
    @pytest.mark.parametrize("hops", [0, 1, 3])
    def test_equals_pyg_sgconv_with_copied_weights(self, graph, hops):
        from torch_geometric.nn import SGConv

        n, ei = graph
        torch.manual_seed(hops)
        conv = SGConv(6, 3, K=hops)
        model = SGC(6, 3, hops=hops)
        model.load_state_dict(conv.state_dict())
        x, w = torch.randn(n, 6), torch.rand(ei.size(1)) + 0.1
        for weight in (None, w):
            assert (model(x, ei, weight) - conv(x, ei, weight)).abs().max() <= ATOL

    def test_features_are_cached_and_carry_no_graph(self):
        calls = []

        def my_propagate(x, edge_index, edge_weight=None):
            calls.append(1)
            return propagate(x, edge_index, edge_weight)

        model = SGC(3, 2, hops=2, propagate=my_propagate)
        ei, x = torch.tensor([[0, 1, 2], [1, 2, 0]]), torch.randn(3, 3)
        logits, feats = model(x, ei, return_embedding=True)
        model(x, ei)
        assert len(calls) == 2 and not feats.requires_grad and logits.shape == (3, 2)
        model(x.clone(), ei)  # new features: propagated again
        assert len(calls) == 4

    def test_beats_label_propagation_on_the_karate_club(self):
        from amla.graphs.data import karate, label_propagation_accuracy
        from amla.graphs.train import train_nodes

        data = karate()
        torch.manual_seed(0)
        run = train_nodes(SGC(34, 4, hops=2), data, epochs=300, lr=0.01, weight_decay=0.5, seed=0)
        lp = label_propagation_accuracy(data)
        assert lp == pytest.approx(23 / 30)
        assert run.test_acc == pytest.approx(27 / 30) and run.test_acc > lp


def test_karate_weighted_is_not_gcnconv_on_the_plain_edges():
    from amla.graphs.data import karate, karate_weighted

    data = karate()
    ei, w = karate_weighted()
    assert torch.equal(ei, data.edge_index) and w.shape == (156,) and bool((w != 1).any())
    torch.manual_seed(0)
    conv = GCNConv(34, 4)
    layer, _ = _copied(conv)
    torch.testing.assert_close(layer(data.x, ei, w), conv(data.x, data.edge_index, w), atol=ATOL, rtol=0)
    assert (layer(data.x, ei, w) - conv(data.x, data.edge_index)).abs().max() > 1e-2
