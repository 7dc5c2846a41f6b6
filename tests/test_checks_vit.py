"""The self-checks of Hour 08: Exercise 8.1 (patches by reshaping) and 8.2 (attention rollout)."""

import pytest
import torch
import torch.nn.functional as F

from amla.checks import vit as C
from amla.checks.vit.patchify import _variant as patch_variant
from amla.checks.vit.rollout import _variant as rollout_variant
from amla.transformers.vit import ViT, patchify
from checks_support import fails, not_done, passes, raise_not_done

# --- Exercise 8.1 -----------------------------------------------------------------------------------------


def _p_unfold(images, patch):
    return F.unfold(images, patch, stride=patch).transpose(1, 2)


def _p_loops(images, patch):
    b, c, h, w = images.shape
    blocks = [images[:, :, i:i + patch, j:j + patch].reshape(b, -1)
              for i in range(0, h, patch) for j in range(0, w, patch)]
    return torch.stack(blocks, 1)


def _p_unfold_tensor(images, patch):
    x = images.unfold(2, patch, patch).unfold(3, patch, patch)  # [B, C, H/p, W/p, p, p]
    return x.permute(0, 2, 3, 1, 4, 5).flatten(3).flatten(1, 2)


@pytest.mark.parametrize("fn", [_p_unfold, _p_loops, _p_unfold_tensor], ids=lambda f: f.__name__)
def test_patchify_accepts_correct_answers_written_differently(fn, capsys):
    passes(C.check_patchify, fn)
    assert "the rest of this hour uses your `patchify`" in capsys.readouterr().out.lower()


def test_patchify_not_done_returns_the_reference(capsys):
    assert not_done(C.check_patchify, raise_not_done, capsys=capsys) is patchify


@pytest.mark.parametrize("kind, phrase", [("plain_reshape", "without moving any axis"),
                                          ("column_major", "column by column"),
                                          ("channel_last", r"\(row, column, channel\)"),
                                          ("transposed_patch", "rows and columns inside each patch")])
def test_patchify_names_the_known_mistakes(kind, phrase):
    fails(C.check_patchify, patch_variant(kind), match=phrase)


def test_patchify_refuses_a_changed_input():
    def normalising(images, patch):
        images -= images.mean()  # in place: the caller's images change
        return patchify(images + images.mean(), patch)

    fails(C.check_patchify, normalising, match="changed its argument `images` in place")


def test_patchify_refuses_the_wrong_dtype_and_type():
    fails(C.check_patchify, lambda x, p: patchify(x, p).double(), match="float64")
    fails(C.check_patchify, lambda x, p: patchify(x, p).numpy(), match="tensor")


def test_patchify_catches_a_bug_on_a_non_square_image_only():
    def square_only(images, patch):
        b, c, h, _ = images.shape
        g = h // patch  # the grid taken as g x g
        x = images.reshape(b, c, g, patch, g, patch)
        return x.permute(0, 2, 4, 1, 3, 5).reshape(b, g * g, c * patch * patch)

    fails(C.check_patchify, square_only, match="with a non-square image")


def test_patchify_catches_a_detached_result():
    fails(C.check_patchify, lambda x, p: patchify(x.detach(), p), match="detached")


def test_patchify_catches_a_bug_only_a_property_sees():
    def reversed_grid(images, patch):  # the patches in reverse order: no known mistake does this
        return patchify(images, patch).flip(1)

    fails(C.check_patchify, reversed_grid, match="does not hold")


def test_a_vit_trains_on_the_students_patchify():
    vit = ViT(8, 2, 10, d_model=16, n_layers=1, n_heads=2, d_ff=32, patchify_fn=_p_unfold)
    torch.manual_seed(0)
    x = torch.randn(4, 1, 8, 8)
    reference = ViT(8, 2, 10, d_model=16, n_layers=1, n_heads=2, d_ff=32)
    reference.load_state_dict(vit.state_dict())
    assert torch.allclose(vit(x), reference(x), atol=1e-6)


# --- Exercise 8.2 -----------------------------------------------------------------------------------------


def _r_loop(attentions):
    out = None
    for a in attentions:
        a = a.mean(dim=1) + torch.eye(a.size(-1), dtype=a.dtype)
        a = a / a.sum(dim=-1, keepdim=True)
        out = a if out is None else torch.bmm(a, out)
    return out


def _r_reversed(attentions):
    mats = []
    for a in attentions:
        a = 0.5 * a.mean(1) + 0.5 * torch.eye(a.shape[-1], dtype=a.dtype)
        mats.append(a / a.sum(-1, keepdim=True))
    out = mats[-1]
    for a in reversed(mats[:-1]):  # A_L (A_{L-1} (...)) written from the left
        out = out @ a
    return out


def _r_einsum(attentions):
    t = attentions[0].shape[-1]
    out = torch.eye(t, dtype=attentions[0].dtype).expand(attentions[0].shape[0], t, t)
    for a in attentions:
        a = torch.einsum("bhij->bij", a) / a.shape[1] + torch.eye(t, dtype=a.dtype)
        out = torch.einsum("bij,bjk->bik", a / a.sum(-1, keepdim=True), out)
    return out


@pytest.mark.parametrize("fn", [_r_loop, _r_reversed, _r_einsum], ids=lambda f: f.__name__)
def test_rollout_accepts_correct_answers_written_differently(fn, capsys):
    passes(C.check_attention_rollout, fn)
    assert "your `attention_rollout`" in capsys.readouterr().out


def test_rollout_not_done_returns_the_reference(capsys):
    reference = not_done(C.check_attention_rollout, raise_not_done, capsys=capsys)
    a = torch.softmax(torch.randn(2, 3, 4, 4), -1)
    assert torch.allclose(reference([a, a]), _r_loop([a, a]), atol=1e-6)


@pytest.mark.parametrize("kind, phrase", [("no_keepdim", "without keepdim"), ("no_identity", "identity is not added"),
                                          ("no_renorm", "rows are not re-normalised"),
                                          ("wrong_order", "wrong order"), ("max_heads", "maximum"),
                                          ("last_only", "only the last layer")])
def test_rollout_names_the_known_mistakes(kind, phrase):
    fails(C.check_attention_rollout, rollout_variant(kind), match=phrase)


def test_rollout_refuses_a_changed_input():
    def reversing(attentions):
        attentions.reverse()  # the caller's list is now in the wrong order
        return _r_loop(attentions[::-1])

    fails(C.check_attention_rollout, reversing, match="changed its argument `attentions` in place")


def test_rollout_refuses_the_wrong_dtype():
    fails(C.check_attention_rollout, lambda atts: _r_loop(atts).float(), match="float64")


def test_rollout_catches_a_bug_on_rows_that_do_not_sum_to_one_only():
    def half_and_half(attentions):  # 0.5 A + 0.5 I is row-stochastic only when A is
        out = None
        for a in attentions:
            a = 0.5 * a.mean(1) + 0.5 * torch.eye(a.shape[-1], dtype=a.dtype)
            out = a if out is None else a @ out
        return out

    fails(C.check_attention_rollout, half_and_half, match="dropout|padded")


def test_rollout_catches_a_bug_only_a_property_sees():
    fails(C.check_attention_rollout, lambda atts: _r_loop(atts).transpose(1, 2), match="every row sums to 1")
