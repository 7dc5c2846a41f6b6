"""amla.graphs.data (karate club, Planetoid, the label-propagation baseline) and amla.graphs.train."""

import os
import shutil
from pathlib import Path

import pytest
import torch

pytest.importorskip("torch_geometric")

from amla.graphs import data as gdata  # noqa: E402
from amla.graphs.train import accuracy, train_nodes  # noqa: E402
from amla.toolkit import data as tdata  # noqa: E402

SHARED = Path(os.environ.get("AMLA_DATA", "")) / "planetoid" / "Cora" / "raw" / "ind.cora.x"
needs_planetoid = pytest.mark.skipif(not SHARED.exists(), reason="Planetoid's raw files are not in AMLA_DATA")


def test_karate_is_pygs_with_a_test_mask():
    data = gdata.karate()
    assert data.num_nodes == 34 and data.edge_index.shape == (2, 156) and int(data.y.max()) == 3
    assert data.train_mask.nonzero().flatten().tolist() == [0, 4, 8, 24]
    assert torch.equal(data.test_mask, ~data.train_mask) and int(data.test_mask.sum()) == 30
    assert data.is_undirected()


def test_karate_weighted_lines_up_with_the_plain_edge_list():
    edge_index, weight = gdata.karate_weighted()
    assert torch.equal(edge_index, gdata.karate().edge_index)
    assert weight.shape == (156,) and weight.min() >= 1 and len(weight.unique()) > 1
    # both directions carry the same weight
    lookup = {(int(u), int(v)): float(w) for (u, v), w in zip(edge_index.T, weight)}
    assert all(lookup[(v, u)] == w for (u, v), w in lookup.items())


def test_label_propagation_is_pygs():
    data = gdata.karate()
    assert gdata.label_propagation_accuracy(data) == pytest.approx(23 / 30)
    from torch_geometric.nn import LabelPropagation

    out = LabelPropagation(num_layers=3, alpha=0.9)(data.y, data.edge_index, mask=data.train_mask)
    expected = float((out.argmax(-1)[data.test_mask] == data.y[data.test_mask]).float().mean())
    assert gdata.label_propagation_accuracy(data, num_layers=3, alpha=0.9) == expected


@needs_planetoid
@pytest.mark.parametrize("name,nodes,classes,train", [("Cora", 2708, 7, 140), ("citeseer", 3327, 6, 120)])
def test_planetoid_public_split(name, nodes, classes, train):
    data = gdata.planetoid(name)
    assert data.num_nodes == nodes and int(data.y.max()) + 1 == classes
    assert (int(data.train_mask.sum()), int(data.val_mask.sum()), int(data.test_mask.sum())) == (train, 500, 1000)
    assert not (data.train_mask & data.test_mask).any() and not (data.val_mask & data.test_mask).any()
    sums = data.x.sum(dim=1)
    assert torch.allclose(sums[sums > 0], torch.ones(int((sums > 0).sum())), atol=1e-5)
    raw = gdata.planetoid(name, normalize=False)
    assert set(raw.x.unique().tolist()) <= {0.0, 1.0} and torch.equal(raw.edge_index, data.edge_index)


@needs_planetoid
def test_planetoid_writes_nothing_beside_the_raw_files(tmp_path, monkeypatch):
    root = tmp_path / "data"
    shutil.copytree(SHARED.parent.parent.parent, root / "planetoid")
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    monkeypatch.setenv(tdata.DATA_ENV, str(root))
    assert gdata.planetoid("Cora").num_nodes == 2708
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


@needs_planetoid
def test_planetoid_rejects_a_changed_file(tmp_path, monkeypatch):
    raw = tmp_path / "planetoid" / "Cora" / "raw"
    shutil.copytree(SHARED.parent, raw)
    with open(raw / "ind.cora.graph", "ab") as f:
        f.write(b"x")
    monkeypatch.setenv(tdata.DATA_ENV, str(tmp_path))
    with pytest.raises(tdata.ChecksumMismatch, match="ind.cora.graph"):
        gdata.planetoid("Cora")


def test_planetoid_offline_names_the_missing_file(tmp_path, monkeypatch):
    monkeypatch.setenv(tdata.DATA_ENV, str(tmp_path))
    with pytest.raises(tdata.DataMissing, match=r"planetoid/Cora/raw/ind\.cora\.allx.*kimiyoung"):
        gdata.planetoid("Cora", download=False)
    with pytest.raises(ValueError, match="unknown graph 'PubMedX'.*Cora, CiteSeer"):
        gdata.planetoid("PubMedX")


class _Linear(torch.nn.Module):
    def __init__(self, features: int, classes: int) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(features, classes)

    def forward(self, x, edge_index):
        return self.lin(x)


def _toy(with_val: bool = True):
    from torch_geometric.data import Data

    g = torch.Generator().manual_seed(0)
    y = torch.arange(60) % 3
    x = torch.nn.functional.one_hot(y, 3).float() + 0.3 * torch.randn(60, 3, generator=g)
    masks = {"train_mask": torch.arange(60) < 30, "test_mask": torch.arange(60) >= 45}
    if with_val:
        masks["val_mask"] = (torch.arange(60) >= 30) & (torch.arange(60) < 45)
    return Data(x=x, edge_index=torch.empty(2, 0, dtype=torch.long), y=y, **masks)


def test_train_nodes_learns_and_selects_the_best_validation_epoch():
    torch.manual_seed(0)
    seen = []
    run = train_nodes(_Linear(3, 3), _toy(), epochs=40, lr=0.1, on_epoch=lambda e, m: seen.append((e, m.training)))
    assert run.history[-1]["test_acc"] > 0.9 and len(run.history) == 40 and run.epochs_per_s > 0
    assert seen == [(e, False) for e in range(1, 41)]
    best = max(run.history, key=lambda r: r["val_acc"])  # the first epoch with the best validation accuracy
    assert run.best_epoch == best["epoch"] and run.test_acc == best["test_acc"] and run.val_acc == best["val_acc"]
    assert run.history[-1]["loss"] < run.history[0]["loss"]


def test_train_nodes_without_validation_reports_the_last_epoch_and_is_reproducible():
    runs = []
    for _ in range(2):
        torch.manual_seed(1)
        runs.append(train_nodes(_Linear(3, 3), _toy(with_val=False), epochs=5, lr=0.1, seed=3))
    assert runs[0].best_epoch == 5 and runs[0].val_acc is None
    assert [r["loss"] for r in runs[0].history] == [r["loss"] for r in runs[1].history]


def test_train_nodes_stops_after_patience_epochs_without_a_better_validation_accuracy():
    torch.manual_seed(0)
    full = train_nodes(_Linear(3, 3), _toy(), epochs=60, lr=0.1, seed=0)
    torch.manual_seed(0)
    early = train_nodes(_Linear(3, 3), _toy(), epochs=60, lr=0.1, seed=0, patience=5)
    # the same run up to where it stops: the first epoch 5 epochs past the best validation accuracy so far
    best, stop = None, None
    for rec in full.history:
        if best is None or rec["val_acc"] > best["val_acc"]:
            best = rec
        if rec["epoch"] - best["epoch"] >= 5:
            stop = rec["epoch"]
            break
    assert stop is not None and stop < 60, "the toy should converge well before 60 epochs"
    assert len(early.history) == stop and early.history == full.history[:stop]
    assert early.best_epoch == best["epoch"] and early.test_acc == best["test_acc"]
    with pytest.raises(ValueError, match="patience must be a positive int or None, got 0"):
        train_nodes(_Linear(3, 3), _toy(), epochs=5, lr=0.1, patience=0)
    with pytest.raises(ValueError, match="the data has no val_mask"):
        train_nodes(_Linear(3, 3), _toy(with_val=False), epochs=5, lr=0.1, patience=3)


def test_train_nodes_and_accuracy_reject_bad_input():
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        train_nodes(_Linear(3, 3), _toy(), epochs=0, lr=0.1)
    bad = _toy()
    del bad.train_mask
    with pytest.raises(ValueError, match="no 'train_mask'"):
        train_nodes(_Linear(3, 3), bad, epochs=1, lr=0.1)
    with pytest.raises(ValueError, match=r"expected logits \[N, C\]"):
        accuracy(torch.zeros(5), torch.zeros(5, dtype=torch.long), torch.ones(5, dtype=torch.bool))
    with pytest.raises(ValueError, match="selects no node"):
        accuracy(torch.zeros(5, 2), torch.zeros(5, dtype=torch.long), torch.zeros(5, dtype=torch.bool))
