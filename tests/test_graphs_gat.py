"""Hour 14's graph attention layer against PyG's GATConv, and the Planetoid models built on it."""

import pytest
import torch

pytest.importorskip("torch_geometric")

from torch_geometric.nn import GATConv  # noqa: E402

from amla.graphs import gat as G  # noqa: E402
from amla.graphs import planetoid_models as P  # noqa: E402


def _graph(seed: int = 0, n: int = 12, e: int = 40):
    g = torch.Generator().manual_seed(seed)
    edges = torch.randint(0, n - 2, (2, e), generator=g)  # nodes n-2 and n-1 have no edge at all
    edges[:, :3] = torch.tensor([[0, 1, 2], [0, 1, 2]])  # existing self-loops: GATConv replaces them by one each
    return torch.randn(n, 5, generator=g), edges


def _pair(heads: int, concat: bool, out: int = 4, seed: int = 0):
    torch.manual_seed(seed)
    conv = GATConv(5, out, heads=heads, concat=concat)
    with torch.no_grad():
        conv.bias.normal_()
    return conv, G.GATLayer(5, out, heads, concat=concat).copy_from_pyg(conv)


class TestAgainstGATConv:
    @pytest.mark.parametrize("heads", [1, 3, 8])
    @pytest.mark.parametrize("concat", [True, False])
    def test_equal_outputs_and_weights(self, heads, concat):
        x, edges = _graph(heads)
        conv, mine = _pair(heads, concat, seed=heads)
        want, (want_edges, want_w) = conv(x, edges, return_attention_weights=True)
        got, (got_edges, got_w) = mine(x, edges, return_attention=True)
        assert got.shape == want.shape == (12, 4 * heads if concat else 4)
        assert (got - want).abs().max() < 1e-5
        assert torch.equal(got_edges, want_edges)
        assert (got_w - want_w).abs().max() < 1e-5

    def test_equal_gradients(self):
        x, edges = _graph(3)
        conv, mine = _pair(4, True)
        conv(x, edges).square().sum().backward()
        mine(x, edges).square().sum().backward()
        assert (mine.lin.weight.grad - conv.lin.weight.grad).abs().max() < 1e-4
        assert (mine.att_src.grad - conv.att_src.grad.view(4, 4)).abs().max() < 1e-4
        assert (mine.att_dst.grad - conv.att_dst.grad.view(4, 4)).abs().max() < 1e-4

    def test_same_initialisation_from_the_same_seed(self):
        torch.manual_seed(5)
        conv = GATConv(5, 4, heads=2)
        torch.manual_seed(5)
        mine = G.GATLayer(5, 4, 2)
        assert torch.equal(mine.lin.weight, conv.lin.weight)
        assert torch.equal(mine.att_src, conv.att_src.view(2, 4))

    def test_isolated_nodes_keep_their_own_features(self):
        x, edges = _graph(1)
        conv, mine = _pair(2, True)
        out = mine(x, edges)
        h = mine.lin(x[-1:])  # a node without edges attends only to itself: weight 1
        assert (out[-1] - (h[0] + mine.bias)).abs().max() < 1e-5


class TestAttentionWeights:
    def test_each_nodes_incoming_weights_sum_to_one(self):
        x, edges = _graph(2)
        _, mine = _pair(3, True)
        _, (full, w) = mine(x, edges, return_attention=True)
        sums = torch.zeros(12, 3).index_add(0, full[1], w)
        assert torch.allclose(sums, torch.ones(12, 3), atol=1e-5)
        assert int((full[0] == full[1]).sum()) == 12  # exactly one self-loop per node

    def test_edge_softmax_is_stable_and_grouped(self):
        scores = torch.tensor([[1e4], [1e4 - 1], [3.0], [-1e4]])
        index = torch.tensor([0, 0, 1, 1])
        w = G.edge_softmax(scores, index, 3)
        assert torch.isfinite(w).all()
        assert torch.allclose(w[:2, 0], torch.softmax(torch.tensor([1.0, 0.0]), 0))
        assert torch.allclose(w[2:, 0], torch.tensor([1.0, 0.0]))
        assert torch.allclose(G.edge_softmax(scores[:, 0], index, 3), w[:, 0])

    def test_the_layer_uses_the_attention_it_is_given(self):
        calls = []

        def uniform(alpha_src, alpha_dst, edge_index, negative_slope):
            calls.append(negative_slope)
            full = G.add_self_loops(edge_index, alpha_src.size(0))
            deg = torch.zeros(alpha_src.size(0)).index_add(0, full[1], torch.ones(full.size(1)))
            return (1 / deg[full[1]])[:, None].expand(-1, alpha_src.size(1))

        x, edges = _graph(4)
        layer = G.GATLayer(5, 4, 2, negative_slope=0.3, attention=uniform)
        _, (_, w) = layer(x, edges, return_attention=True)
        assert calls == [0.3] and torch.allclose(w[:, 0], w[:, 1])

    def test_a_wrong_attention_shape_is_named(self):
        x, edges = _graph(4)
        layer = G.GATLayer(5, 4, 2, attention=lambda a, b, e, s: torch.ones(e.size(1), 2))
        with pytest.raises(ValueError, match=r"self-loops appended"):
            layer(x, edges)


class TestModels:
    def test_gat_paper_shapes_and_attention(self):
        torch.manual_seed(0)
        x, edges = _graph(0)
        model = G.GAT(5, 3, **{k: v for k, v in G.paper_settings("PubMed").items() if k not in ("lr", "weight_decay")})
        model.eval()
        out, att = model(x, edges, return_attention=True)
        assert out.shape == (12, 3) and len(att) == 2
        assert att[0][1].shape[1] == 8 and att[1][1].shape[1] == 8
        assert G.paper_settings("Cora")["out_heads"] == 1 and G.paper_settings("Cora")["lr"] == 5e-3
        with pytest.raises(ValueError, match="unknown dataset"):
            G.paper_settings("Reddit")

    def test_course_gat_equals_pyg_gat_from_the_same_seed(self):
        x, edges = _graph(0)
        torch.manual_seed(3)
        mine = P.CourseGAT(5, 3).eval()
        torch.manual_seed(3)
        theirs = P.PygGAT(5, 3).eval()
        assert (mine(x, edges) - theirs(x, edges)).abs().max() < 1e-5

    def test_sparse_features_give_the_same_logits(self):
        x, edges = _graph(0)
        x = x.clamp(min=0)
        for cls in (P.CourseGAT, P.CourseGCN, P.PygGCN):
            torch.manual_seed(1)
            model = cls(5, 3).eval()
            dense = model(x, edges)
            sparse = model(x.to_sparse_csr(), edges)
            assert (dense - sparse).abs().max() < 1e-5, cls.__name__

    def test_feature_dropout_on_sparse_rows_drops_stored_entries_only(self):
        x = torch.zeros(50, 40)
        x[torch.arange(50), torch.arange(50) % 40] = 1.0
        torch.manual_seed(0)
        dropped = P.feature_dropout(x.to_sparse_csr(), 0.5, True).to_dense()
        kept = dropped[x > 0]
        assert set(kept.unique().tolist()) <= {0.0, 2.0} and 0 < int((kept == 0).sum()) < 50
        assert (dropped[x == 0] == 0).all()
        assert P.feature_dropout(x.to_sparse_csr(), 0.5, False).to_dense().equal(x)

    def test_bad_input_is_named(self):
        with pytest.raises(ValueError, match=r"x must be \[N, 5\]"):
            G.GATLayer(5, 4)(torch.randn(3, 6), torch.tensor([[0], [1]]))
        with pytest.raises(ValueError, match=r"\[2, E\]"):
            G.gat_attention(torch.randn(3, 1), torch.randn(3, 1), torch.tensor([0, 1]))
