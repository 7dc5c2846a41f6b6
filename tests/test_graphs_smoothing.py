"""amla.graphs.smoothing (Hour 14): the Dirichlet energy and Rayleigh quotient against their matrix forms, the
sparse GCN propagation against PyG's GCNConv, the deep GCN and its remedies, and the depth sweep."""

import pytest
import torch
from torch_geometric.data import Data
from torch_geometric.nn import GCNConv
from torch_geometric.utils import to_dense_adj, to_undirected

from amla.graphs.smoothing import (DeepGCN, dirichlet_energy, gcn_matrix, layer_energies, rayleigh_quotient,
                                   smoothing_sweep)


def _graph(n: int = 40, e: int = 120, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ring = torch.stack([torch.arange(n), torch.roll(torch.arange(n), 1)])  # connected
    edge_index = to_undirected(torch.cat([ring, torch.randint(0, n, (2, e), generator=g)], 1), num_nodes=n)
    edge_index = edge_index[:, edge_index[0] != edge_index[1]]
    return torch.randn(n, 6, generator=g, dtype=torch.float64), edge_index


class TestEnergy:
    def test_constant_signal_has_zero_energy(self):
        x, edge_index = _graph()
        assert float(dirichlet_energy(torch.ones_like(x) * 3.0, edge_index)) == 0.0

    def test_equals_the_laplacian_form(self):
        x, edge_index = _graph()
        a = to_dense_adj(edge_index, max_num_nodes=x.shape[0])[0].double()
        lap = torch.diag(a.sum(1)) - a
        torch.testing.assert_close(dirichlet_energy(x, edge_index), torch.trace(x.T @ lap @ x))

    def test_normalized_equals_the_gcn_laplacian_form(self):
        x, edge_index = _graph()
        n = x.shape[0]
        a_hat = gcn_matrix(edge_index, n).to_dense().double()
        torch.testing.assert_close(dirichlet_energy(x, edge_index, normalized=True),
                                   torch.trace(x.T @ (torch.eye(n, dtype=torch.float64) - a_hat) @ x))

    def test_the_gcn_limit_has_zero_normalized_energy_and_quotient(self):
        x, edge_index = _graph()
        deg = torch.bincount(edge_index[1], minlength=x.shape[0]).double() + 1
        limit = deg.sqrt()[:, None] * torch.tensor([[1.0, -2.0, 0.5]], dtype=torch.float64)
        assert float(dirichlet_energy(limit, edge_index, normalized=True)) == pytest.approx(0.0, abs=1e-10)
        assert float(rayleigh_quotient(limit, edge_index)) == pytest.approx(0.0, abs=1e-12)
        assert float(dirichlet_energy(limit, edge_index)) > 0  # not constant: the plain energy sees it

    def test_rayleigh_is_scale_free_and_bounded(self):
        x, edge_index = _graph()
        r = float(rayleigh_quotient(x, edge_index))
        assert 0.0 < r < 2.0
        assert float(rayleigh_quotient(7.5 * x, edge_index)) == pytest.approx(r, rel=1e-10)
        assert float(rayleigh_quotient(torch.zeros_like(x), edge_index)) == 0.0

    def test_self_loops_add_nothing(self):
        x, edge_index = _graph()
        loops = torch.arange(x.shape[0]).repeat(2, 1)
        with_loops = torch.cat([edge_index, loops], 1)
        torch.testing.assert_close(dirichlet_energy(x, with_loops), dirichlet_energy(x, edge_index))

    def test_bad_shapes(self):
        with pytest.raises(ValueError, match="x must have shape"):
            dirichlet_energy(torch.zeros(5), torch.zeros(2, 0, dtype=torch.long))
        with pytest.raises(ValueError, match="edge_index must have shape"):
            dirichlet_energy(torch.zeros(5, 2), torch.zeros(3, 1, dtype=torch.long))


class TestDeepGCN:
    def test_propagation_equals_pyg_gcnconv(self):
        x, edge_index = _graph()
        x = x.float()
        conv = GCNConv(6, 4)
        torch.nn.init.normal_(conv.bias)
        mine = gcn_matrix(edge_index, x.shape[0]) @ (x @ conv.lin.weight.t()) + conv.bias
        torch.testing.assert_close(mine, conv(x, edge_index), atol=1e-5, rtol=1e-5)

    def test_layer_equals_gcnconv_and_gradients_match_dense(self):
        x, edge_index = _graph()
        x = x.float().requires_grad_(True)
        model = DeepGCN(6, 4, 3, depth=1, dropout=0.0)
        conv = GCNConv(6, 4)
        with torch.no_grad():
            conv.lin.weight.copy_(model.convs[0].weight)
            conv.bias.copy_(model.convs[0].bias)
        h = model.hidden_states(x, edge_index)[-1]
        torch.testing.assert_close(h, conv(x, edge_index).relu(), atol=1e-5, rtol=1e-5)
        (g,) = torch.autograd.grad(h.sum(), x)
        x2 = x.detach().clone().requires_grad_(True)
        dense = gcn_matrix(edge_index, x.shape[0]).to_dense()
        (g2,) = torch.autograd.grad((dense @ (x2 @ model.convs[0].weight.t()) + model.convs[0].bias).relu().sum(), x2)
        torch.testing.assert_close(g, g2, atol=1e-5, rtol=1e-5)

    @pytest.mark.parametrize("remedy", [None, "residual", "initial", "pairnorm"])
    def test_remedies_run(self, remedy):
        x, edge_index = _graph()
        model = DeepGCN(6, 8, 3, depth=4, remedy=remedy)
        assert model(x.float(), edge_index).shape == (40, 3)
        assert len(model.hidden_states(x.float(), edge_index)) == 4
        assert len(layer_energies(model, x.float(), edge_index, "energy")) == 4

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="remedy must be one of"):
            DeepGCN(6, 8, 3, depth=2, remedy="dropedge")
        with pytest.raises(ValueError, match="depth must be at least 1"):
            DeepGCN(6, 8, 3, depth=0)
        with pytest.raises(ValueError, match="measure must be one of"):
            layer_energies(DeepGCN(6, 8, 3, depth=1), torch.zeros(3, 6), torch.zeros(2, 0, dtype=torch.long), "mad")

    def test_a_deep_plain_gcn_smooths_and_the_initial_residual_does_not(self):
        x, edge_index = _graph()
        torch.manual_seed(0)
        plain = layer_energies(DeepGCN(6, 16, 3, depth=32), x.float(), edge_index)
        torch.manual_seed(0)
        initial = layer_energies(DeepGCN(6, 16, 3, depth=32, remedy="initial"), x.float(), edge_index)
        assert plain[-1] < plain[0] / 20
        assert initial[-1] > 10 * plain[-1]

    def test_sweep_rows(self):
        x, edge_index = _graph()
        n = x.shape[0]
        masks = torch.zeros(3, n, dtype=torch.bool)
        masks[0, :10], masks[1, 10:20], masks[2, 20:] = True, True, True
        data = Data(x=x.float(), edge_index=edge_index, y=torch.arange(n) % 3, train_mask=masks[0],
                    val_mask=masks[1], test_mask=masks[2])
        rows = smoothing_sweep(data, [1, 3], remedy="initial", seeds=(0, 1), epochs=2, hidden=8)
        assert [r.depth for r in rows] == [1, 3] and all(r.remedy == "initial" for r in rows)
        assert all(0 <= r.test_acc <= 1 and r.rayleigh_init >= 0 and r.seconds > 0 for r in rows)
        assert all(r.energy_init > 0 and r.energy >= 0 and 0 <= r.rayleigh < 2 for r in rows)
