"""Data-parallel training (Hour 09): the DDP-aware Trainer equals single-process training with the same global
batch; the in-process helpers (a world of size 1, the shards, rank-0-only logging and checkpoints)."""

import textwrap

import pytest
import torch

from amla.toolkit import distributed as ddp
from amla.toolkit.train import Trainer, TrainConfig

SCRIPT = textwrap.dedent("""
    import sys
    import torch
    torch.set_num_threads(1)
    from amla.toolkit import distributed as ddp
    ddp.init("gloo")
    ddp.toy_training(steps=int(sys.argv[1]), batch_size=16, out=sys.argv[2])
    ddp.toy_training(steps=int(sys.argv[1]), batch_size=16, out=sys.argv[3], unlabelled=0.4)
    ddp.teardown()
""")


@pytest.fixture
def world_of_one():
    ddp.init("gloo")
    yield
    ddp.teardown()


def test_two_gloo_processes_give_the_weights_of_one_process(tmp_path):
    script, out, out_summed = tmp_path / "ddp_train.py", tmp_path / "w.pt", tmp_path / "w_summed.pt"
    script.write_text(SCRIPT)
    done = ddp.launch(script, 2, ["4", str(out), str(out_summed)], timeout=120)
    assert "rank 0 of 2" in done.stdout and done.stdout.count("final loss") == 2  # rank 0 prints, rank 1 does not
    w_ddp, w_single = torch.load(out, weights_only=True), ddp.toy_training(steps=4, batch_size=16)
    diff = max(float((w_ddp[k] - w_single[k]).abs().max()) for k in w_single)
    assert diff <= 1e-6
    moved = ddp.toy_training(steps=1, batch_size=16)
    assert max(float((moved[k] - w_single[k]).abs().max()) for k in w_single) > 1e-3  # the comparison can fail
    # ignored labels fall unevenly on the two ranks: the (sum, count) loss still gives one process's weights
    w_ddp, w_single = torch.load(out_summed, weights_only=True), ddp.toy_training(steps=4, batch_size=16, unlabelled=0.4)
    assert max(float((w_ddp[k] - w_single[k]).abs().max()) for k in w_single) <= 1e-6


def test_world_of_one_runs_in_process_and_matches(world_of_one):
    assert ddp.is_distributed() and ddp.world_size() == 1 and ddp.rank() == 0 and ddp.is_main()
    in_group = ddp.toy_training(steps=2, batch_size=16)
    ddp.teardown()
    plain = ddp.toy_training(steps=2, batch_size=16)
    assert all(torch.equal(in_group[k], plain[k]) for k in plain)


def test_trainer_wraps_the_model_in_ddp_and_checkpoints_plain_keys(world_of_one, tmp_path):
    model = torch.nn.Linear(4, 2)
    x, y = torch.randn(32, 4), torch.randint(0, 2, (32,))
    path = tmp_path / "ck.pt"
    t = Trainer(model, (x, y), TrainConfig(max_steps=2, batch_size=8, progress=False, checkpoint_path=str(path)),
                device="cpu")
    assert isinstance(t.net, torch.nn.parallel.DistributedDataParallel) and t.model is model
    t.fit()
    assert set(torch.load(path, weights_only=False)["model"]) == {"weight", "bias"}


def test_shards_partition_the_global_batch_as_distributed_sampler_does():
    idx = torch.randperm(12, generator=torch.Generator().manual_seed(0))
    parts = [ddp.shard_indices(idx, r, 3) for r in range(3)]
    assert sorted(torch.cat(parts).tolist()) == sorted(idx.tolist()) and all(len(p) == 4 for p in parts)
    data = list(range(12))
    sampled = [list(torch.utils.data.DistributedSampler(data, num_replicas=3, rank=r, shuffle=False)) for r in range(3)]
    assert [p.tolist() for p in (ddp.shard_indices(torch.arange(12), r, 3) for r in range(3))] == sampled
    with pytest.raises(ValueError, match="divisible by the world size 3"):
        ddp.shard(10, 3)
    with pytest.raises(ValueError, match="rank must be in"):
        ddp.shard_indices(idx, 3, 3)


def test_rank_zero_only_saves_and_prints(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(ddp, "rank", lambda: 1)
    ddp.main_print("hello")
    assert capsys.readouterr().out == ""
    t = Trainer(torch.nn.Linear(2, 2), (torch.randn(8, 2), torch.randint(0, 2, (8,))),
                TrainConfig(max_steps=1, batch_size=4, progress=False), device="cpu")
    t.save(str(tmp_path / "rank1.pt"))
    assert not (tmp_path / "rank1.pt").exists()
    assert ddp.mean_over_ranks(2.5) == 2.5  # outside a group, the value itself


def test_bad_input_is_named(tmp_path):
    with pytest.raises(ValueError, match="backend must be"):
        ddp.init("mpi")
    with pytest.raises(ValueError, match="does not exist"):
        ddp.launch(tmp_path / "missing.py")
    with pytest.raises(ValueError, match="nproc must be"):
        ddp.launch(tmp_path / "missing.py", 0)
