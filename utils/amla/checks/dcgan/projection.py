"""The self-check of Exercise 11.1: the projection discriminator's output (what it checks: the package doc)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.gan.dcgan import projection_logits

PROJECTION = exercise(11, "11.1", "The projection discriminator", "projection_logits")


def _modules(n_features: int, n_classes: int, g: torch.Generator,
             dtype: torch.dtype = torch.float32) -> tuple[nn.Embedding, nn.Linear]:
    embed, linear = nn.Embedding(n_classes, n_features), nn.Linear(n_features, 1)
    with torch.no_grad():
        embed.weight.copy_(torch.randn(n_classes, n_features, generator=g))
        linear.weight.copy_(torch.randn(1, n_features, generator=g))
        linear.bias.fill_(0.7)
    return embed.to(dtype), linear.to(dtype)


def _projection_cases() -> list[Case]:
    g = torch.Generator().manual_seed(112)

    def case(label: str, n: int, f: int, c: int, y: list[int] | None = None,
             dtype: torch.dtype = torch.float32) -> Case:
        embed, linear = _modules(f, c, g, dtype)
        labels = torch.tensor(y) if y is not None else torch.randint(0, c, (n,), generator=g)
        return Case(label, (torch.randn(n, f, generator=g, dtype=dtype), labels, embed, linear))

    return [
        case("6 samples of 5 features, 4 classes, labels [2, 0, 3, 3, 1, 2]", 6, 5, 4, [2, 0, 3, 3, 1, 2]),
        case("8 samples of 12 features, 10 classes, labels 7, 7, 7, ... (classes missing)", 8, 12, 10, [7] * 8),
        case("a batch of one (h of shape (1, 6)), 3 classes", 1, 6, 3, [1]),
        case("one feature (h of shape (4, 1)), 2 classes", 4, 1, 2, [1, 0, 0, 1]),
        case("one class (every label 0), h of shape (3, 4)", 3, 4, 1, [0, 0, 0]),
        case("as many samples as classes and features (4, 4, 4), labels [3, 2, 1, 0]", 4, 4, 4, [3, 2, 1, 0]),
        case("float64 features, embedding and linear layer (5 samples, 7 features, 3 classes)", 5, 7, 3,
             dtype=torch.float64),
    ]


def _projection_variant(kind: str) -> Callable[..., Tensor]:
    """A projection output with one typical bug switched on (kind)."""

    def fn(h: Tensor, y: Tensor, embed: nn.Embedding, linear: nn.Linear) -> Tensor:
        lin = linear(h)
        if kind == "all_classes":
            return lin + h @ embed.weight.T
        inner = (embed(y) * h).sum(-1)
        if kind == "no_linear":
            return inner
        if kind == "no_projection":
            return lin.squeeze(-1)
        if kind == "no_squeeze":
            return lin + inner
        if kind == "keepdim":
            return lin + inner.unsqueeze(-1)
        if kind == "batch_sum":
            return lin.squeeze(-1) + (embed(y) * h).sum()
        if kind == "multiply":
            return lin.squeeze(-1) * inner
        if kind == "sigmoid":
            return torch.sigmoid(lin.squeeze(-1) + inner)
        if kind == "bias_twice":
            return lin.squeeze(-1) + inner + linear.bias
        return lin.squeeze(-1) + inner

    return fn


_PROJECTION_MISTAKES = [
    Mistake("the linear term is missing: the output is linear(h) + <embed(y), h>, the unconditional score of the "
            "features plus the projection on the class's embedding.", _projection_variant("no_linear")),
    Mistake("the projection term is missing: add the inner product of embed(y) and h, (embed(y) * h).sum(-1), "
            "otherwise the discriminator never looks at the class.", _projection_variant("no_projection")),
    Mistake("linear(h) has shape [N, 1] and the inner product [N]: adding them broadcasts to [N, N]. Squeeze "
            "the last axis of linear(h) first (.squeeze(-1)).", _projection_variant("no_squeeze")),
    Mistake("the result has shape [N, 1]: return one logit per sample, shape [N] (squeeze the last axis).",
            _projection_variant("keepdim")),
    Mistake("h is multiplied with every class's embedding (h @ embed.weight.T gives [N, C]); only the embedding of "
            "each sample's own class counts: embed(y) [N, F], then (embed(y) * h).sum(-1).",
            _projection_variant("all_classes")),
    Mistake("the inner product is summed over the whole batch (.sum() without dim): sum over the features only, "
            ".sum(-1), one number per sample.", _projection_variant("batch_sum")),
    Mistake("the two terms are multiplied: the projection discriminator adds them, linear(h) + <embed(y), h>.",
            _projection_variant("multiply")),
    Mistake("a sigmoid was applied: the discriminator returns logits (any real number); the losses apply the "
            "sigmoid themselves, in a stable way.", _projection_variant("sigmoid")),
    Mistake("the bias is added twice: linear(h) already includes linear.bias.", _projection_variant("bias_twice")),
]


def _zeroed(module: nn.Module) -> nn.Module:
    import copy

    zero = copy.deepcopy(module)
    with torch.no_grad():
        for p in zero.parameters():
            p.zero_()
    return zero


def _embedding_only(case: Case, out: Tensor, rerun: Any) -> str | None:
    h, y, embed, linear = case.args
    got = rerun(h, y, _zeroed(embed), linear)
    want = linear(h).squeeze(-1).detach()
    if isinstance(got, Tensor) and got.shape == want.shape and not torch.allclose(got.detach(), want, atol=1e-4):
        return "with an all-zero embedding the logits are not linear(h): check the unconditional term"
    return None


def _linear_only(case: Case, out: Tensor, rerun: Any) -> str | None:
    h, y, embed, linear = case.args
    got = rerun(h, y, embed, _zeroed(linear))
    want = (embed(y) * h).sum(-1).detach()
    if isinstance(got, Tensor) and got.shape == want.shape and not torch.allclose(got.detach(), want, atol=1e-4):
        return "with an all-zero linear layer the logits are not <embed(y), h>: check the projection term"
    return None


def _per_sample(case: Case, out: Tensor, rerun: Any) -> str | None:
    h, y, embed, linear = case.args
    if len(y) < 2:
        return None
    alone = rerun(h[:1], y[:1], embed, linear)
    if isinstance(alone, Tensor) and alone.shape == (1,) and not torch.allclose(alone.detach(), out[:1].detach(),
                                                                                atol=1e-4):
        return "the logit of sample 0 changes when it is scored alone: each logit must depend on its own sample only"
    return None


_PROJECTION_PROPERTIES = [
    Property("'each logit depends on its own sample only'", _per_sample),
    Property("'with embed = 0 the logits are linear(h)'", _embedding_only),
    Property("'with linear = 0 the logits are <embed(y), h>'", _linear_only),
]

_PROJECTION_SPEC = Spec(reference=projection_logits, cases=_projection_cases, mistakes=_PROJECTION_MISTAKES,
                        properties=_PROJECTION_PROPERTIES, differentiable=True, part="logits",
                        arg_names=("h", "y", "embed", "linear"))


def check_projection_logits(projection_fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """Exercise 11.1: ``projection_logits(h [N, F], y [N], embed, linear) -> logits [N]``; returns the function
    the conditional discriminator of this hour is built with (yours once it passes)."""
    return check(PROJECTION, _PROJECTION_SPEC, (projection_fn,), (projection_logits,),
                 "values, shapes and gradients (to h, the embedding and the linear layer) match on {cases} cases "
                 "(a batch of one, one feature, one class, float64)")
