"""Muon for the weight matrices, AdamW for the rest: one optimizer the course Trainer can step (Hour 06).

Muon (Jordan et al., 2024; ``torch.optim.Muon``) keeps SGD's momentum buffer for each weight matrix but steps
along its orthogonalised version: the buffer ``B = U S V^T`` is replaced by (approximately) ``U V^T``, computed
with five Newton-Schulz iterations (matrix products only), so every singular direction of the update has the
same size. It is defined for 2-D weights of hidden layers; embeddings, norms, biases and an output head tied to
the embedding stay with AdamW, as in Keller Jordan's and Moonshot's recipes.

``MuonWithAdamW`` holds a ``torch.optim.Muon`` and a ``torch.optim.AdamW`` and shares their parameter groups, so
a learning-rate scheduler (the Trainer's warmup-cosine ``LambdaLR``) scales both, the GradScaler and
``zero_grad`` see every parameter, and ``state_dict`` / ``load_state_dict`` checkpoint both (a resumed run
continues exactly).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn


def weight_decay_groups(params: Iterable[nn.Parameter], weight_decay: float) -> list[dict[str, Any]]:
    """AdamW's two parameter groups: weight decay on the matrices (dim >= 2), none on biases and norms (dim < 2)."""
    params = list(params)
    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]


def muon_split(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(matrices for Muon, the rest for AdamW): the weights of the ``nn.Linear`` layers, except a weight shared
    with an ``nn.Embedding`` (a tied output head); every other trainable parameter goes to AdamW."""
    embedded = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    linear = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)} - embedded
    params = [p for p in model.parameters() if p.requires_grad]  # each shared parameter once
    return [p for p in params if id(p) in linear], [p for p in params if id(p) not in linear]


class MuonWithAdamW(torch.optim.Optimizer):
    """``torch.optim.Muon`` on ``muon_split``'s matrices (learning rate ``muon_lr``), ``torch.optim.AdamW`` on the
    rest (``lr``, ``betas``; weight decay on its matrices only, as the Trainer's AdamW). ``param_groups[0]`` is
    AdamW's, so the Trainer's logged ``lr`` is the AdamW rate; the scheduler scales every group by one factor."""

    def __init__(self, model: nn.Module, lr: float, muon_lr: float = 0.02, betas: tuple[float, float] = (0.9, 0.99),
                 weight_decay: float = 0.0, momentum: float = 0.95) -> None:
        if lr <= 0 or muon_lr <= 0:
            raise ValueError(f"MuonWithAdamW: lr and muon_lr must be > 0, got lr={lr}, muon_lr={muon_lr}")
        matrices, rest = muon_split(model)
        if not matrices:
            raise ValueError("MuonWithAdamW: the model has no nn.Linear weight for Muon; use AdamW alone")
        self.adamw = torch.optim.AdamW(weight_decay_groups(rest, weight_decay), lr=lr, betas=betas)
        self.muon = torch.optim.Muon(matrices, lr=muon_lr, weight_decay=weight_decay, momentum=momentum)
        super().__init__([*self.adamw.param_groups, *self.muon.param_groups], {})  # the same dicts, not copies

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.adamw.step()
        self.muon.step()
        return loss

    def state_dict(self) -> dict[str, Any]:
        return {"adamw": self.adamw.state_dict(), "muon": self.muon.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if set(state_dict) != {"adamw", "muon"}:
            raise KeyError(f"MuonWithAdamW.load_state_dict: expected keys 'adamw' and 'muon', got {sorted(state_dict)}"
                           " (a checkpoint written with another optimizer?)")
        self.adamw.load_state_dict(state_dict["adamw"])
        self.muon.load_state_dict(state_dict["muon"])
        self.param_groups = [*self.adamw.param_groups, *self.muon.param_groups]  # loading made new group dicts
