"""amla.graphs.sampling (Hour 14): the course's neighbour sampler for mini-batch GraphSAGE, its SAGE layer
against PyG's SAGEConv, and the mini-batch / full-batch training loop with its time and memory measures."""

import pytest
import torch
from torch_geometric.data import Data
from torch_geometric.nn import SAGEConv
from torch_geometric.utils import to_undirected

from amla.graphs.sampling import SAGE, SageConv, neighbor_batches, sample_neighbors, saved_bytes, train_sage


def _graph(n: int = 60, e: int = 240, seed: int = 0, features: int = 8, classes: int = 3) -> Data:
    g = torch.Generator().manual_seed(seed)
    edge_index = to_undirected(torch.randint(0, n, (2, e), generator=g), num_nodes=n)
    edge_index = edge_index[:, edge_index[0] != edge_index[1]]
    y = torch.randint(0, classes, (n,), generator=g)
    masks = torch.randperm(n, generator=g)
    train, val, test = (torch.zeros(n, dtype=torch.bool) for _ in range(3))
    train[masks[:20]], val[masks[20:35]], test[masks[35:]] = True, True, True
    return Data(x=torch.randn(n, features, generator=g), edge_index=edge_index, y=y, train_mask=train,
                val_mask=val, test_mask=test, num_nodes=n)


class TestSageConv:
    def test_equals_pyg_sageconv_with_the_same_weights(self):
        data = _graph()
        edge_index = torch.cat([data.edge_index, torch.tensor([[1], [59]])], 1)  # a directed extra edge
        edge_index = edge_index[:, edge_index[1] != 7]  # node 7 has no incoming edge
        pyg, ours = SAGEConv(8, 5), SageConv(8, 5)
        with torch.no_grad():
            ours.lin_l.weight.copy_(pyg.lin_l.weight)
            ours.lin_l.bias.copy_(pyg.lin_l.bias)
            ours.lin_r.weight.copy_(pyg.lin_r.weight)
        torch.testing.assert_close(ours(data.x, edge_index), pyg(data.x, edge_index), atol=1e-5, rtol=1e-5)

    def test_sage_output_shape(self):
        data = _graph()
        assert SAGE(8, 16, 3, num_layers=3)(data.x, data.edge_index).shape == (60, 3)


class TestSampler:
    @pytest.mark.parametrize("layers", [2, 3])
    def test_full_fanouts_give_the_full_batch_outputs_on_the_seeds(self, layers):
        data = _graph()
        torch.manual_seed(0)
        model = SAGE(8, 16, 3, num_layers=layers).eval()
        seeds = torch.tensor([3, 17, 42, 0])
        sub = sample_neighbors(data.edge_index, data.num_nodes, seeds, [-1] * layers)
        with torch.no_grad():
            full = model(data.x, data.edge_index)[seeds]
            mini = model(data.x[sub.n_id], sub.edge_index)[:sub.batch_size]
        torch.testing.assert_close(mini, full, atol=1e-5, rtol=1e-5)

    def test_fanouts_at_least_the_max_degree_also_take_everything(self):
        data = _graph()
        big = int(torch.bincount(data.edge_index[1]).max())
        seeds = torch.arange(5)
        a = sample_neighbors(data.edge_index, data.num_nodes, seeds, [big, big], torch.Generator().manual_seed(1))
        b = sample_neighbors(data.edge_index, data.num_nodes, seeds, [-1, -1])
        assert torch.equal(a.n_id, b.n_id)
        assert set(a.e_id.tolist()) == set(b.e_id.tolist())

    def test_sampled_edges_are_real_and_fanouts_respected(self):
        data = _graph(n=80, e=600)
        seeds = torch.tensor([5, 6, 7])
        sub = sample_neighbors(data.edge_index, data.num_nodes, seeds, [3, 2], torch.Generator().manual_seed(0))
        assert torch.equal(sub.n_id[:3], seeds) and sub.batch_size == 3
        assert len(set(sub.n_id.tolist())) == sub.num_nodes  # every node once
        real = set(map(tuple, data.edge_index.t().tolist()))
        globals_ = sub.n_id[sub.edge_index]
        assert all(tuple(e) in real for e in globals_.t().tolist())
        assert torch.equal(globals_, data.edge_index[:, sub.e_id])
        assert len(set(sub.e_id.tolist())) == sub.e_id.numel()  # without replacement
        targets = torch.bincount(sub.edge_index[1], minlength=sub.num_nodes)
        assert int(targets[:3].max()) <= 3  # the seeds: at most k_1 in-neighbours
        assert int(targets[3:].max()) <= 2  # the hop-1 nodes: at most k_2

    def test_deterministic_with_a_generator(self):
        data = _graph()
        seeds = torch.tensor([1, 2])
        a = sample_neighbors(data.edge_index, 60, seeds, [2, 2], torch.Generator().manual_seed(3))
        b = sample_neighbors(data.edge_index, 60, seeds, [2, 2], torch.Generator().manual_seed(3))
        assert torch.equal(a.n_id, b.n_id) and torch.equal(a.edge_index, b.edge_index)

    def test_a_seed_without_neighbours(self):
        edge_index = torch.tensor([[0, 1], [1, 0]])
        sub = sample_neighbors(edge_index, 3, torch.tensor([2]), [5, 5])
        assert sub.n_id.tolist() == [2] and sub.edge_index.shape == (2, 0)

    def test_bad_input(self):
        with pytest.raises(ValueError, match="edge_index must have shape"):
            sample_neighbors(torch.zeros(3, 4, dtype=torch.long), 5, torch.tensor([0]), [1])
        with pytest.raises(ValueError, match="repeated"):
            sample_neighbors(torch.tensor([[0], [1]]), 2, torch.tensor([1, 1]), [1])

    def test_batches_cover_the_training_nodes_once(self):
        data = _graph()
        subs = list(neighbor_batches(data, [3, 3], batch_size=6, generator=torch.Generator().manual_seed(0)))
        seeds = torch.cat([s.n_id[:s.batch_size] for s in subs])
        assert sorted(seeds.tolist()) == sorted(data.train_mask.nonzero().flatten().tolist())
        assert [s.batch_size for s in subs] == [6, 6, 6, 2]


class TestMeasures:
    def test_saved_bytes_counts_inputs_once_and_activations(self):
        x = torch.randn(100, 10)
        lin = torch.nn.Linear(10, 20)
        with saved_bytes(x) as box:
            lin(x).relu().sum()
        assert box[0] >= x.numel() * 4 + 100 * 20 * 4  # the input, and the ReLU's output it saves
        with saved_bytes(x) as just_input:
            pass
        assert just_input[0] == x.numel() * 4

    def test_train_sage_both_ways(self):
        data = _graph()
        runs = {}
        for name, fanouts in (("full", None), ("mini", [3, 3])):
            torch.manual_seed(0)
            runs[name] = run = train_sage(SAGE(8, 16, 3), data, epochs=3, fanouts=fanouts, batch_size=8)
            assert len(run.epoch_seconds) == 3 and len(run.history) == 3
            assert 0.0 <= run.test_acc <= 1.0 and 1 <= run.best_epoch <= 3
        assert runs["full"].mean_nodes == 60
        assert runs["mini"].mean_nodes < 60
        assert runs["mini"].peak_bytes < runs["full"].peak_bytes
