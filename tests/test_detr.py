import itertools

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from amla.transformers.detr import (TinyDETR, box_cxcywh_to_xyxy, box_iou, box_xyxy_to_cxcywh,  # noqa: E402
                                    boxes_dataset, draw_predictions, evaluate_detr, generalized_box_iou,
                                    hungarian_match, matching_cost, predict, set_loss, train_detr)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one thread is faster, and much faster on a machine shared with other work."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_boxes(n: int, gen: torch.Generator) -> torch.Tensor:
    """cxcywh boxes inside the unit square."""
    wh = 0.05 + 0.4 * torch.rand(n, 2, generator=gen)
    c = wh / 2 + (1 - wh) * torch.rand(n, 2, generator=gen)
    return torch.cat((c, wh), -1)


@pytest.mark.parametrize("q,k,seed", [(3, 2, 0), (4, 3, 1), (5, 3, 2), (5, 5, 3), (6, 2, 4)])
def test_hungarian_equals_brute_force(q, k, seed):
    gen = torch.Generator().manual_seed(seed)
    logits, boxes = torch.randn(q, 3, generator=gen), random_boxes(q, gen)
    labels, tboxes = torch.randint(0, 2, (k,), generator=gen), random_boxes(k, gen)
    cost = matching_cost(logits, boxes, labels, tboxes)
    best = min(itertools.permutations(range(q), k), key=lambda p: sum(cost[p[j], j].item() for j in range(k)))
    qi, ti = hungarian_match(logits, boxes, labels, tboxes)
    assert sorted(zip(ti.tolist(), qi.tolist())) == [(j, best[j]) for j in range(k)]


def test_set_loss_invariant_to_target_order():
    torch.manual_seed(0)
    model = TinyDETR(n_classes=2, n_queries=5, d_model=32, n_heads=2, d_ff=64, width=8)
    images, targets = boxes_dataset(4, size=16, max_objects=3, seed=3)
    out = model(images)
    loss, _ = set_loss(out, targets, 2)
    gen = torch.Generator().manual_seed(1)
    shuffled = []
    for t in targets:
        p = torch.randperm(len(t["labels"]), generator=gen)
        shuffled.append({"labels": t["labels"][p], "boxes": t["boxes"][p]})
    assert torch.allclose(loss, set_loss(out, shuffled, 2)[0], atol=1e-6)


def test_giou_properties():
    gen = torch.Generator().manual_seed(0)
    a, b = box_cxcywh_to_xyxy(random_boxes(20, gen)), box_cxcywh_to_xyxy(random_boxes(30, gen))
    g = generalized_box_iou(a, b)
    assert g.shape == (20, 30) and (g >= -1).all() and (g <= 1).all() and (g <= box_iou(a, b)[0] + 1e-6).all()
    assert torch.allclose(g, generalized_box_iou(b, a).T)
    assert torch.allclose(generalized_box_iou(a, a).diagonal(), torch.ones(20))
    p, r = torch.tensor([[0.0, 0.0, 0.1, 0.1]]), torch.tensor([[0.8, 0.8, 0.9, 0.9]])
    assert generalized_box_iou(p, r).item() < 0 and box_iou(p, r)[0].item() == 0
    outer, inner = torch.tensor([[0.1, 0.1, 0.9, 0.9]]), torch.tensor([[0.3, 0.2, 0.5, 0.6]])  # inner inside outer
    assert torch.allclose(generalized_box_iou(outer, inner), box_iou(outer, inner)[0])
    assert torch.allclose(generalized_box_iou(outer, inner), torch.tensor([[0.08 / 0.64]]))


def test_box_conversion_round_trip():
    b = random_boxes(10, torch.Generator().manual_seed(0))
    assert torch.allclose(box_xyxy_to_cxcywh(box_cxcywh_to_xyxy(b)), b, atol=1e-6)
    assert torch.allclose(box_cxcywh_to_xyxy(torch.tensor([0.5, 0.5, 0.2, 0.4])), torch.tensor([0.4, 0.3, 0.6, 0.7]))


def test_dataset_targets_match_pixels():
    images, targets = boxes_dataset(5, size=32, max_objects=3, seed=0)
    assert images.shape == (5, 1, 32, 32) and len(targets) == 5
    for img, t in zip(images, targets):
        assert 1 <= len(t["labels"]) <= 3 and t["boxes"].shape == (len(t["labels"]), 4)
        for (x0, y0, x1, y1) in (box_cxcywh_to_xyxy(t["boxes"]) * 32).round().long().tolist():
            assert (img[0, y0, x0:x1] > 0.7).all() and (img[0, y0:y1, x0] > 0.7).all()  # the top and left edges


def test_model_shapes_predict_and_draw():
    model = TinyDETR(n_classes=2, n_queries=5, d_model=32, n_heads=2, d_ff=64, width=8)
    images, targets = boxes_dataset(3, size=32, seed=0)
    out = model(images)
    assert out["logits"].shape == (3, 5, 3) and out["boxes"].shape == (3, 5, 4) and len(out["aux"]) == 1
    assert ((out["boxes"] > 0) & (out["boxes"] < 1)).all()
    preds = predict(model, images, threshold=0.0)
    metrics = evaluate_detr(model, (images, targets))
    assert set(metrics) == {"mean_iou", "found", "count_accuracy"}
    ax = Figure().add_subplot()
    draw_predictions(ax, images[0], preds[0], targets[0])
    assert len(ax.patches) == len(targets[0]["labels"]) + len(preds[0]["labels"])


def test_few_steps_lower_the_loss():
    torch.manual_seed(0)
    model = TinyDETR(n_classes=2, n_queries=5, d_model=32, n_heads=2, d_ff=64, width=8)
    data = boxes_dataset(16, size=16, max_objects=2, seed=0)
    before = set_loss(model(data[0]), data[1], 2)[0].item()
    history = train_detr(model, data, steps=15, lr=3e-3, batch_size=16)
    after = set_loss(model(data[0]), data[1], 2)[0].item()
    assert len(history["loss"]) == 15 and after < before


def test_bad_input_raises():
    with pytest.raises(ValueError):
        hungarian_match(torch.randn(2, 3), torch.rand(2, 4), torch.zeros(3, dtype=torch.long), torch.rand(3, 4))
    with pytest.raises(ValueError):
        generalized_box_iou(torch.rand(2, 3), torch.rand(2, 4))
    with pytest.raises(ValueError):
        boxes_dataset(2, n_classes=3)
