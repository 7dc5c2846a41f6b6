"""Full-batch node classification, the loop Hours 13 and 14 train with, written to be read top to bottom.

One epoch is one step on the whole graph: every node's logits from one forward pass, the cross-entropy on the
labelled nodes (``train_mask``) only, one Adam step. After each epoch the model is evaluated (dropout off) on
every mask; with a ``val_mask`` the epoch of best validation accuracy selects the test accuracy reported (the
protocol of the GCN and GAT papers' public splits), otherwise the last epoch's. ``patience`` stops the run once the
validation accuracy has not improved for that many epochs (early stopping, as the GAT paper trains with patience
100; here on the accuracy alone), so a model that has converged stops spending epochs. The dashboard
(``amla.views.Dashboard``) and a per-epoch callback (to save embeddings for a view) are optional.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["NodeRun", "accuracy", "train_nodes"]

Forward = Callable[[nn.Module, Any], Tensor]


def accuracy(logits: Tensor, y: Tensor, mask: Tensor) -> float:
    """Fraction of the nodes in ``mask`` whose arg-max logit is their label."""
    if logits.dim() != 2 or logits.shape[0] != y.shape[0] or mask.shape != y.shape:
        raise ValueError(f"accuracy: expected logits [N, C], y [N] and mask [N], got {tuple(logits.shape)}, "
                         f"{tuple(y.shape)} and {tuple(mask.shape)}")
    if int(mask.sum()) == 0:
        raise ValueError("accuracy: the mask selects no node")
    return float((logits[mask].argmax(dim=-1) == y[mask]).float().mean())


def _default_forward(model: nn.Module, data: Any) -> Tensor:
    return model(data.x, data.edge_index)


@dataclass
class NodeRun:
    """What ``train_nodes`` measured: accuracies at the selected epoch, the per-epoch history, the time."""

    test_acc: float
    val_acc: float | None
    train_acc: float
    best_epoch: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def epochs_per_s(self) -> float:
        return len(self.history) / self.seconds if self.seconds > 0 else float("inf")


def train_nodes(
    model: nn.Module,
    data: Any,
    *,
    epochs: int,
    lr: float,
    weight_decay: float = 5e-4,
    device: torch.device | str | None = None,
    seed: int | None = None,
    forward: Forward | None = None,
    on_epoch: Callable[[int, nn.Module], None] | None = None,
    dash: Any = None,
    patience: int | None = None,
) -> NodeRun:
    """Train ``model`` on ``data`` (a PyG ``Data`` with ``x``, ``edge_index``, ``y``, ``train_mask`` and, optionally,
    ``val_mask``/``test_mask``) for ``epochs`` full-batch Adam steps; see the module docstring.

    ``forward(model, data) -> logits [N, C]`` defaults to ``model(data.x, data.edge_index)``; ``seed`` seeds
    torch before the first step (dropout masks), not the model's initialisation; ``on_epoch(epoch, model)`` runs
    after every epoch, with the model in eval mode and gradients off. ``patience``: at most ``epochs`` epochs, fewer
    when the validation accuracy has not improved for ``patience`` epochs (needs a ``val_mask``)."""
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"train_nodes: epochs must be a positive int, got {epochs!r}")
    if patience is not None and (not isinstance(patience, int) or isinstance(patience, bool) or patience < 1):
        raise ValueError(f"train_nodes: patience must be a positive int or None, got {patience!r}")
    if patience is not None and getattr(data, "val_mask", None) is None:
        raise ValueError("train_nodes: patience stops on the validation accuracy, but the data has no val_mask")
    for name in ("x", "edge_index", "y", "train_mask"):
        if getattr(data, name, None) is None:
            raise ValueError(f"train_nodes: the data has no {name!r}; expected a PyG Data with x, edge_index, y "
                             "and train_mask")
    forward = forward or _default_forward
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    data = copy.copy(data).to(device)  # PyG's .to() works in place: the caller's Data stays where it was
    masks = {k: getattr(data, f"{k}_mask", None) for k in ("train", "val", "test")}
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    if seed is not None:
        torch.manual_seed(seed)
    if dash is not None:
        dash.start(epochs)
    history: list[dict[str, float]] = []
    best: dict[str, float] | None = None
    seconds = 0.0
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        model.train()
        logits = forward(model, data)
        loss = nn.functional.cross_entropy(logits[data.train_mask], data.y[data.train_mask])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        model.eval()
        with torch.no_grad():
            logits = forward(model, data)
        seconds += time.perf_counter() - start
        record = {"epoch": epoch, "loss": loss.item()}
        for key, mask in masks.items():
            if mask is not None and bool(mask.any()):
                record[f"{key}_acc"] = accuracy(logits, data.y, mask)
        if masks["val"] is not None and bool(masks["val"].any()):
            record["val_loss"] = nn.functional.cross_entropy(logits[masks["val"]], data.y[masks["val"]]).item()
        history.append(record)
        score = record.get("val_acc", 0.0)
        if best is None or "val_acc" not in record or score > best.get("val_acc", 0.0):
            best = record
        if on_epoch is not None:
            with torch.no_grad():
                on_epoch(epoch, model)
        if dash is not None:
            dash.log(epoch, loss=record["loss"])
            dash.log_eval(epoch, **{k: v for k, v in record.items() if k.endswith("_acc")})
        if patience is not None and epoch - int(best["epoch"]) >= patience:
            break  # no better validation accuracy for `patience` epochs
    if dash is not None:
        dash.finish()
    assert best is not None
    return NodeRun(
        test_acc=best.get("test_acc", float("nan")),
        val_acc=best.get("val_acc"),
        train_acc=best["train_acc"],
        best_epoch=int(best["epoch"]),
        seconds=seconds,
        history=history,
    )
