import math

import pytest
import torch
from torch import nn

from amla.transformers.swin import (WindowAttention, attention_flops, receptive_field, shifted_window_mask,
                                    window_partition, window_reverse)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one thread is faster, and much faster on a machine shared with other work."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def brute_force(wa: WindowAttention, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Global multi-head attention over the flat ``[B, H W, C]`` grid with ``allowed [HW, HW]``, from ``wa``'s
    weights, written out (no helpers of the module)."""
    b, h, w, c = x.shape
    t = x.reshape(b, h * w, c)
    m, nh = wa.attn, wa.n_heads
    dh = c // nh

    def heads(y: torch.Tensor) -> torch.Tensor:
        return y.reshape(b, h * w, nh, dh).transpose(1, 2)

    q, k, v = heads(m.q_proj(t)), heads(m.k_proj(t)), heads(m.v_proj(t))
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(dh)
    scores = scores.masked_fill(~allowed, float("-inf"))
    out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, h * w, c)
    return m.out_proj(out).reshape(b, h, w, c)


def coords(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    r, c = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return r.reshape(-1), c.reshape(-1)


def test_partition_reverse_round_trip():
    x = torch.randn(2, 8, 12, 3)
    win = window_partition(x, 4)
    assert win.shape == (2 * 2 * 3, 16, 3)
    assert torch.equal(win[1], x[0, 0:4, 4:8].reshape(16, 3))  # second window: top row, second column
    assert torch.equal(window_reverse(win, 4, 8, 12), x)


def test_no_shift_equals_block_diagonal_global_attention():
    torch.manual_seed(0)
    h, w, win = 8, 8, 4
    wa = WindowAttention(8, 2, win, shift=0)
    x = torch.randn(2, h, w, 8)
    r, c = coords(h, w)
    same_window = (r[:, None] // win == r[None] // win) & (c[:, None] // win == c[None] // win)
    out, weights = wa(x, need_weights=True)
    assert weights.shape == (2 * 4, 2, 16, 16)
    assert torch.allclose(out, brute_force(wa, x, same_window), atol=1e-5)


@pytest.mark.parametrize("shift", [1, 2, 3])
def test_shift_equals_masked_global_attention_on_rolled_grid(shift):
    torch.manual_seed(1)
    h, w, win = 8, 12, 4
    wa = WindowAttention(8, 2, win, shift=shift)
    x = torch.randn(2, h, w, 8)
    r, c = coords(h, w)  # coordinates in the rolled grid
    orig_r, orig_c = (r + shift) % h, (c + shift) % w  # where each rolled token came from
    same_window = (r[:, None] // win == r[None] // win) & (c[:, None] // win == c[None] // win)
    # same region: the two tokens are as far apart in the image as in the rolled grid (no wrap between them)
    no_wrap = ((orig_r[:, None] - orig_r[None]).abs() == (r[:, None] - r[None]).abs()) & \
              ((orig_c[:, None] - orig_c[None]).abs() == (c[:, None] - c[None]).abs())
    rolled = torch.roll(x, (-shift, -shift), (1, 2))
    ref = torch.roll(brute_force(wa, rolled, same_window & no_wrap), (shift, shift), (1, 2))
    assert torch.allclose(wa(x), ref, atol=1e-5)


def test_mask_symmetric_true_diagonal_and_all_true_without_shift():
    m = shifted_window_mask(8, 8, 4, 2)
    assert m.shape == (4, 16, 16) and m.dtype == torch.bool
    assert torch.equal(m, m.transpose(1, 2)) and m.diagonal(dim1=1, dim2=2).all()
    assert m[0].all() and not m[3].all()  # the top-left window wraps nothing, the bottom-right wraps both axes
    assert shifted_window_mask(8, 8, 4, 0).all()


def test_receptive_field_one_window_then_across_borders():
    torch.manual_seed(0)
    h, w, win, pixel = 8, 8, 4, (5, 6)
    one = receptive_field(WindowAttention(8, 2, win), h, w, 8, pixel)
    expected = torch.zeros(h, w, dtype=torch.bool)
    expected[4:8, 4:8] = True
    assert torch.equal(one, expected)
    two = receptive_field(nn.Sequential(WindowAttention(8, 2, win), WindowAttention(8, 2, win, win // 2)),
                          h, w, 8, pixel)
    assert (two | expected).equal(two) and two.sum() > expected.sum()


def test_flops_formula():
    assert attention_flops(8, 8, 16) == 2 * 64 ** 2 * 16
    assert attention_flops(8, 8, 16, window=4) == 2 * 64 * 16 * 16


@pytest.mark.parametrize("make", [
    lambda: window_partition(torch.randn(1, 6, 8, 2), 4),
    lambda: WindowAttention(8, 2, 4)(torch.randn(1, 6, 8, 8)),
    lambda: WindowAttention(8, 2, 4, shift=4),
    lambda: shifted_window_mask(8, 8, 4, 5),
    lambda: WindowAttention(8, 2, 4)(torch.randn(1, 8, 8, 6)),
])
def test_bad_input_raises(make):
    with pytest.raises(ValueError):
        make()
