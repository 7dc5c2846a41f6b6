"""The self-check of Exercise 8.1: patches by reshaping (what it checks: the package doc)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from amla.checks.contract import check, exercise
from amla.checks.engine import Case, Mistake, Property, Spec
from amla.transformers.vit import patchify

PATCHIFY = exercise(8, "8.1", "Patches by reshaping", "patchify")

PatchifyFn = Callable[[Tensor, int], Tensor]


def _variant(kind: str) -> PatchifyFn:
    def fn(images: Tensor, patch: int) -> Tensor:
        b, c, h, w = images.shape
        gh, gw = h // patch, w // patch
        if kind == "plain_reshape":  # the memory order of [B, C, H, W], cut into pieces of C p p
            return images.reshape(b, gh * gw, c * patch * patch)
        x = images.reshape(b, c, gh, patch, gw, patch)
        order = {"column_major": (0, 4, 2, 1, 3, 5), "channel_last": (0, 2, 4, 3, 5, 1),
                 "transposed_patch": (0, 2, 4, 1, 5, 3)}[kind]
        return x.permute(*order).reshape(b, gh * gw, c * patch * patch)
    return fn


_MISTAKES = [
    Mistake("the images were reshaped to [B, N, C p p] without moving any axis: each 'patch' is then a run of "
            "consecutive pixels in memory (parts of image rows), not a p x p square. View the images as "
            "[B, C, H/p, p, W/p, p] and permute to [B, H/p, W/p, C, p, p] before flattening.",
            _variant("plain_reshape")),
    Mistake("the grid of patches is read column by column: patch k must be the block at grid row k // (W/p) and "
            "column k % (W/p) (row-major, as the convolution's output is flattened); permute the grid axes as "
            "(H/p, W/p), not (W/p, H/p).", _variant("column_major")),
    Mistake("each patch is flattened as (row, column, channel), the einops order of the original ViT code; here "
            "it must be (channel, row, column), the order of Conv2d's weights [d, C, p, p], so that a linear map of "
            "the patches equals the strided convolution. Put the channel axis before the patch's rows and columns.",
            _variant("channel_last")),
    Mistake("the rows and columns inside each patch are swapped (each p x p patch is transposed): flatten the "
            "patch's rows first, then its columns, as in Conv2d's weights [d, C, p(rows), p(columns)].",
            _variant("transposed_patch")),
]


def _cases() -> list[Case]:
    g = torch.Generator().manual_seed(8)

    def img(*shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
        return torch.randn(*shape, generator=g, dtype=dtype)

    return [
        Case("8x8 digits, images of shape (3, 1, 8, 8) and patch=2", (img(3, 1, 8, 8), 2)),
        Case("MNIST-sized images (2, 1, 28, 28) and patch=7", (img(2, 1, 28, 28), 7)),
        Case("three channels: images (2, 3, 8, 8) and patch=4", (img(2, 3, 8, 8), 4)),
        Case("a non-square image: images (2, 2, 8, 12) and patch=4 (a 2 x 3 grid)", (img(2, 2, 8, 12), 4)),
        Case("patches of one pixel: images (2, 3, 4, 4) and patch=1", (img(2, 3, 4, 4), 1)),
        Case("one patch covering the image: images (2, 3, 6, 6) and patch=6", (img(2, 3, 6, 6), 6)),
        Case("a batch of one: images (1, 1, 8, 8) and patch=4", (img(1, 1, 8, 8), 4)),
        Case("float64 images (2, 3, 6, 9) and patch=3", (img(2, 3, 6, 9, dtype=torch.float64), 3)),
    ]


def _unpatchify(out: Tensor, images: Tensor, patch: int) -> Tensor:
    b, c, h, w = images.shape
    x = out.reshape(b, h // patch, w // patch, c, patch, patch).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, c, h, w)


def _inverts(case: Case, out: Tensor, rerun: Any) -> str | None:
    images, patch = case.args
    if not torch.equal(_unpatchify(out.detach(), images, patch), images):
        return "putting the patches back in their places does not give the images (some pixels moved or repeat)"
    return None


def _blocks(case: Case, out: Tensor, rerun: Any) -> str | None:
    images, patch = case.args
    gw = images.shape[-1] // patch
    for k in range(out.shape[1]):
        r, col = divmod(k, gw)
        block = images[:, :, r * patch:(r + 1) * patch, col * patch:(col + 1) * patch]
        if not torch.equal(torch.sort(out[:, k].detach(), dim=-1).values, torch.sort(block.flatten(1), -1).values):
            return (f"patch {k} does not hold the pixels of the block at grid row {r}, column {col} "
                    f"(rows {r * patch}-{(r + 1) * patch - 1}, columns {col * patch}-{(col + 1) * patch - 1})")
    return None


def _equals_conv(case: Case, out: Tensor, rerun: Any) -> str | None:
    images, patch = case.args
    c = images.shape[1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        conv = torch.nn.Conv2d(c, 5, patch, stride=patch, bias=False).to(images.dtype)
    expected = conv(images).flatten(2).transpose(1, 2)
    got = out.detach() @ conv.weight.detach().reshape(5, -1).T
    if not torch.allclose(got, expected, atol=1e-5, rtol=1e-4):
        return ("a linear map of your patches (with Conv2d's weights reshaped to [d, C p p]) does not equal "
                "Conv2d(kernel=stride=patch): each patch must be flattened as (channel, row, column)")
    return None


_SPEC = Spec(reference=patchify, cases=_cases, mistakes=_MISTAKES,
             properties=[Property("'the patches put back give the images'", _inverts),
                         Property("'patch k is the block at grid row k // (W/p), column k % (W/p)'", _blocks),
                         Property("'a linear map of the patches equals Conv2d(kernel=stride=patch)'", _equals_conv)],
             differentiable=True, arg_names=("images", "patch"))


def check_patchify(patchify_fn: PatchifyFn) -> PatchifyFn:
    """Exercise 8.1: ``patchify(images [B, C, H, W], patch) -> [B, (H/p)(W/p), C p p]``; returns the function the
    hour's ViT embeds its images with (yours once it passes)."""
    return check(PATCHIFY, _SPEC, (patchify_fn,), (patchify,),
                 "values, shapes and gradients match on {cases} cases (one and three channels, H != W, patches "
                 "of one pixel, one patch, a batch of one, float64), and a linear map of your patches equals "
                 "Conv2d(kernel=stride=patch)")
