"""The self-checks of Hour 11: Exercise 11.1 (the projection discriminator) and 11.2 (spherical interpolation)."""

import pytest
import torch
import torch.nn.functional as F

from amla.checks import dcgan as C
from amla.checks.dcgan.projection import _projection_variant
from amla.checks.dcgan.slerp import _slerp_variant
from amla.gan.dcgan import projection_logits, slerp
from checks_support import fails, not_done, passes, raise_not_done

# --- Exercise 11.2 ------------------------------------------------------------------------------------------


def _slerp_plain(z0, z1, t):
    t = torch.as_tensor(t, dtype=z0.dtype).unsqueeze(-1)
    cos = F.cosine_similarity(z0, z1, dim=-1).unsqueeze(-1).clamp(-1, 1)
    omega = torch.acos(cos)
    so = torch.sin(omega)
    out = torch.sin((1 - t) * omega) / so * z0 + torch.sin(t * omega) / so * z1
    return torch.where(so.abs() < 1e-6, (1 - t) * z0 + t * z1, out)


def _slerp_atan2(z0, z1, t):  # the angle from atan2(|a x b|-like, a.b), fallback by a threshold on the angle
    t = torch.as_tensor(t, dtype=z0.dtype)[..., None]
    a, b = z0 / z0.norm(dim=-1, keepdim=True), z1 / z1.norm(dim=-1, keepdim=True)
    dot = (a * b).sum(-1, keepdim=True)
    omega = torch.atan2((a - dot * b).norm(dim=-1, keepdim=True) * 0 + (1 - dot.clamp(-1, 1) ** 2).sqrt(), dot)
    lerp = z0 + t * (z1 - z0)
    safe = torch.where(omega < 1e-5, torch.ones_like(omega), omega)
    spherical = (torch.sin((1 - t) * safe) * z0 + torch.sin(t * safe) * z1) / torch.sin(safe)
    return torch.where(omega < 1e-5, lerp, spherical)


def _slerp_loop(z0, z1, t):  # one row at a time, numpy-style maths on python floats
    import math

    flat0, flat1 = z0.reshape(-1, z0.shape[-1]), z1.reshape(-1, z1.shape[-1])
    ts = torch.as_tensor(t, dtype=z0.dtype).expand(z0.shape[:-1]).reshape(-1)
    rows = []
    for a, b, tt in zip(flat0, flat1, ts):
        c = float((a @ b) / (a.norm() * b.norm()))
        w = math.acos(max(-1.0, min(1.0, c)))
        if math.sin(w) < 1e-7:
            rows.append((1 - tt) * a + tt * b)
        else:
            rows.append(math.sin((1 - float(tt)) * w) / math.sin(w) * a + math.sin(float(tt) * w) / math.sin(w) * b)
    return torch.stack(rows).reshape(z0.shape)


@pytest.mark.parametrize("fn", [_slerp_plain, _slerp_atan2, _slerp_loop, slerp], ids=lambda f: f.__name__)
def test_slerp_accepts_correct_answers_written_differently(fn, capsys):
    passes(C.check_slerp, fn)
    assert "the rest of this hour uses your `slerp`" in capsys.readouterr().out.lower()


def test_slerp_not_done_returns_the_reference(capsys):
    assert not_done(C.check_slerp, raise_not_done, capsys=capsys) is slerp


@pytest.mark.parametrize("kind, phrase", [
    ("lerp", "this is linear interpolation"),
    ("unnormalised", "dot product of the raw vectors"),
    ("global_angle", "one angle is computed for the whole batch"),
    ("swapped", "the weights are swapped"),
    ("omega_not_sin", r"divided by the angle w instead of sin\(w\)"),
    ("cos_weights", "use cos instead of sin"),
    ("no_fallback", "identical or parallel vectors give 0 / 0 = nan"),
    ("unit_output", "normalised to unit length"),
    ("t_not_per_row", r"t\.unsqueeze\(-1\)"),
])
def test_slerp_names_the_known_mistakes(kind, phrase):
    fails(C.check_slerp, _slerp_variant(kind), match=phrase)


def test_slerp_notices_a_changed_input():
    def in_place(z0, z1, t):
        out = slerp(z0, z1, t)
        z0 /= z0.norm(dim=-1, keepdim=True)
        return out

    fails(C.check_slerp, in_place, match=r"changed its argument `z0` in place")


def test_slerp_refuses_the_wrong_dtype_and_type():
    fails(C.check_slerp, lambda z0, z1, t: slerp(z0, z1, t).double(), match=r"dtype torch\.float64, expected torch\.float32")
    fails(C.check_slerp, lambda z0, z1, t: slerp(z0, z1, t).tolist(), match=r"should be a tensor")
    fails(C.check_slerp, lambda z0, z1, t: None, match=r"returned None")


def test_slerp_catches_a_bug_on_an_edge_input_only():
    def float32_only(z0, z1, t):
        return slerp(z0.float(), z1.float(), torch.as_tensor(t).float())

    fails(C.check_slerp, float32_only, match=r"with float64 latents.*dtype torch\.float32, expected torch\.float64")

    def no_batch_of_one(z0, z1, t):  # squeezes away a batch of one
        return slerp(z0, z1, t).squeeze(0) if z0.dim() == 2 else slerp(z0, z1, t)

    fails(C.check_slerp, no_batch_of_one, match=r"with a batch of one.*shape \(16,\), expected \(1, 16\)")


def test_slerp_diagnoses_by_property_when_no_known_mistake_matches():
    def squared_t(z0, z1, t):  # endpoints right, moves along the arc, but not at constant speed
        t = torch.as_tensor(t, dtype=z0.dtype)
        return slerp(z0, z1, t * t)

    fails(C.check_slerp, squared_t, match=r"'between unit vectors, evenly spaced t turn by equal angles' does not hold")

    def shrinks_midway(z0, z1, t):  # endpoints right, but the path dips inside the sphere
        t = torch.as_tensor(t, dtype=z0.dtype)
        return slerp(z0, z1, t) * (1 - 0.2 * (t * (1 - t)).unsqueeze(-1))

    fails(C.check_slerp, shrinks_midway, match=r"'between unit vectors every point has norm 1' does not hold")


def test_slerp_reports_the_line_that_raised():
    def crashes(z0, z1, t):
        omega = torch.arccos((z0 * z1).sum(-1))
        return z0 * omega[:, :, None]

    fails(C.check_slerp, crashes, match=r"your code raised IndexError: .*\(line \d+ of your code: `return z0")


# --- Exercise 11.1 ------------------------------------------------------------------------------------------


def _projection_gather(h, y, embed, linear):  # the embedding as a matrix, indexed by the labels
    return (h * embed.weight[y]).sum(dim=1) + linear(h)[:, 0]


def _projection_einsum(h, y, embed, linear):
    return torch.einsum("nf,nf->n", embed(y), h) + (h @ linear.weight.T + linear.bias).squeeze(1)


def _projection_one_hot(h, y, embed, linear):  # all classes, then pick each sample's own
    scores = h @ embed.weight.T  # [N, C]
    own = (scores * F.one_hot(y, embed.num_embeddings).to(h.dtype)).sum(-1)
    return linear(h).flatten() + own


@pytest.mark.parametrize("fn", [_projection_gather, _projection_einsum, _projection_one_hot, projection_logits],
                         ids=lambda f: f.__name__)
def test_projection_accepts_correct_answers_written_differently(fn, capsys):
    passes(C.check_projection_logits, fn)
    assert "the rest of this hour uses your `projection_logits`" in capsys.readouterr().out.lower()


def test_projection_not_done_returns_the_reference(capsys):
    assert not_done(C.check_projection_logits, raise_not_done, capsys=capsys) is projection_logits


@pytest.mark.parametrize("kind, phrase", [
    ("no_linear", "the linear term is missing"),
    ("no_projection", "the projection term is missing"),
    ("no_squeeze", r"broadcasts to \[N, N\]"),
    ("keepdim", r"the result has shape \[N, 1\]"),
    ("all_classes", r"multiplied with every class's embedding"),
    ("batch_sum", "summed over the whole batch"),
    ("multiply", "the two terms are multiplied"),
    ("sigmoid", "a sigmoid was applied"),
    ("bias_twice", "the bias is added twice"),
])
def test_projection_names_the_known_mistakes(kind, phrase):
    fails(C.check_projection_logits, _projection_variant(kind), match=phrase)


def test_projection_notices_a_changed_input():
    def in_place(h, y, embed, linear):
        out = projection_logits(h, y, embed, linear)
        h.mul_(0)
        return out

    fails(C.check_projection_logits, in_place, match=r"changed its argument `h` in place")


def test_projection_refuses_the_wrong_dtype_and_type():
    fails(C.check_projection_logits, lambda h, y, e, l: projection_logits(h, y, e, l).tolist(), match="should be a tensor")
    fails(C.check_projection_logits, lambda h, y, e, l: projection_logits(h.float(), y, e.float(), l.float()),
          match=r"with float64 features.*dtype torch\.float32, expected torch\.float64")


def test_projection_catches_a_bug_on_an_edge_input_only():
    def squeezes_everything(h, y, embed, linear):  # .squeeze() drops the batch axis of a batch of one
        return (linear(h) + (embed(y) * h).sum(-1, keepdim=True)).squeeze()

    fails(C.check_projection_logits, squeezes_everything, match=r"with a batch of one.*shape \(\), expected \(1,\)")


def test_projection_catches_a_wrong_gradient():
    fails(C.check_projection_logits, lambda h, y, e, l: projection_logits(h, y, e, l).detach(),
          match=r"values are right but the logits is detached")

    def frozen_embedding(h, y, embed, linear):  # right values, but the class embedding never learns
        return linear(h).squeeze(-1) + (embed(y).detach() * h).sum(-1)

    fails(C.check_projection_logits, frozen_embedding, match=r"no gradient reaches `embed\.weight`")


def test_projection_diagnoses_by_property_when_no_known_mistake_matches():
    def batch_centred(h, y, embed, linear):  # the projection term centred over the batch: samples interact
        inner = (embed(y) * h).sum(-1)
        return linear(h).squeeze(-1) + inner - inner.mean() * (len(y) > 1)

    fails(C.check_projection_logits, batch_centred, match=r"'each logit depends on its own sample only' does not hold")

    def scaled_linear(h, y, embed, linear):  # the unconditional term doubled
        return 2 * linear(h).squeeze(-1) + (embed(y) * h).sum(-1)

    fails(C.check_projection_logits, scaled_linear, match=r"'with embed = 0 the logits are linear\(h\)' does not hold")
