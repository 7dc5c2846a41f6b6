"""amla.graphs.pooling (Hour 14): readouts against PyG's global pools, the GIN layer against PyG's GINConv, the
house-or-K_{2,3} data set (deterministic, balanced, no count or degree signal), batching, and the models."""

import pytest
import torch
from torch import nn
from torch_geometric.data import Batch
from torch_geometric.nn import GINConv, global_add_pool, global_max_pool, global_mean_pool
from torch_geometric.utils import to_dense_adj

from amla.graphs.pooling import (GIN, HOUSE, K23, DegreeMLP, EdgeBlind, GINLayer, collate, gin_aggregate,
                                 house_or_k23, readout, train_graphs)


def _batch():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(9, 4, generator=g)
    batch = torch.tensor([0, 0, 0, 2, 2, 3, 3, 3, 3])  # graph 1 has no node
    return x, batch


class TestReadout:
    @pytest.mark.parametrize("kind, pool", [("sum", global_add_pool), ("mean", global_mean_pool),
                                            ("max", global_max_pool)])
    def test_equals_pyg_with_an_empty_graph(self, kind, pool):
        x, batch = _batch()
        torch.testing.assert_close(readout(x, batch, 4, kind), pool(x, batch, size=4))
        torch.testing.assert_close(readout(x.double(), batch, 4, kind), pool(x.double(), batch, size=4))
        assert readout(x, batch, 4, kind)[1].abs().sum() == 0

    @pytest.mark.parametrize("kind", ["sum", "mean", "max"])
    def test_permutation_invariant(self, kind):
        x, batch = _batch()
        perm = torch.randperm(9, generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(readout(x[perm], batch[perm], 4, kind), readout(x, batch, 4, kind))

    def test_bad_input(self):
        x, batch = _batch()
        with pytest.raises(ValueError, match="kind must be one of"):
            readout(x, batch, 4, "median")
        with pytest.raises(ValueError, match="expected x"):
            readout(x, batch[:-1], 4)


class TestGIN:
    @pytest.mark.parametrize("eps, train_eps", [(0.0, False), (0.3, True)])
    def test_layer_equals_pyg_ginconv_with_the_same_mlp(self, eps, train_eps):
        g = torch.Generator().manual_seed(2)
        x = torch.randn(12, 5, generator=g)
        edge_index = torch.randint(0, 12, (2, 40), generator=g)  # directed, repeated edges, self-loops
        mlp = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 8))
        ours = GINLayer(mlp, eps=eps, train_eps=train_eps)
        pyg = GINConv(mlp, eps=eps, train_eps=train_eps)
        torch.testing.assert_close(ours(x, edge_index), pyg(x, edge_index), atol=1e-5, rtol=1e-5)
        assert isinstance(ours.eps, nn.Parameter) == train_eps

    def test_aggregate_by_hand(self):
        x = torch.tensor([[1.0], [10.0], [100.0], [1000.0]])
        edge_index = torch.tensor([[0, 0, 1, 2], [1, 1, 2, 2]])  # 0 -> 1 twice, 1 -> 2, a self-loop on 2; 3 alone
        out = gin_aggregate(x, edge_index, 0.5)
        assert out.flatten().tolist() == [1.5, 15.0 + 2.0, 150.0 + 10.0 + 100.0, 1500.0]

    def test_gradient_reaches_eps(self):
        eps = torch.tensor(0.2, requires_grad=True)
        x = torch.randn(3, 2)
        gin_aggregate(x, torch.tensor([[0], [1]]), eps).sum().backward()
        torch.testing.assert_close(eps.grad, x.sum())

    def test_gin_graph_outputs_are_permutation_invariant(self):
        graphs = house_or_k23(4, seed=3)
        torch.manual_seed(0)
        model = GIN(1, 16, 2, num_layers=3).eval()
        b = collate(graphs)
        out = model(b.x, b.edge_index, b.batch, b.num_graphs)
        perm = torch.randperm(b.x.shape[0], generator=torch.Generator().manual_seed(0))
        inverse = torch.empty_like(perm)
        inverse[perm] = torch.arange(perm.numel())
        again = model(b.x[perm], inverse[b.edge_index], b.batch[perm], b.num_graphs)
        torch.testing.assert_close(again, out, atol=1e-5, rtol=1e-5)

    def test_gin_uses_the_aggregate_it_is_given(self):
        calls = []

        def spy(x, edge_index, eps):
            calls.append(x.shape)
            return gin_aggregate(x, edge_index, eps)

        b = collate(house_or_k23(2))
        GIN(1, 8, 2, num_layers=3, aggregate=spy)(b.x, b.edge_index, b.batch, b.num_graphs)
        assert len(calls) == 3

    def test_edge_blind_ignores_the_edges(self):
        b = collate(house_or_k23(6, seed=4))
        model = EdgeBlind(1, 8, 2)
        torch.testing.assert_close(model(b.x, b.edge_index, b.batch, 6),
                                   model(b.x, b.edge_index[:, :3], b.batch, 6))
        assert DegreeMLP(8, 2)(b.x, b.edge_index, b.batch, 6).shape == (6, 2)


def _triangles(g) -> int:
    a = to_dense_adj(g.edge_index, max_num_nodes=g.num_nodes)[0]
    return int(torch.trace(a @ a @ a)) // 6


class TestDataset:
    def test_deterministic_and_balanced(self):
        a, b = house_or_k23(40, seed=7), house_or_k23(40, seed=7)
        assert all(torch.equal(g.edge_index, h.edge_index) and torch.equal(g.y, h.y) for g, h in zip(a, b))
        assert sum(int(g.y) for g in a) == 20
        c = house_or_k23(40, seed=8)
        assert any(not torch.equal(g.edge_index, h.edge_index) for g, h in zip(a, c))

    def test_structure(self):
        for g in house_or_k23(40, seed=0):
            n, e = g.num_nodes, g.edge_index.shape[1] // 2
            assert e == n + 1  # a tree (n - 6 edges) + 6 motif edges + 1 to hang it
            assert g.x.shape == (n, 1) and bool((g.x == 1).all())
            a = to_dense_adj(g.edge_index, max_num_nodes=n)[0]
            assert torch.equal(a, a.T) and int(a.max()) == 1 and int(a.diagonal().sum()) == 0
            assert _triangles(g) == int(g.y)  # the house's roof is the only triangle

    def test_motifs_share_the_degree_sequence(self):
        def degrees(pairs):
            return sorted(torch.bincount(torch.tensor(pairs).flatten(), minlength=5).tolist())

        assert degrees(HOUSE) == degrees(K23) == [2, 2, 2, 3, 3]

    def test_bad_size(self):
        with pytest.raises(ValueError, match="even"):
            house_or_k23(5)

    def test_collate_equals_pyg_batch(self):
        graphs = house_or_k23(5 * 2, seed=1)
        ours, pyg = collate(graphs), Batch.from_data_list(graphs)
        assert torch.equal(ours.x, pyg.x) and torch.equal(ours.edge_index, pyg.edge_index)
        assert torch.equal(ours.batch, pyg.batch) and torch.equal(ours.y, pyg.y) and ours.num_graphs == 10


def test_gin_beats_the_edge_blind_baseline():
    train, test = house_or_k23(160, seed=0), house_or_k23(80, seed=1)
    torch.manual_seed(0)
    gin = train_graphs(GIN(1, 16, 2, num_layers=3), train, test, epochs=30, batch_size=16)
    torch.manual_seed(0)
    blind = train_graphs(EdgeBlind(1, 16, 2), train, test, epochs=30, batch_size=16)
    assert len(gin.losses) == 30 and gin.seconds > 0
    assert gin.test_acc >= 0.8 and blind.test_acc <= 0.65
