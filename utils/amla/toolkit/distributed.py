"""Data-parallel training with ``torch.distributed``: what makes the course Trainer DDP-aware (Hour 09).

One process per rank, each with a full copy of the model. Every optimizer step each rank takes its shard of the
same global batch (``shard``, the order ``DistributedSampler`` gives), DDP averages the gradients across ranks
in the backward pass, so every rank takes the same step: with equal shards, the gradient of the global mean loss.

- ``init`` / ``teardown``: the process group (from torchrun's environment, or a world of size 1 in-process)
- ``rank``, ``world_size``, ``is_main``, ``is_distributed``, ``main_print``: who am I, print on rank 0 only
- ``wrap``: the model in ``DistributedDataParallel`` when a group is initialised, else the model itself
- ``shard``, ``sampler``: a rank's part of a batch; the ``DistributedSampler`` for a DataLoader
- ``mean_over_ranks``: the all-reduced mean of a logged number (the loss)
- ``launch``: run a script under ``torchrun --standalone --nproc_per_node N`` in a subprocess, return its output
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.distributed as dist
from torch import nn


def is_distributed() -> bool:
    """True inside an initialised process group."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Rank 0 (or no process group): the one process that logs and writes checkpoints."""
    return rank() == 0


def main_print(*args: Any, **kwargs: Any) -> None:
    """``print`` on rank 0 only."""
    if is_main():
        print(*args, **kwargs)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def init(backend: str = "gloo") -> tuple[int, int]:
    """Join the process group; returns (rank, world size).

    Under torchrun (``RANK`` and ``WORLD_SIZE`` in the environment) every process joins the group torchrun set up;
    otherwise this process alone makes a world of size 1 (a TCP store on 127.0.0.1, a free port), which runs the
    very same code path in a notebook."""
    if backend not in ("gloo", "nccl"):
        raise ValueError(f"backend must be 'gloo' (CPU) or 'nccl' (CUDA), got {backend!r}")
    if is_distributed():
        return rank(), world_size()
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        dist.init_process_group(backend)
    else:
        dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    return rank(), world_size()


def teardown() -> None:
    """Leave the process group (a no-op outside one)."""
    if is_distributed():
        dist.destroy_process_group()


def wrap(model: nn.Module) -> nn.Module:
    """``DistributedDataParallel(model)`` inside a process group (it broadcasts rank 0's weights), else ``model``."""
    if not is_distributed():
        return model
    device = next(model.parameters()).device
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def shard(batch_size: int, world: int | None = None) -> tuple[int, int]:
    """(rank, world) for splitting a global batch of ``batch_size``; every rank gets ``batch_size / world`` rows."""
    world = world_size() if world is None else world
    if batch_size % world:
        raise ValueError(f"the global batch_size={batch_size} must be divisible by the world size {world}")
    return rank(), world


def shard_indices(indices: torch.Tensor, rank_: int, world: int) -> torch.Tensor:
    """Rank ``rank_``'s part of a batch of indices: every ``world``-th from ``rank_``, as ``DistributedSampler``
    deals them out, so the shards of all ranks together are the global batch."""
    if not 0 <= rank_ < world:
        raise ValueError(f"rank must be in [0, {world - 1}], got {rank_}")
    return indices[rank_::world]


def sampler(dataset: Any, shuffle: bool = True, seed: int = 0) -> torch.utils.data.DistributedSampler:
    """The ``DistributedSampler`` of this rank (for a DataLoader; call ``set_epoch(e)`` every epoch)."""
    return torch.utils.data.DistributedSampler(dataset, num_replicas=world_size(), rank=rank(), shuffle=shuffle,
                                               seed=seed, drop_last=True)


def mean_over_ranks(value: float) -> float:
    """The mean of ``value`` over all ranks (all-reduce); ``value`` itself outside a process group."""
    if not is_distributed():
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    return float(sum_over_ranks(t).item()) / world_size()


def sum_over_ranks(t: torch.Tensor) -> torch.Tensor:
    """The elementwise sum of tensor ``t`` over all ranks (all-reduce, on a copy); ``t`` itself outside a process group."""
    if not is_distributed():
        return t
    t = t.detach().clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def launch(script: str | Path, nproc: int = 2, args: Sequence[str] = (), timeout: float = 300.0,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``script`` under ``torchrun --standalone --nproc_per_node nproc`` (``python -m torch.distributed.run``)
    in a subprocess; returns the finished process (``.stdout``, ``.stderr``, ``.returncode``). Raises
    ``RuntimeError`` with the end of its output when it fails."""
    if not isinstance(nproc, int) or nproc < 1:
        raise ValueError(f"nproc must be a positive int, got {nproc!r}")
    if not Path(script).is_file():
        raise ValueError(f"script {script} does not exist; write it first")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           str(script), *args]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env)
    if done.returncode:
        raise RuntimeError(f"torchrun exited with {done.returncode}: {(done.stdout + done.stderr)[-2000:]}")
    return done


def toy_training(steps: int = 4, batch_size: int = 16, seed: int = 0, out: str | Path | None = None,
                 lr: float = 0.05, unlabelled: float = 0.0) -> dict[str, torch.Tensor]:
    """Train a small MLP classifier on fixed random data with the course Trainer, data-parallel when a process
    group is initialised; returns the final weights (and rank 0 saves them to ``out``). The same call with one
    process and the same global ``batch_size`` gives the same weights (up to float rounding).

    ``unlabelled`` > 0 marks that fraction of the labels -100 (ignored, like padding) and trains on the summed loss
    over the labelled examples (``summed_cross_entropy``), so the ranks' shards count different numbers of terms."""
    from amla.toolkit.checkpoint import save_checkpoint
    from amla.toolkit.train import Trainer, TrainConfig, default_loss, summed_cross_entropy

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 8, generator=g)
    y = (x[:, :4].sum(1) > 0).long() + (x[:, 4:].sum(1) > 0).long()
    y[torch.rand(256, generator=g) < unlabelled] = -100
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 3))
    config = TrainConfig(max_steps=steps, batch_size=batch_size, lr=lr, min_lr=lr, seed=seed, progress=False)
    trainer = Trainer(model, (x, y), config, device="cpu", loss_fn=summed_cross_entropy if unlabelled else default_loss)
    history = trainer.fit()
    main_print(f"rank 0 of {world_size()}: final loss {history.last('loss'):.6f}")
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if out is not None and is_main():
        save_checkpoint(out, weights)  # atomic: a reader never sees half a file
    return weights
