"""The 2-D GAN of Hour 10: a generator and a discriminator MLP, PacGAN's packing, one training run per seed.

- ``Generator(z_dim, hidden, depth)``: noise ``z [N, z_dim]`` -> points ``[N, 2]``;
- ``Discriminator(hidden, depth, pack)``: points ``[N, 2]`` -> one logit per **pack** of ``pack`` points,
  ``[N // pack]``. With ``pack = 1`` it is the ordinary discriminator; with ``pack = m`` (PacGAN, Lin et al.
  2018) it sees ``m`` samples at once, all real or all fake, so a generator that puts every sample on the same
  mode is easy to tell apart: ``m`` copies of one mode rarely occur in the data.
- ``train_gans(...)``: the loop the notebook writes out, as one function, for the tables over 5 seeds: the seeds'
  GANs train side by side (``Generator.stack``: one batched matrix product per layer for all of them; on one CPU
  thread 5 seeds cost about as much as 3 separate runs); the losses are parameters, so the tables train with
  what the checks returned.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

__all__ = ["Discriminator", "GanRun", "Generator", "StackedLinear", "train_gans"]


def _mlp(sizes: list[int], act: Callable[[], nn.Module]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


def _positive_int(value: object, name: str, owner: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive int, got {value!r}")
    return value


class StackedLinear(nn.Module):
    """``E`` independent linear layers applied side by side: ``x [E, N, in]`` -> ``[E, N, out]`` (one batched
    matrix product instead of ``E`` small ones). Built from ``E`` ``nn.Linear`` layers, whose weights it copies."""

    def __init__(self, layers: list[nn.Linear]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.stack([lin.weight.detach().T for lin in layers]).contiguous())  # [E, in, out]
        self.bias = nn.Parameter(torch.stack([lin.bias.detach()[None] for lin in layers]).contiguous())  # [E, 1, out]

    def forward(self, x: Tensor) -> Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


def _stack(nets: list[nn.Sequential]) -> nn.Sequential:
    """One network that runs ``len(nets)`` copies of the same architecture side by side (on ``[E, N, d]``)."""
    return nn.Sequential(*[StackedLinear([n[i] for n in nets]) if isinstance(layer, nn.Linear) else layer
                           for i, layer in enumerate(nets[0])])


class Generator(nn.Module):
    """``z [N, z_dim]`` -> ``x [N, out_dim]``: ``depth`` hidden layers of ``hidden`` ReLU units, a linear output.

    ``Generator.stack(generators)`` runs several generators side by side: ``z [E, N, z_dim]`` -> ``[E, N, 2]``."""

    def __init__(self, z_dim: int = 2, hidden: int = 128, depth: int = 2, out_dim: int = 2) -> None:
        super().__init__()
        self.z_dim = _positive_int(z_dim, "z_dim", "Generator")
        _positive_int(hidden, "hidden", "Generator")
        _positive_int(depth, "depth", "Generator")
        self.members: int | None = None
        self.net = _mlp([z_dim] + [hidden] * depth + [_positive_int(out_dim, "out_dim", "Generator")], nn.ReLU)

    @classmethod
    def stack(cls, generators: list["Generator"]) -> "Generator":
        """``E`` generators (of one architecture) as one module that trains them side by side, each its own."""
        first = generators[0]
        out = cls(first.z_dim, 1, 1, 1)
        out.net = _stack([g.net for g in generators])
        out.members = len(generators)
        return out

    def forward(self, z: Tensor) -> Tensor:
        want = (self.members,) if self.members else ()
        if z.dim() != 2 + bool(self.members) or tuple(z.shape[:-2]) != want or z.shape[-1] != self.z_dim:
            lead = f"{self.members}, " if self.members else ""
            raise ValueError(f"Generator: z must be [{lead}N, {self.z_dim}] (noise of z_dim={self.z_dim}), "
                             f"got shape {tuple(z.shape)}")
        return self.net(z)

    def noise(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` standard normal latent vectors ``[n, z_dim]`` (``[E, n, z_dim]`` when stacked), on its device."""
        lead = (self.members,) if self.members else ()
        dev = next(self.parameters()).device
        return torch.randn(*lead, n, self.z_dim, generator=generator).to(dev)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` generated points ``[n, 2]`` (``[E, n, 2]`` when stacked), without a gradient."""
        return self(self.noise(n, generator))


class Discriminator(nn.Module):
    """``x [N, 2]`` -> logits ``[N // pack]``: ``depth`` hidden layers of ``hidden`` LeakyReLU(0.2) units.

    ``pack`` consecutive points form one input of size ``2 * pack`` (PacGAN); ``N`` must be a multiple of it.
    ``Discriminator.stack(discriminators)`` runs several side by side: ``[E, N, 2]`` -> ``[E, N // pack]``."""

    def __init__(self, hidden: int = 128, depth: int = 2, pack: int = 1, in_dim: int = 2) -> None:
        super().__init__()
        self.pack = _positive_int(pack, "pack", "Discriminator")
        self.in_dim = _positive_int(in_dim, "in_dim", "Discriminator")
        _positive_int(hidden, "hidden", "Discriminator")
        _positive_int(depth, "depth", "Discriminator")
        self.members: int | None = None
        self.net = _mlp([in_dim * pack] + [hidden] * depth + [1], lambda: nn.LeakyReLU(0.2))

    @classmethod
    def stack(cls, discriminators: list["Discriminator"]) -> "Discriminator":
        """``E`` discriminators (of one architecture) as one module that trains them side by side."""
        first = discriminators[0]
        out = cls(1, 1, first.pack, first.in_dim)
        out.net = _stack([d.net for d in discriminators])
        out.members = len(discriminators)
        return out

    def forward(self, x: Tensor) -> Tensor:
        want = (self.members,) if self.members else ()
        lead = f"{self.members}, " if self.members else ""
        if x.dim() != 2 + bool(self.members) or tuple(x.shape[:-2]) != want or x.shape[-1] != self.in_dim:
            raise ValueError(f"Discriminator: x must be points [{lead}N, {self.in_dim}], got shape {tuple(x.shape)}")
        n = x.shape[-2]
        if n % self.pack:
            raise ValueError(f"Discriminator: with pack={self.pack} the batch must be a multiple of {self.pack}, "
                             f"got {n} points")
        return self.net(x.reshape(*want, n // self.pack, self.pack * self.in_dim)).squeeze(-1)


@dataclass
class GanRun:
    """What ``train_gans`` returns: the stacked models (member ``e`` trained from ``seeds[e]``), the curves (the
    losses averaged over the members), the evaluations, the time it took."""

    G: Generator
    D: Discriminator
    seeds: tuple[int, ...]
    steps: list[int] = field(default_factory=list)
    d_losses: list[float] = field(default_factory=list)
    g_losses: list[float] = field(default_factory=list)
    evals: list[tuple[int, object]] = field(default_factory=list)  # (step, what eval_fn returned)
    seconds: float = 0.0

    @property
    def steps_per_s(self) -> float:
        """Training steps per second (each step trains every member once)."""
        return (self.steps[-1] / self.seconds) if self.steps and self.seconds > 0 else 0.0


LossD = Callable[[Tensor, Tensor], Tensor]
LossG = Callable[[Tensor], Tensor]


def train_gans(sample_real: Callable[[int, torch.Generator], Tensor], d_loss: LossD, g_loss: LossG, *,
               seeds: Sequence[int] = (0, 1, 2, 3, 4), steps: int = 5000, batch: int = 256, pack: int = 1,
               lr_d: float = 1e-3, lr_g: float = 1e-3, betas: tuple[float, float] = (0.5, 0.999),
               lr_decay: bool = False, z_dim: int = 2, hidden: int = 128, depth: int = 2, eval_every: int = 0,
               eval_fn: Callable[[Generator, int], object] | None = None, log_every: int = 50,
               device: torch.device | str = "cpu", lr_decay_start: float = 0.0) -> GanRun:
    """One GAN per seed, all trained side by side: the loop of the notebook, as a function, for the tables.

    ``sample_real(n, generator) -> [n, 2]`` draws real points; ``d_loss(real_logits, fake_logits)`` and
    ``g_loss(fake_logits)`` are the losses (the ones the exercises' checks returned). Member ``e`` starts from the
    weights ``torch.manual_seed(seeds[e])`` gives a ``Generator`` and a ``Discriminator``, and draws its own data and
    noise. Each step: one discriminator update on ``batch`` real and ``batch`` fresh fake points, then one generator
    update on ``batch`` fresh fake points; the losses see ``[E, batch]`` logits, and ``E`` times their mean is the
    sum of the members' own losses, so every member gets exactly its own gradient (Adam works element by element,
    so the members never mix). ``lr_decay``: both learning rates fall linearly to 0 over the run; with
    ``lr_decay_start = f`` (in ``[0, 1)``) they stay constant for the first fraction ``f`` of the steps and fall
    linearly to 0 over the rest.
    ``eval_fn(G, step)`` (``G`` stacked) runs every ``eval_every`` steps and at the end; results go to ``evals``.
    """
    if not seeds:
        raise ValueError("train_gans: seeds is empty; expected at least one seed, e.g. seeds=(0, 1, 2, 3, 4)")
    if batch % pack:
        raise ValueError(f"train_gans: batch ({batch}) must be a multiple of pack ({pack})")
    if not (isinstance(lr_decay_start, (int, float)) and 0.0 <= lr_decay_start < 1.0):
        raise ValueError(f"train_gans: lr_decay_start must be a fraction of the steps in [0, 1), got {lr_decay_start!r}")
    gens, discs = [], []
    for seed in seeds:
        torch.manual_seed(seed)
        gens.append(Generator(z_dim, hidden, depth))
        discs.append(Discriminator(hidden, depth, pack))
    E = len(seeds)
    G, D = Generator.stack(gens).to(device), Discriminator.stack(discs).to(device)
    data_gen = torch.Generator().manual_seed(10_000 + sum(seeds) * 7919 + E)
    opt_g = torch.optim.Adam(G.parameters(), lr=lr_g, betas=betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=lr_d, betas=betas)
    schedules = []
    if lr_decay:
        first = int(lr_decay_start * steps)  # the step where the decay begins

        def factor(s: int) -> float:
            return 1.0 if s < first else max(0.0, 1.0 - (s - first) / (steps - first))

        schedules = [torch.optim.lr_scheduler.LambdaLR(o, factor) for o in (opt_g, opt_d)]
    run = GanRun(G, D, tuple(seeds))
    start = time.perf_counter()
    for step in range(1, steps + 1):
        real = sample_real(E * batch, data_gen).reshape(E, batch, -1).to(device)
        fake = G(G.noise(batch, data_gen))
        loss_d = d_loss(D(real), D(fake.detach()))
        opt_d.zero_grad(set_to_none=True)
        (E * loss_d).backward()
        opt_d.step()

        loss_g = g_loss(D(G(G.noise(batch, data_gen))))
        opt_g.zero_grad(set_to_none=True)
        (E * loss_g).backward()
        opt_g.step()
        for s in schedules:
            s.step()
        if step % log_every == 0 or step == steps:
            run.steps.append(step)
            run.d_losses.append(loss_d.item())
            run.g_losses.append(loss_g.item())
        if eval_fn is not None and ((eval_every and step % eval_every == 0) or step == steps):
            run.seconds += time.perf_counter() - start
            run.evals.append((step, eval_fn(G, step)))
            start = time.perf_counter()
    run.seconds += time.perf_counter() - start
    return run
