"""Hour 03: the date task, the GRU encoder-decoder with additive attention, greedy decoding, the hooks that run the
model on a student's attention and loss. (The checks of the exercises: tests/test_checks_seq2seq.py.)"""

from __future__ import annotations

import datetime as dt
import re

import pytest
import torch
import torch.nn.functional as F

import amla
from amla.transformers.seq2seq import (
    AdditiveAttention,
    AttentionDecoder,
    Encoder,
    Memory,
    PlainDecoder,
    Seq2Seq,
    additive_attention,
    alignments,
    exact_match,
    greedy_decode,
    monotone_fraction,
    seq2seq_loss,
    teacher_forced_logits,
    teacher_forcing_loss,
)
from amla.transformers.tasks import (
    BOS_ID,
    DATE_END,
    DATE_FORMATS,
    DATE_START,
    EOS_ID,
    PAD_ID,
    YMD_FORMATS,
    PairSet,
    Vocab,
    date_task,
    render_date,
)

# --- the date task --------------------------------------------------------------------------------

ALL_DAYS = [DATE_START + dt.timedelta(days=i) for i in range((DATE_END - DATE_START).days + 1)]

STRPTIME = {  # formats that datetime.strptime reads back ("C" locale: English names, any case)
    "d month yyyy": "%d %B %Y",
    "d month yyyy, lower": "%d %B %Y",
    "dth of month yyyy": "%d of %B %Y",  # after the "st/nd/rd/th" suffix is removed
    "month d, yyyy": "%B %d, %Y",
    "weekday, month d, yyyy": "%A, %B %d, %Y",
    "wkd d mon yyyy": "%a %d %b %Y",
    "mon d, yy": "%b %d, %y",
    "dd MON yyyy": "%d %b %Y",
    "dd/mm/yyyy": "%d/%m/%Y",
    "d.m.yy": "%d.%m.%y",
    "yyyy.mm.dd": "%Y.%m.%d",
    "yyyy/m/d": "%Y/%m/%d",
    "yyyymmdd": "%Y%m%d",
}


def test_examples_of_every_format():
    d = dt.date(2021, 3, 3)
    shown = {f: render_date(d, f) for f in DATE_FORMATS}
    assert shown["dth of month yyyy"] == "3rd of March 2021"
    assert shown["mon d, yy"] == "Mar 3, 21"
    assert shown["dd/mm/yyyy"] == "03/03/2021"
    assert shown["weekday, month d, yyyy"] == "Wednesday, March 3, 2021"
    assert shown["d month yyyy, lower"] == "3 march 2021"
    assert shown["yyyy.mm.dd"] == "2021.03.03"
    assert shown["in words"] == "the third of March, two thousand twenty-one"
    assert render_date(dt.date(1984, 12, 31), "in words") == "the thirty-first of December, nineteen eighty-four"
    assert render_date(dt.date(2000, 6, 20), "weekday in words") == "Tuesday, June the twentieth, two thousand"
    assert render_date(dt.date(2009, 1, 12), "in words") == "the twelfth of January, two thousand nine"
    assert [render_date(dt.date(2021, 1, n), "dth of month yyyy").split()[0] for n in (1, 2, 11, 12, 13, 21, 22, 23)] \
        == ["1st", "2nd", "11th", "12th", "13th", "21st", "22nd", "23rd"]


@pytest.mark.parametrize("fmt", list(STRPTIME))
def test_numeric_formats_parse_back_to_the_same_date(fmt):
    for d in ALL_DAYS[::37]:
        text = re.sub(r"(\d)(st|nd|rd|th)\b", r"\1", render_date(d, fmt))
        assert dt.datetime.strptime(text, STRPTIME[fmt]).date() == d, (fmt, text)
        if "weekday" in fmt or fmt.startswith("wkd"):
            assert text.startswith(d.strftime("%a"))


@pytest.mark.parametrize("fmt", list(DATE_FORMATS))
def test_every_format_names_each_date_once(fmt):
    texts = [render_date(d, fmt) for d in ALL_DAYS]
    assert len(set(texts)) == len(ALL_DAYS)  # one-to-one: the target can be read from the source


def test_splits_are_disjoint_in_dates_and_deterministic():
    state = torch.random.get_rng_state()
    task = date_task(3000, 200, 300, seed=3)
    assert torch.equal(state, torch.random.get_rng_state())  # the global random state is untouched
    assert (len(task.train), len(task.val), len(task.test)) == (3000, 200, 300)
    train, val, test = set(task.train.targets), set(task.val.targets), set(task.test.targets)
    assert not train & test and not train & val and not val & test
    assert len(test) == 300  # each held-out pair has its own date
    for src, tgt, tag in zip(task.test.sources, task.test.targets, task.test.tags):
        assert render_date(dt.date.fromisoformat(tgt), tag) == src
    assert set(task.train.tags) == set(DATE_FORMATS)
    again = date_task(3000, 200, 300, seed=3)
    assert again.train == task.train and again.test == task.test
    other = date_task(3000, 200, 300, seed=4)
    assert other.test.targets != task.test.targets
    only = date_task(50, 0, 10, formats=YMD_FORMATS)
    assert set(only.train.tags + only.test.tags) <= set(YMD_FORMATS)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n_train=0), "n_train must be an int >= 1"),
        (dict(n_test=-1), "n_test must be an int >= 0"),
        (dict(n_val=2.5), "n_val must be an int"),
        (dict(formats=["dd/mm/yyyy", "mm/dd/yyyy"]), r"unknown format\(s\) \['mm/dd/yyyy'\]"),
        (dict(formats=[]), "unknown format"),
        (dict(n_test=40_000), "leaves no training dates"),
        (dict(start=dt.date(1960, 1, 1)), "two-digit years must be unambiguous"),
        (dict(start=dt.date(2001, 1, 1), end=dt.date(2000, 1, 1)), "start <= end"),
    ],
)
def test_date_task_rejects_bad_input_in_one_line(kwargs, message):
    args = dict(n_train=10, n_val=5, n_test=5) | kwargs
    with pytest.raises(ValueError, match=message) as err:
        date_task(args.pop("n_train"), args.pop("n_val"), args.pop("n_test"), **args)
    assert "\n" not in str(err.value)


def test_render_date_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown date format 'iso'"):
        render_date(dt.date(2021, 1, 1), "iso")
    with pytest.raises(TypeError, match="expected a datetime.date, got str"):
        render_date("2021-01-01", "yyyymmdd")


# --- the shared vocabulary ------------------------------------------------------------------------


def test_vocab_encodes_pads_and_decodes():
    v = Vocab("abc")
    assert len(v) == 6 and (v.pad_id, v.bos_id, v.eos_id) == (PAD_ID, BOS_ID, EOS_ID) == (0, 1, 2)
    assert v.encode("cab", bos=True, eos=True) == [1, 5, 3, 4, 2]
    batch = v.encode_batch(["ab", "c"], eos=True)
    assert batch.tolist() == [[3, 4, 2], [5, 2, 0]]
    assert v.decode_batch(batch) == ["ab", "c"]
    assert v.decode([1, 3, 2, 4]) == "a"  # <bos> skipped, stops at <eos>
    assert v.encode_batch(["a"], length=3).tolist() == [[3, 0, 0]]
    assert Vocab.from_texts(["ba", "c"]).itos[3:] == ["a", "b", "c"]
    src, tgt = PairSet(["ab"], ["c"], ["x"]).tensors(v, v)
    assert src.tolist() == [[3, 4]] and tgt.tolist() == [[5, 2]]


def test_vocab_rejects_bad_input_in_one_line():
    v = Vocab("abc")
    with pytest.raises(ValueError, match=r"character 'z' of 'az' is not in the vocabulary 'abc'"):
        v.encode("az")
    with pytest.raises(TypeError, match="got one str"):
        v.encode_batch("abc")
    with pytest.raises(ValueError, match="shorter than the longest text"):
        v.encode_batch(["abc"], length=2)
    with pytest.raises(ValueError, match="id 9 is outside the vocabulary"):
        v.decode([9])
    with pytest.raises(ValueError, match="single characters"):
        Vocab(["ab"])
    with pytest.raises(ValueError, match="same number"):
        PairSet(["a"], [], [])


# --- attention and the model ----------------------------------------------------------------------


def _attention_args(seed=0, b=3, s=6, dq=5, dk=4, a=7):
    g = torch.Generator().manual_seed(seed)
    mask = torch.arange(s)[None] < torch.tensor([s, 3, 1][:b])[:, None]
    return (torch.randn(b, dq, generator=g), torch.randn(b, s, dk, generator=g), torch.randn(dq, a, generator=g),
            torch.randn(dk, a, generator=g), torch.randn(a, generator=g), mask)


def test_additive_attention_matches_the_equations_and_masks_padding():
    query, keys, W_q, W_k, v, mask = _attention_args()
    context, weights = additive_attention(query, keys, W_q, W_k, v, mask)
    assert context.shape == (3, 4) and weights.shape == (3, 6)
    for i in range(3):
        n = int(mask[i].sum())
        e = torch.stack([v @ torch.tanh(W_q.T @ query[i] + W_k.T @ keys[i, j]) for j in range(n)])
        a = e.softmax(0)
        torch.testing.assert_close(weights[i, :n], a)
        torch.testing.assert_close(context[i], a @ keys[i, :n])
    assert torch.all(weights[~mask] == 0)  # exactly zero at padding
    torch.testing.assert_close(weights.sum(-1), torch.ones(3))
    module = AdditiveAttention(5, 4, 7)
    with torch.no_grad():
        module.W_q.copy_(W_q), module.W_k.copy_(W_k), module.v.copy_(v)
    for projected in (None, module.project_keys(keys)):
        got = module(query, keys, mask, projected)
        torch.testing.assert_close(got[0], context)
        torch.testing.assert_close(got[1], weights)


def test_additive_attention_rejects_bad_shapes_in_one_line():
    query, keys, W_q, W_k, v, mask = _attention_args()
    with pytest.raises(ValueError, match=r"W_k must be \[Dk, A\] = \(4, 7\), got \(7, 4\)"):
        additive_attention(query, keys, W_q, W_k.T, v, mask)
    with pytest.raises(ValueError, match=r"query must be \[B, Dq\]"):
        additive_attention(query[0], keys, W_q, W_k, v, mask)
    with pytest.raises(ValueError, match="mask must be a bool tensor"):
        additive_attention(query, keys, W_q, W_k, v, mask.float())


def _model(attention=True, bidirectional=True, seed=0):
    torch.manual_seed(seed)
    return Seq2Seq.build(9, 7, emb_dim=4, hidden=6, attn_dim=5, attention=attention, bidirectional=bidirectional)


@pytest.mark.parametrize("bidirectional", [True, False])
def test_encoder_ignores_padding(bidirectional):
    torch.manual_seed(0)
    enc = Encoder(9, 4, 6, bidirectional)
    src = torch.tensor([[3, 4, 5, 6, 7], [5, 6, 0, 0, 0]])
    values, final = enc(src, src != PAD_ID)
    assert values.shape == (2, 5, enc.out_dim) and final.shape == (2, enc.out_dim)
    assert torch.all(values[1, 2:] == 0)
    alone_values, alone_final = enc(src[1:, :2], src[1:, :2] != PAD_ID)  # the short one without padding
    torch.testing.assert_close(values[1:, :2], alone_values)
    torch.testing.assert_close(final[1:], alone_final)
    with pytest.raises(ValueError, match="at least one non-padding token"):
        enc(src[:, 2:], src[:, 2:] != PAD_ID)


@pytest.mark.parametrize("attention", [True, False])
def test_model_shapes_and_padding_gets_no_attention(attention):
    model = _model(attention)
    src = torch.tensor([[3, 4, 5, 6], [5, 6, 0, 0], [7, 0, 0, 0]])
    tgt = torch.tensor([[3, 4, 2], [5, 2, 0], [2, 0, 0]])
    assert model(src, tgt).shape == (3, 3, 7)
    state, memory = model.encode(src)
    logits, new_state, weights = model.decoder.step(torch.full((3,), BOS_ID), state, memory)
    assert logits.shape == (3, 7) and new_state.shape == state.shape == (3, 12)
    assert isinstance(model.decoder, AttentionDecoder if attention else PlainDecoder)
    if attention:
        assert weights.shape == (3, 4) and torch.all(weights[src == PAD_ID] == 0)
    else:
        assert weights is None


def test_teacher_forcing_loss_feeds_the_true_previous_token():
    model = _model()
    src = torch.tensor([[3, 4, 5, 6], [5, 6, 0, 0]])
    tgt = torch.tensor([[3, 4, 2], [5, 2, 0]])
    state, memory = model.encode(src)
    logits = teacher_forced_logits(model.decoder, state, memory, tgt)
    # by hand: step 0 sees <bos>, step t sees tgt[:, t - 1]
    s, expected = state, []
    for prev in [torch.full((2,), BOS_ID), tgt[:, 0], tgt[:, 1]]:
        out, s, _ = model.decoder.step(prev, s, memory)
        expected.append(out)
    torch.testing.assert_close(logits, torch.stack(expected, 1))
    loss = teacher_forcing_loss(model.decoder, state, memory, tgt)
    torch.testing.assert_close(loss, F.cross_entropy(logits[tgt != PAD_ID], tgt[tgt != PAD_ID]))
    torch.testing.assert_close(seq2seq_loss(model, (src, tgt)), loss)


class _Scripted(torch.nn.Module):
    """A decoder that says <eos> at a fixed step per row (and token 3 before it)."""

    def __init__(self, eos_at):
        super().__init__()
        self.eos_at = torch.tensor(eos_at)
        self.w = torch.nn.Parameter(torch.zeros(1))

    def start(self, values, mask, final):
        return torch.zeros(values.shape[0]), Memory(values, mask, final)

    def step(self, prev, state, memory):
        logits = torch.zeros(len(state), 5)
        logits[:, 3] = 1.0
        logits[state == self.eos_at, EOS_ID] = 2.0
        weights = memory.mask.float() / memory.mask.sum(1, keepdim=True)
        return logits, state + 1, weights


def test_greedy_decode_stops_at_eos_and_pads_after_it():
    torch.manual_seed(0)
    model = Seq2Seq(Encoder(9, 4, 6), _Scripted([1, 3]))
    src = torch.tensor([[3, 4, 5], [5, 6, 0]])
    tokens, weights = greedy_decode(model, src, max_len=10)
    assert tokens.tolist() == [[3, 2, 0, 0], [3, 3, 3, 2]]  # stopped after 4 steps, not 10
    assert weights.shape == (2, 4, 3)
    short, _ = greedy_decode(model, src, max_len=2)
    assert short.tolist() == [[3, 2], [3, 3]]
    plain_tokens, plain_weights = greedy_decode(_model(attention=False), src, max_len=5)
    assert plain_tokens.shape[0] == 2 and plain_tokens.shape[1] <= 5 and plain_weights is None
    with pytest.raises(ValueError, match="max_len must be a positive int"):
        greedy_decode(model, src, max_len=0)


def test_a_tiny_model_overfits_a_handful_of_dates():
    task = date_task(8, 0, 0, seed=1)
    src, tgt = task.train.tensors(task.src_vocab, task.tgt_vocab)
    amla.seed_everything(0)
    model = Seq2Seq.build(len(task.src_vocab), len(task.tgt_vocab), emb_dim=16, hidden=32, attn_dim=32)
    config = amla.TrainConfig(max_steps=150, batch_size=8, lr=1e-2, min_lr=1e-2, progress=False)
    amla.Trainer(model, (src, tgt), config, loss_fn=seq2seq_loss, device="cpu").fit()
    assert exact_match(model, src, tgt).all()
    tokens, weights = greedy_decode(model, src, max_len=tgt.shape[1])
    assert task.tgt_vocab.decode_batch(tokens) == task.train.targets
    assert weights.shape == (8, tgt.shape[1], src.shape[1])
    # right answers: the teacher-forced alignments are exactly the greedy ones
    torch.testing.assert_close(alignments(model, src, tgt, batch_size=3), weights)
    with pytest.raises(TypeError, match="needs a decoder with attention, got PlainDecoder"):
        alignments(_model(attention=False), src, tgt)


def test_monotone_fraction():
    diagonal = torch.eye(4)
    assert monotone_fraction(diagonal) == 1.0
    assert monotone_fraction(diagonal.flip(0)) == 0.0
    stay = torch.tensor([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])  # stays, then goes back
    assert monotone_fraction(stay) == 0.5
    assert monotone_fraction(stay[None].repeat(2, 1, 1), [range(0, 2)]) == 1.0  # only the pair 0 -> 1 counts
    assert monotone_fraction(stay, [(0, 2), (1, 1)]) == 0.5  # groups need not be contiguous
    with pytest.raises(ValueError, match="need pairs of output steps"):
        monotone_fraction(stay, [range(0, 1)])
    with pytest.raises(ValueError, match="need pairs of output steps"):
        monotone_fraction(stay, [(0, 3)])


# --- the hooks: the model runs on a student's attention and loss --------------------------------------------


def _counting(fn):
    calls = []

    def counted(*args):
        calls.append(len(args))
        return fn(*args)

    return counted, calls


def test_attention_fn_with_the_package_attention_gives_the_default_model():
    src = torch.tensor([[3, 4, 5, 6, 7], [5, 6, 0, 0, 0], [7, 8, 3, 0, 0]])
    tgt = torch.tensor([[3, 4, 2, 0], [5, 6, 4, 2], [2, 0, 0, 0]])
    default = _model()
    counted, calls = _counting(additive_attention)
    torch.manual_seed(0)
    hooked = Seq2Seq.build(9, 7, emb_dim=4, hidden=6, attn_dim=5, attention_fn=counted)
    assert default.decoder.attention.attention_fn is None and hooked.decoder.attention.attention_fn is counted
    assert default.state_dict().keys() == hooked.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(default.state_dict().values(), hooked.state_dict().values()))
    torch.testing.assert_close(hooked(src, tgt), default(src, tgt), atol=1e-6, rtol=0)
    assert len(calls) == tgt.shape[1] and set(calls) == {6}  # one call per step, with (query, keys, W_q, W_k, v, mask)
    losses = [seq2seq_loss(m, (src, tgt)) for m in (default, hooked)]
    torch.testing.assert_close(losses[1], losses[0], atol=1e-6, rtol=0)
    for loss in losses:
        loss.backward()
    for (name, a), b in zip(default.named_parameters(), hooked.parameters()):
        torch.testing.assert_close(b.grad, a.grad, atol=1e-6, rtol=0, msg=name)
    _, memory = hooked.encode(src)
    assert memory.keys is None  # the hooked attention projects the keys itself
    assert default.encode(src)[1].keys.shape == (3, 5, 5)
    tokens, weights = greedy_decode(default, src, max_len=4)
    hooked_tokens, hooked_weights = greedy_decode(hooked, src, max_len=4)
    assert torch.equal(hooked_tokens, tokens)
    torch.testing.assert_close(hooked_weights, weights, atol=1e-6, rtol=0)
    torch.testing.assert_close(alignments(hooked, src, tgt), alignments(default, src, tgt), atol=1e-6, rtol=0)


def test_attention_fn_is_what_the_model_runs_on():
    def uniform(query, keys, W_q, W_k, v, mask):  # a different attention: the model must follow it
        weights = mask.float() / mask.sum(1, keepdim=True)
        return (weights.unsqueeze(1) @ keys).squeeze(1), weights

    torch.manual_seed(0)
    model = Seq2Seq.build(9, 7, emb_dim=4, hidden=6, attn_dim=5, attention_fn=uniform)
    src = torch.tensor([[3, 4, 5, 6], [5, 6, 0, 0]])
    _, weights = greedy_decode(model, src, max_len=3)
    torch.testing.assert_close(weights, (src != PAD_ID).float()[:, None].expand_as(weights) / torch.tensor([[[4.0]], [[2.0]]]))
    module = AdditiveAttention(5, 4, 7, attention_fn=additive_attention)
    query, keys, _, _, _, mask = _attention_args()
    got = module(query, keys)  # no mask given: every position is real
    torch.testing.assert_close(got[1].sum(-1), torch.ones(3))


def test_attention_fn_rejects_bad_input_in_one_line():
    with pytest.raises(ValueError, match="attention_fn is given but attention=False"):
        Seq2Seq.build(9, 7, attention=False, attention_fn=additive_attention)
    with pytest.raises(TypeError, match="attention_fn must be a function") as err:
        AdditiveAttention(5, 4, 7, attention_fn="additive")
    assert "\n" not in str(err.value)


def test_a_loss_fn_written_with_teacher_forcing_loss_is_seq2seq_loss():
    """The notebook trains with its own loss_fn around the student's teacher_forcing_loss; with the package's, it
    is the package's seq2seq_loss."""

    def loss_fn(model, batch):
        src, tgt = batch
        state, memory = model.encode(src)
        return teacher_forcing_loss(model.decoder, state, memory, tgt)

    model = _model()
    batch = (torch.tensor([[3, 4, 5, 6], [5, 6, 0, 0]]), torch.tensor([[3, 4, 2], [5, 2, 0]]))
    assert torch.equal(loss_fn(model, batch), seq2seq_loss(model, batch))
