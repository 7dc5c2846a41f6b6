"""DETR's set prediction with bipartite matching (Carion et al. 2020), small enough to train on a CPU (Hour 08).

The data: grayscale images with 1..max_objects non-overlapping axis-aligned rectangles on a dark, slightly noisy
background. Class 0 is a filled rectangle, class 1 a hollow one (a 1-pixel outline); ``n_classes=1`` makes them
all filled. Boxes are ``(cx, cy, w, h)`` normalised to [0, 1] by the image size.

- ``boxes_dataset(n, size=32, max_objects=3, seed=0, n_classes=2) -> (images [n, 1, size, size], targets)``,
  ``targets[i] = {"labels": long [k], "boxes": float [k, 4]}`` (cxcywh).
- ``box_cxcywh_to_xyxy``, ``box_xyxy_to_cxcywh``, ``box_iou(a, b) -> [N, M]``,
  ``generalized_box_iou(a [N, 4], b [M, 4]) -> [N, M]`` (xyxy boxes).
- ``matching_cost(logits [Q, K+1], boxes [Q, 4], labels [k], target_boxes [k, 4], w_class=1, w_l1=5, w_giou=2)
  -> [Q, k]``: ``-w_class p(class) + w_l1 |b - b'|_1 - w_giou GIoU(b, b')``; ``hungarian_match(...)`` (same
  arguments) ``-> (query_idx, target_idx)``, the assignment of least total cost (``linear_sum_assignment``).
- ``set_loss(outputs, targets, n_classes, eos_coef=0.1, w_class=1, w_l1=5, w_giou=2) -> (loss, parts)``.
- ``TinyDETR(n_classes=2, n_queries=5, d_model=64, ...)``: CNN backbone (stride 4), 2-D sinusoidal positions,
  encoder, decoder with learned object queries (``TransformerBlock(cross_attention=True)``), class and box heads;
  ``forward(images) -> {"logits" [B, Q, K+1], "boxes" [B, Q, 4], "aux": [per earlier decoder layer]}``.
- ``train_detr(model, data, steps, lr=2e-3, batch_size=32, ...) -> history``; ``predict(model, images)``;
  ``evaluate_detr(model, data) -> metrics``; ``draw_predictions(ax, image, pred, target)``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

from amla.toolkit.errors import check_int, shape_text
from amla.transformers.nn import TransformerBlock
from amla.transformers.positions import sinusoidal_table

__all__ = ["TinyDETR", "box_cxcywh_to_xyxy", "box_iou", "box_xyxy_to_cxcywh", "boxes_dataset", "draw_predictions",
           "evaluate_detr", "generalized_box_iou", "hungarian_match", "matching_cost", "predict", "set_loss",
           "train_detr"]

Target = dict[str, Tensor]


# --- data ----------------------------------------------------------------------------------------------

def boxes_dataset(n: int, size: int = 32, max_objects: int = 3, seed: int = 0,
                  n_classes: int = 2) -> tuple[Tensor, list[Target]]:
    """``n`` images ``[n, 1, size, size]`` (background N(0, 0.05^2), rectangles 1) and their targets.

    Each image draws ``k`` in 1..max_objects and places up to ``k`` non-overlapping rectangles (sides
    ``max(4, size // 6)`` .. ``size // 2`` pixels) by rejection sampling; each is class 0 (filled) or 1 (hollow).
    """
    check_int("boxes_dataset", "n", n), check_int("boxes_dataset", "max_objects", max_objects)
    check_int("boxes_dataset", "size", size, least=16)
    if n_classes not in (1, 2):
        raise ValueError(f"boxes_dataset: n_classes must be 1 (filled) or 2 (filled, hollow), got {n_classes!r}")
    rng = np.random.default_rng(seed)
    images = rng.normal(0.0, 0.05, (n, 1, size, size)).astype(np.float32)
    targets = []
    lo, hi = max(4, size // 6), size // 2
    for i in range(n):
        k, placed = int(rng.integers(1, max_objects + 1)), []
        for _ in range(100 * k):  # rejection sampling of non-overlapping (1-pixel gap) rectangles
            if len(placed) == k:
                break
            w, h = (int(v) for v in rng.integers(lo, hi + 1, 2))
            x0, y0 = int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1))
            if all(x0 > b[2] or b[0] > x0 + w or y0 > b[3] or b[1] > y0 + h for b in placed):
                placed.append((x0, y0, x0 + w, y0 + h))
        labels, background = rng.integers(0, n_classes, len(placed)), images[i, 0].copy()
        for (x0, y0, x1, y1), c in zip(placed, labels):
            images[i, 0, y0:y1, x0:x1] = 1.0
            if c == 1:  # hollow: the background again inside a 1-pixel outline
                images[i, 0, y0 + 1:y1 - 1, x0 + 1:x1 - 1] = background[y0 + 1:y1 - 1, x0 + 1:x1 - 1]
        xyxy = torch.tensor(placed, dtype=torch.float32) / size
        targets.append({"labels": torch.as_tensor(labels, dtype=torch.long), "boxes": box_xyxy_to_cxcywh(xyxy)})
    return torch.from_numpy(images), targets


# --- boxes ---------------------------------------------------------------------------------------------

def _check_boxes(owner: str, name: str, b: Tensor) -> None:
    if not isinstance(b, Tensor) or b.dim() != 2 or b.shape[-1] != 4:
        raise ValueError(f"{owner}: {name} must be a [N, 4] tensor of boxes, got {shape_text(b)}")


def box_cxcywh_to_xyxy(b: Tensor) -> Tensor:
    """``[..., 4]`` (cx, cy, w, h) -> (x0, y0, x1, y1)."""
    cx, cy, w, h = b.unbind(-1)
    return torch.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), -1)


def box_xyxy_to_cxcywh(b: Tensor) -> Tensor:
    """``[..., 4]`` (x0, y0, x1, y1) -> (cx, cy, w, h)."""
    x0, y0, x1, y1 = b.unbind(-1)
    return torch.stack(((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0), -1)


def box_iou(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """xyxy ``a [N, 4]``, ``b [M, 4]`` -> ``(iou [N, M], union [N, M])``."""
    _check_boxes("box_iou", "a", a)
    _check_boxes("box_iou", "b", b)
    lt, rb = torch.max(a[:, None, :2], b[None, :, :2]), torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a, area_b = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(-1), (b[:, 2:] - b[:, :2]).clamp(min=0).prod(-1)
    union = area_a[:, None] + area_b[None] - inter
    return inter / union, union


def generalized_box_iou(a: Tensor, b: Tensor) -> Tensor:
    """xyxy ``a [N, 4]``, ``b [M, 4]`` -> ``[N, M]``: ``IoU - (|C| - |A u B|) / |C|`` with ``C`` the smallest box
    enclosing both (Rezatofighi et al. 2019). In [-1, 1]; 1 iff equal; negative for far apart boxes."""
    iou, union = box_iou(a, b)
    lt, rb = torch.min(a[:, None, :2], b[None, :, :2]), torch.max(a[:, None, 2:], b[None, :, 2:])
    enclosing = (rb - lt).clamp(min=0).prod(-1)
    return iou - (enclosing - union) / enclosing


# --- matching and the loss -----------------------------------------------------------------------------

def matching_cost(logits: Tensor, boxes: Tensor, labels: Tensor, target_boxes: Tensor, w_class: float = 1.0,
                  w_l1: float = 5.0, w_giou: float = 2.0) -> Tensor:
    """``[Q, k]``: ``-w_class p_q(label_j) + w_l1 |box_q - box_j|_1 - w_giou GIoU(box_q, box_j)`` (cxcywh boxes)."""
    if logits.dim() != 2 or boxes.shape != (logits.shape[0], 4) or target_boxes.shape != (labels.shape[0], 4):
        raise ValueError(f"matching_cost: expected logits [Q, K+1], boxes [Q, 4], labels [k], target_boxes [k, 4], "
                         f"got {shape_text(logits)}, {shape_text(boxes)}, {shape_text(labels)}, "
                         f"{shape_text(target_boxes)}")
    prob = logits.softmax(-1)[:, labels]
    l1 = torch.cdist(boxes, target_boxes, p=1)
    giou = generalized_box_iou(box_cxcywh_to_xyxy(boxes), box_cxcywh_to_xyxy(target_boxes))
    return -w_class * prob + w_l1 * l1 - w_giou * giou


@torch.no_grad()
def hungarian_match(logits: Tensor, boxes: Tensor, labels: Tensor, target_boxes: Tensor, w_class: float = 1.0,
                    w_l1: float = 5.0, w_giou: float = 2.0) -> tuple[Tensor, Tensor]:
    """The one-to-one assignment of the ``k`` targets to ``k`` of the ``Q >= k`` queries of least total
    ``matching_cost``: ``(query_idx [k], target_idx [k])`` (long, sorted by query)."""
    if labels.shape[0] > logits.shape[0]:
        raise ValueError(f"hungarian_match: {labels.shape[0]} targets but only {logits.shape[0]} queries; "
                         "expected at most as many targets as queries")
    return _assign(matching_cost(logits, boxes, labels, target_boxes, w_class, w_l1, w_giou))


def _assign(cost: Tensor) -> tuple[Tensor, Tensor]:
    rows, cols = linear_sum_assignment(cost.detach().cpu().double().numpy())
    return torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(cols, dtype=torch.long)


def set_loss(outputs: dict[str, Any], targets: list[Target], n_classes: int, eos_coef: float = 0.1,
             w_class: float = 1.0, w_l1: float = 5.0, w_giou: float = 2.0) -> tuple[Tensor, dict[str, float]]:
    """DETR's loss after ``hungarian_match`` of each image: ``w_class CE + w_l1 L1 + w_giou (1 - GIoU)``.

    CE is over all ``B Q`` queries, matched ones to their target's class, the others to "no object" (index
    ``n_classes``, weight ``eos_coef``; a weighted mean). L1 and ``1 - GIoU`` are summed over the matched pairs and
    divided by the number of targets in the batch. Each of ``outputs["aux"]`` (earlier decoder layers) adds the
    same loss. Returns ``(loss, {"ce", "l1", "giou"})``, the parts of the last layer.
    """
    logits, boxes = outputs["logits"], outputs["boxes"]
    if logits.dim() != 3 or logits.shape[-1] != n_classes + 1 or len(targets) != logits.shape[0]:
        raise ValueError(f"set_loss: logits must be [B={len(targets)}, Q, n_classes+1={n_classes + 1}], got "
                         f"{shape_text(logits)}")
    b, q, _ = logits.shape
    classes = torch.full((b, q), n_classes, dtype=torch.long, device=logits.device)
    pred, true = [], []
    with torch.no_grad():  # hungarian_match's cost, for the whole batch [B, Q, all targets] at once
        labels, target_boxes = torch.cat([t["labels"] for t in targets]), torch.cat([t["boxes"] for t in targets])
        cost = matching_cost(logits.reshape(b * q, -1), boxes.reshape(b * q, 4), labels, target_boxes, w_class, w_l1,
                             w_giou).view(b, q, -1)
    start = 0
    for i, t in enumerate(targets):
        k = t["labels"].shape[0]
        if k > q:
            raise ValueError(f"set_loss: image {i} has {k} targets but only {q} queries; expected at most {q}")
        qi, ti = _assign(cost[i, :, start:start + k])
        start += k
        classes[i, qi] = t["labels"][ti]
        pred.append(boxes[i, qi])
        true.append(t["boxes"][ti])
    weight = torch.ones(n_classes + 1, device=logits.device)
    weight[n_classes] = eos_coef  # the "no object" class
    ce = F.cross_entropy(logits.reshape(b * q, -1), classes.reshape(-1), weight=weight)
    pb, tb = torch.cat(pred), torch.cat(true)
    n_boxes = max(tb.shape[0], 1)
    l1 = (pb - tb).abs().sum() / n_boxes
    giou = (1 - generalized_box_iou(box_cxcywh_to_xyxy(pb), box_cxcywh_to_xyxy(tb)).diagonal()).sum() / n_boxes
    loss = w_class * ce + w_l1 * l1 + w_giou * giou
    for aux in outputs.get("aux", []):
        loss = loss + set_loss(aux, targets, n_classes, eos_coef, w_class, w_l1, w_giou)[0]
    return loss, {"ce": ce.item(), "l1": l1.item(), "giou": giou.item()}


# --- the model -----------------------------------------------------------------------------------------

def _positions_2d(h: int, w: int, d_model: int) -> Tensor:
    """``[h * w, d_model]``: the sinusoidal table of the row in the first half, of the column in the second."""
    rows, cols = sinusoidal_table(h, d_model // 2), sinusoidal_table(w, d_model // 2)
    return torch.cat((rows[:, None].expand(h, w, -1), cols[None].expand(h, w, -1)), -1).reshape(h * w, d_model)


class TinyDETR(nn.Module):
    """CNN backbone (three 3x3 convolutions, stride 4) -> tokens + 2-D sinusoidal positions -> ``n_encoder``
    ``TransformerBlock``s -> ``n_decoder`` ``TransformerBlock(cross_attention=True)`` over ``n_queries`` learned
    object queries -> class head (``n_classes + 1``, the last "no object") and box head (MLP, sigmoid, cxcywh).

    The heads (shared) also read each earlier decoder layer: ``outputs["aux"]``, DETR's auxiliary losses.
    """

    def __init__(self, n_classes: int = 2, n_queries: int = 5, d_model: int = 64, *, n_heads: int = 4,
                 n_encoder: int = 2, n_decoder: int = 2, d_ff: int = 128, in_channels: int = 1,
                 width: int = 32) -> None:
        super().__init__()
        check_int("TinyDETR", "n_queries", n_queries)
        self.n_classes = check_int("TinyDETR", "n_classes", n_classes)
        if d_model % 4:
            raise ValueError(f"TinyDETR: d_model must be divisible by 4 (two sinusoidal tables), got {d_model}")
        self.backbone = nn.Sequential(nn.Conv2d(in_channels, width, 3, stride=2, padding=1), nn.ReLU(),
                                      nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU(),
                                      nn.Conv2d(width, d_model, 3, padding=1))
        self.encoder = nn.ModuleList(TransformerBlock(d_model, n_heads, d_ff) for _ in range(n_encoder))
        self.queries = nn.Parameter(torch.randn(n_queries, d_model))
        self.decoder = nn.ModuleList(TransformerBlock(d_model, n_heads, d_ff, cross_attention=True)
                                     for _ in range(n_decoder))
        self.enc_norm, self.dec_norm = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.class_head = nn.Linear(d_model, n_classes + 1)
        self.box_head = nn.Sequential(nn.Linear(d_model, d_model), nn.ReLU(), nn.Linear(d_model, 4))

    def _heads(self, x: Tensor) -> dict[str, Tensor]:
        x = self.dec_norm(x)
        return {"logits": self.class_head(x), "boxes": self.box_head(x).sigmoid()}

    def forward(self, images: Tensor) -> dict[str, Any]:
        if not isinstance(images, Tensor) or images.dim() != 4:
            raise ValueError(f"TinyDETR: images must be [B, C, H, W], got {shape_text(images)}")
        f = self.backbone(images)  # [B, d, H/4, W/4]
        b, d, h, w = f.shape
        x = f.flatten(2).transpose(1, 2) + _positions_2d(h, w, d).to(f)
        for block in self.encoder:
            x = block(x)[0]
        memory = self.enc_norm(x)
        y, layers = self.queries.expand(b, -1, -1), []
        for block in self.decoder:
            y = block(y, memory=memory)[0]
            layers.append(self._heads(y))
        return {**layers[-1], "aux": layers[:-1]}


# --- training, prediction, evaluation, drawing ---------------------------------------------------------

def train_detr(model: TinyDETR, data: tuple[Tensor, list[Target]], steps: int, lr: float = 2e-3,
               batch_size: int = 32, *, eos_coef: float = 0.3, weight_decay: float = 1e-4, clip: float = 1.0,
               seed: int = 0, log_every: int = 1) -> dict[str, list[float]]:
    """AdamW on random batches of ``data = (images, targets)`` for ``steps`` steps (cosine decay of ``lr``);
    ``history`` = ``{"step", "loss", "ce", "l1", "giou", "seconds"}`` every ``log_every`` steps.

    ``eos_coef`` 0.3, not the paper's 0.1: in a few hundred steps, 0.1 leaves more duplicate detections.
    """
    check_int("train_detr", "steps", steps)
    images, targets = data
    if images.shape[0] != len(targets):
        raise ValueError(f"train_detr: {images.shape[0]} images but {len(targets)} targets; expected one per image")
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    gen = torch.Generator().manual_seed(seed)
    history: dict[str, list[float]] = {k: [] for k in ("step", "loss", "ce", "l1", "giou", "seconds")}
    model.train()
    start = time.perf_counter()
    for step in range(1, steps + 1):
        idx = torch.randint(0, images.shape[0], (min(batch_size, images.shape[0]),), generator=gen)
        loss, parts = set_loss(model(images[idx]), [targets[i] for i in idx.tolist()], model.n_classes, eos_coef)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        sched.step()
        if step % log_every == 0 or step == steps:
            for k, v in {"step": step, "loss": loss.item(), **parts, "seconds": time.perf_counter() - start}.items():
                history[k].append(float(v))
    model.eval()
    return history


@torch.no_grad()
def predict(model: TinyDETR, images: Tensor, threshold: float = 0.5) -> list[Target]:
    """Per image ``{"labels", "boxes" (cxcywh), "scores"}`` of the queries whose most likely class is an object
    with probability ``>= threshold``."""
    model.eval()
    out = model(images)
    prob = out["logits"].softmax(-1)[..., :-1]
    scores, labels = prob.max(-1)
    keep = (out["logits"].argmax(-1) != model.n_classes) & (scores >= threshold)
    return [{"labels": labels[i][keep[i]], "boxes": out["boxes"][i][keep[i]], "scores": scores[i][keep[i]]}
            for i in range(images.shape[0])]


@torch.no_grad()
def evaluate_detr(model: TinyDETR, data: tuple[Tensor, list[Target]], threshold: float = 0.5) -> dict[str, float]:
    """On ``data``: each target matched (Hungarian, by IoU) to the kept predictions of ``predict``:
    ``mean_iou`` (over all targets, 0 when unmatched), ``found`` (fraction with IoU > 0.5 and the right class),
    ``count_accuracy`` (fraction of images with as many kept predictions as objects)."""
    images, targets = data
    ious, found, count = [], [], []
    for p, t in zip(predict(model, images, threshold), targets):
        k = len(t["labels"])
        count.append(float(len(p["labels"]) == k))
        best, right = torch.zeros(k), torch.zeros(k, dtype=torch.bool)
        if len(p["labels"]):
            iou = box_iou(box_cxcywh_to_xyxy(t["boxes"]), box_cxcywh_to_xyxy(p["boxes"]))[0]
            ti, pi = _assign(-iou)
            best[ti], right[ti] = iou[ti, pi], t["labels"][ti] == p["labels"][pi]
        ious.append(best)
        found.append((best > 0.5) & right)
    return {"mean_iou": torch.cat(ious).mean().item(), "found": torch.cat(found).float().mean().item(),
            "count_accuracy": float(np.mean(count))}


def draw_predictions(ax: Any, image: Tensor, pred: Target | None = None, target: Target | None = None) -> Any:
    """Draw ``image [1, H, W]`` on the matplotlib ``ax``, the targets' boxes dashed green, the predictions' solid
    (orange class 0, cyan class 1) with their score. Returns ``ax``."""
    from matplotlib.patches import Rectangle

    img = image.detach().cpu().reshape(image.shape[-2], image.shape[-1]).numpy()
    size_y, size_x = img.shape
    ax.imshow(img, cmap="gray", vmin=0, vmax=1)
    colors = ("tab:orange", "tab:cyan", "tab:pink", "tab:purple")
    layers = ((target or {}).get("boxes"), (target or {}).get("labels"), None, True), \
        ((pred or {}).get("boxes"), (pred or {}).get("labels"), (pred or {}).get("scores"), False)
    for boxes, labels, scores, dashed in layers:
        if boxes is None:
            continue
        for j, (x0, y0, x1, y1) in enumerate(box_cxcywh_to_xyxy(boxes.detach().cpu()).tolist()):
            xy, wh = (x0 * size_x - 0.5, y0 * size_y - 0.5), ((x1 - x0) * size_x, (y1 - y0) * size_y)
            color = "lime" if dashed else colors[int(labels[j]) % len(colors)]
            ax.add_patch(Rectangle(xy, *wh, fill=False, ec=color, lw=1.5, ls="--" if dashed else "-"))
            if scores is not None:
                ax.text(xy[0], xy[1] - 0.5, f"{int(labels[j])}:{float(scores[j]):.2f}", color=color, fontsize=7)
    ax.set(xticks=[], yticks=[])
    return ax
