# %% tags=["setup"]
# Course set-up, the same in every hour. On Colab it installs the course package `amla`
# (and what this hour needs); elsewhere `make lab` has installed it already.
import sys, subprocess
if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", 'amla @ git+https://github.com/amla-course/amla@main'], check=True)
import amla
device = amla.setup(hour=3, seed=0)  # picks cuda > mps > cpu, seeds, prints the profile

# %% [markdown] slideshow={"slide_type": "slide"}
# # Hour 03: Seq2seq with attention
#
# People write the same day as "3rd of March 2021", "Mar 3, 21", "03/03/2021" or "Wednesday, March 3, 2021".
# Turning every one of them into `2021-03-03` is a small translation problem: a sequence of characters in, a
# different sequence out, of a different length and in a different order. This hour builds the model that
# made neural translation work in 2015, a recurrent **encoder-decoder with attention**, trains it on dates made
# in code, and then looks at *where* it looks while it writes each character.
#
# **By the end of this hour you can**
# - make a translation task in code and hold out **dates**, not just strings, so the test measures
#   generalisation to days the model has never seen;
# - say why an encoder that squeezes the whole input into **one fixed-size vector** is a bottleneck, and
#   measure what it costs on this task;
# - write **additive (Bahdanau) attention**, with the padding mask in the right place;
# - pad each batch to its own longest sequence, group lengths into **buckets**, state a **truncation** policy,
#   and measure what each costs in padding, in time and in accuracy;
# - train a decoder with **teacher forcing** and decode **greedily**;
# - read **alignment maps** (output characters x input characters) and measure how monotone they are.
#
# **How the exercises work.** Each exercise is a function with a `# YOUR CODE HERE` line. Replace the
# `raise NotImplementedError(...)` with your code and run the check cell below it, such as
# `additive_attention = amla.checks.seq2seq.check_additive_attention(additive_attention)`. The check runs your
# function on ordinary and edge inputs against the course's reference (values, dtype, gradients, and whether your
# inputs were left alone):
# - right: the check returns your function, and **the rest of the hour runs on your code**: the model trained
#   in section 5 attends with your `additive_attention` and learns from your `teacher_forcing_loss`, and section
#   7 measures its alignments with your `monotone_fraction`;
# - wrong: it stops there and names the most likely mistake, or the property your answer breaks;
# - not written yet: one line says so and the check returns the course's reference, so Run All shows you the
#   whole hour first.
#
# `amla.checks.summary()` at the end lists which exercises you have done.
#
# **Runtime** (whole notebook, measured with `amla bench 03` on 2 CPU cores): smoke profile about 16 s; cpu
# profile about 5 min 40 s (339 s), of which about 4 1/2 min are four training runs: the attention model on random
# batches padded per batch (99 s, 100 % exact match on held-out dates), the same on length buckets (46 s), and the
# baseline without attention for the same and for twice the number of steps (41 s and 89 s). Padding each batch to
# its own longest instead of the split's longest made an epoch 9-13 % faster; buckets made it 2.6-3 times faster
# (both measured in Section 5). The `gpu` profile trains a wider model on more data for more steps.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. A translation task made in code
#
# `amla.transformers.tasks` writes a date in 15 formats: digits in three orders, month names in full, abbreviated
# and in lower case, weekdays, two-digit years, and dates spelled out in words. Every format is one-to-one over the
# range 1970 to 2049, so the ISO date can always be read off the input (two-digit years follow the usual rule:
# 70-99 are 19xx, 00-49 are 20xx).

# %%
import datetime as dt

from amla.transformers.tasks import DATE_FORMATS, render_date

day = dt.date(2021, 3, 3)
for name in DATE_FORMATS:
    print(f"{name:>24}   {render_date(day, name)}")

# %% [markdown]
# **Hold out dates, not strings.** If the test set only held new *strings*, "3 March 2021" could be in the
# test set while "03/03/2021" sits in the training set: the model would only have to recognise a date it has
# already been taught. So `date_task` shuffles all 29,220 days of the range, keeps the first ones as the
# **test dates** and the next ones as **validation dates**, and draws the training pairs from the remaining
# days only. A test date never appears in training, in any format. The format of every pair is drawn at random
# and kept as the pair's tag.
#
# The sizes of this hour, per profile:

# %%
S = amla.per_profile(
    smoke=dict(n_train=2000, n_val=200, n_test=300, emb=8, hidden=16, attn=16, batch=64, lr=3e-3,
               steps=30, eval_every=15, timing_steps=2),
    cpu=dict(n_train=30000, n_val=1000, n_test=2000, emb=32, hidden=64, attn=64, batch=128, lr=3e-3,
             steps=600, eval_every=100, timing_steps=8),
    gpu=dict(n_train=100000, n_val=2000, n_test=5000, emb=64, hidden=256, attn=128, batch=256, lr=2e-3,
             steps=2000, eval_every=250, timing_steps=8),
)
print(amla.profile(), S)

# %%
from amla.transformers.tasks import date_task

task = date_task(S.n_train, S.n_val, S.n_test, seed=0)
print(f"train {len(task.train)} pairs, validation {len(task.val)}, test {len(task.test)}")
shared = set(task.train.targets) & set(task.test.targets)
print("test dates that also occur in training:", len(shared))
for source, target, fmt in list(zip(task.train.sources, task.train.targets, task.train.tags))[:6]:
    print(f"{source!r:>58} -> {target}   ({fmt})")

# %% [markdown]
# **Characters to ids.** Both sides are read one character at a time. A `Vocab` numbers the characters after
# three special tokens: `<pad>` = 0 fills short sequences up to a common length, `<bos>` = 1 starts the decoder
# off, `<eos>` = 2 ends every target, so the decoder can say when it is done. The later hours' tasks (reversal,
# addition) use the same `Vocab`. `PairSet.tensors` encodes a whole split as one tensor, every row padded to the
# longest text of the split: what the evaluation uses. Training batches are padded per batch (below).

# %%
from amla.transformers.tasks import PAD_ID

print(task.src_vocab)
print(task.tgt_vocab)
src_train, tgt_train = task.train.tensors(task.src_vocab, task.tgt_vocab)
src_val, tgt_val = task.val.tensors(task.src_vocab, task.tgt_vocab)
src_test, tgt_test = task.test.tensors(task.src_vocab, task.tgt_vocab)
print("sources", tuple(src_train.shape), " targets", tuple(tgt_train.shape))
print(task.train.sources[0], "->", src_train[0, : (src_train[0] != PAD_ID).sum() + 2].tolist(), "...")
print(task.train.targets[0], "->", tgt_train[0].tolist(), "->", task.tgt_vocab.decode(tgt_train[0]))

# %% [markdown]
# **Padding per batch, buckets, truncation.** Padding every row to the longest date of the whole split makes every
# batch as wide as that one date, and the model then reads and masks all those `<pad>` positions. A batch only needs
# to be as wide as *its own* longest row: `amla.toolkit.batches.pad_collate` pads each batch when it is drawn, from
# the unpadded examples of `PairSet.examples`. Since short and long dates are mixed at random, the longest of a
# batch of random dates is still long; `BucketBatches` (like Hour 07's sentence buckets) shuffles the examples, sorts each run
# of 50 batches' worth by length, cuts the runs into batches and shuffles the batches: each batch is still drawn at
# random from its run, but its dates have about one length.
#
# **Truncation** is the other half of the policy: an input longer than a limit is cut. Here `max_source` keeps the
# first `max_source` characters of a source and never cuts a target (a cut target would teach the decoder to stop
# early); a cut date loses its year, so this hour sets no limit, and the cell counts what a limit of 40 would cut.

# %%
import torch

from amla.toolkit.batches import BucketBatches

examples = task.train.examples(task.src_vocab, task.tgt_vocab)
src_lengths = torch.tensor([len(src) for src, _ in examples]).double()
batchings = {"the split's longest": None, "per batch, random batches": BucketBatches(examples, S.batch, chunk=1),
             "per batch, length buckets": BucketBatches(examples, S.batch, chunk=50)}
padding = {}
print(f"source lengths: mean {src_lengths.mean():.1f}, longest {src_lengths.max():.0f} characters")
for name, batches in batchings.items():
    widths = torch.full((len(examples) // S.batch,), src_lengths.max()) if batches is None else batches.widths(0).double()
    padding[name] = 1 - src_lengths.mean().item() / widths.mean().item()
    print(f"{name:>27}: batches {widths.mean():5.1f} characters wide on average, {padding[name]:5.1%} of them padding")
cut = task.train.examples(task.src_vocab, task.tgt_vocab, max_source=40)
print(f"max_source=40 would cut {sum(len(a) < len(b) for (a, _), (b, _) in zip(cut, examples))} of "
      f"{len(examples)} sources, e.g. {task.src_vocab.decode(cut[int(src_lengths.argmax())][0])!r}")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. An encoder, a decoder, and the bottleneck between them
#
# The **encoder** is a bidirectional GRU. Reading the source characters $x_1, \dots, x_S$ left to right and
# right to left, it gives every position a state that knows its neighbourhood in both directions,
# $$h_j = \big[\overrightarrow{h}_j ; \overleftarrow{h}_j\big],$$
# and a **final state** $c$ (the last forward state next to the last backward one) that has read everything.
#
# A plain **decoder** starts from $c$ (Sutskever et al., 2014) and writes the target one character at a time;
# as in Cho et al. (2014), each step also sees $c$ next to the previous character $y_{i-1}$:
# $$s_0 = \tanh(W_0\, c), \qquad s_i = \operatorname{GRU}\big([E y_{i-1};\, c],\ s_{i-1}\big), \qquad
# p(y_i \mid y_{<i}, x) = \operatorname{softmax}\big(W_o\, [s_i;\, c;\, E y_{i-1}]\big).$$
# Everything the decoder knows about the input must pass through $c$: a vector of the same size (128 numbers
# with the cpu profile) for "3.3.21" and for "Wednesday, March the third, two thousand twenty-one". Cho et al.
# found that such models translate long sentences much worse than short ones. Bahdanau, Cho and Bengio (2015)
# removed the bottleneck: let the decoder look back at **every** encoder state $h_j$, at every step, and decide
# which ones matter now. That is attention.

# %%
from amla.transformers.seq2seq import Seq2Seq

amla.seed_everything(0)
model = Seq2Seq.build(len(task.src_vocab), len(task.tgt_vocab), emb_dim=S.emb, hidden=S.hidden, attn_dim=S.attn)
batch = src_train[:4]
values, final = model.encoder(batch, batch != PAD_ID)
print("source ids", tuple(batch.shape), "-> encoder states h_j", tuple(values.shape), "and final state c", tuple(final.shape))
print("states at padding are zero:", bool((values[batch == PAD_ID] == 0).all()))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. Additive attention
#
# At output step $i$ the decoder's previous state $s_{i-1}$ is the **query**; the encoder states $h_j$ are the
# **keys** and also the **values**. Bahdanau's score is a small one-hidden-layer network of the two:
# $$e_{ij} = v^\top \tanh\big(W_q\, s_{i-1} + W_k\, h_j\big),$$
# which is why it is called **additive** attention: query and key are projected to the same size $A$ and
# *added*, where Hour 02's dot-product attention *multiplies* them (not to be confused with Hour 02's additive
# *mask*). The scores become weights with a softmax over the source positions, padding excluded,
# $$\alpha_{ij} = \frac{\exp e_{ij}}{\sum_{k \,\text{real}} \exp e_{ik}}\quad(\alpha_{ij} = 0 \text{ at padding}),
# \qquad c_i = \sum_j \alpha_{ij}\, h_j ,$$
# and the **context** $c_i$ replaces the fixed $c$: a different summary of the input for every output character.
#
# ### Exercise 3.1: Additive attention
#
# Write `additive_attention(query, keys, W_q, W_k, v, mask)` returning `(context, weights)`.
# - `query` [B, Dq]: one decoder state per sequence; `keys` [B, S, Dk]: the encoder states (also the values).
# - `W_q` [Dq, A], `W_k` [Dk, A], `v` [A]. Vectors are rows here, so the projections are `query @ W_q` and
#   `keys @ W_k`; add them for every position (mind the broadcasting), apply `tanh`, then multiply by `v`.
# - `mask` [B, S] is a bool tensor, True at real characters and False at padding (the convention of Hour 02
#   and of PyTorch). Padding must get a weight of exactly 0.
# - `weights` [B, S] sum to 1 over the source positions; `context` [B, Dk].

# %%
import torch


def additive_attention(query, keys, W_q, W_k, v, mask):
    ### BEGIN SOLUTION
    scores = torch.tanh((query @ W_q).unsqueeze(1) + keys @ W_k) @ v  # [B, S]
    scores = scores.masked_fill(~mask, float("-inf"))  # before the softmax
    weights = scores.softmax(dim=-1)
    context = (weights.unsqueeze(1) @ keys).squeeze(1)  # [B, 1, S] @ [B, S, Dk]
    return context, weights
    ### END SOLUTION


# %%
additive_attention = amla.checks.seq2seq.check_additive_attention(additive_attention)

# %% [markdown]
# The model's attention module holds the learned `W_q`, `W_k` and `v`. Here the `additive_attention` the check
# returned (yours once it passes; while the exercise is not done, the course's reference stands in for it) runs
# on them, with the untrained model's encoder states and the decoder's first state as the query: the weights
# already sum to 1 and ignore padding, and the context is the one the module computes.

# %%
state, memory = model.encode(batch)
attn = model.decoder.attention
context, weights = additive_attention(state, memory.values, attn.W_q, attn.W_k, attn.v, memory.mask)
print("context", tuple(context.shape), " weights", tuple(weights.shape))
print("rows sum to", weights.sum(-1).tolist())
print("largest weight on padding:", weights[~memory.mask].max().item() if (~memory.mask).any() else "no padding here")
builtin_context, _ = attn(state, memory.values, memory.mask, memory.keys)
print("largest difference from the module's context:", (context - builtin_context).abs().max().item())

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. One decoder step, and teacher forcing
#
# One step of the attention decoder: attend with the previous state, update the state from the previous
# character and the context, predict the next character from all three,
# $$c_i = \operatorname{attention}(s_{i-1}, h), \qquad s_i = \operatorname{GRU}\big([E y_{i-1};\, c_i],\ s_{i-1}\big),
# \qquad p(y_i \mid y_{<i}, x) = \operatorname{softmax}\big(W_o\, [s_i;\, c_i;\, E y_{i-1}]\big).$$
# The baseline decoder (`PlainDecoder`) is the same with $c$ in place of $c_i$. In code:

# %%
import inspect

from amla.transformers.seq2seq import AttentionDecoder

print(inspect.getsource(AttentionDecoder.step))

# %% [markdown]
# **Teacher forcing.** While training, the decoder is fed the **true** previous character, not its own guess:
# step 0 gets `<bos>`, step $i$ gets $y_{i-1}$, and step $i$ is scored on predicting $y_i$ (the last target is
# `<eos>`). All steps then learn in parallel from correct prefixes, and an early mistake does not derail the rest
# of the sequence. The loss is the mean cross-entropy over all real target tokens of the batch,
# $$\mathcal{L} = -\frac{1}{N}\sum_{b}\sum_{i:\, y_{b,i} \ne \text{pad}} \log p\big(y_{b,i} \mid y_{b,<i}, x_b\big).$$
# The price: at test time the model sees its own predictions, which it never did in training (*exposure bias*).
#
# ### Exercise 3.2: The teacher-forced loss
#
# Write `teacher_forcing_loss(decoder, state, memory, targets)`. `targets` [B, T] holds each target's ids, then
# `<eos>`, then `<pad>` (no `<bos>`). Call `logits, state, weights = decoder.step(prev, state, memory)` once per
# target position (`logits` is [B, V]); step 0 is fed `BOS_ID`, step $t$ the true `targets[:, t - 1]`. Return the
# mean cross-entropy of the stacked logits [B, T, V] against `targets`, skipping padding (`ignore_index=PAD_ID`).

# %%
import torch.nn.functional as F

from amla.transformers.tasks import BOS_ID


def teacher_forcing_loss(decoder, state, memory, targets):
    ### BEGIN SOLUTION
    prev = torch.full((targets.shape[0],), BOS_ID, dtype=torch.long, device=targets.device)
    logits = []
    for t in range(targets.shape[1]):
        step_logits, state, _ = decoder.step(prev, state, memory)
        logits.append(step_logits)
        prev = targets[:, t]  # the true token, whatever the model predicted
    logits = torch.stack(logits, dim=1)  # [B, T, V]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=PAD_ID)
    ### END SOLUTION


# %%
teacher_forcing_loss = amla.checks.seq2seq.check_teacher_forcing(teacher_forcing_loss)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. Training the attention model
#
# The model trained here is built from your code: `attention_fn=additive_attention` makes every decoder step call
# the function the check of Exercise 3.1 returned, and the Trainer's `loss_fn(model, batch)` below encodes the
# sources and calls the `teacher_forcing_loss` of Exercise 3.2. Yours once they pass; while an exercise is not done,
# the course's reference stands in for it. (Your function projects the keys again at every step, where the
# course's module projects them once per sequence: the same numbers, with more work per step.)
#
# The number we watch is **exact match** on the validation dates: the share of inputs whose whole ISO date comes
# out right. It uses **greedy decoding** (the course's `greedy_decode`): feed the model its own most likely
# character, step after step, until it says `<eos>`.

# %%
from amla.transformers.seq2seq import exact_match, seq2seq_loss
from amla.views import Dashboard


def loss_fn(model, batch):
    src, tgt = batch
    state, memory = model.encode(src)
    return teacher_forcing_loss(model.decoder, state, memory, tgt)  # Exercise 3.2


def validate(model):
    return {"val_exact_match": exact_match(model, src_val, tgt_val).float().mean().item()}


def train(model, steps, loss, seed=0, chunk=1):
    config = amla.TrainConfig(max_steps=steps, batch_size=S.batch, lr=S.lr, warmup_steps=steps // 20,
                              eval_every=S.eval_every, seed=seed)
    batches = BucketBatches(examples, S.batch, seed=seed, chunk=chunk)  # padded per batch; chunk=1: random batches
    trainer = amla.Trainer(model, batches, config, loss_fn=loss, eval_fn=validate, callbacks=[Dashboard()],
                           device=device)
    trainer.fit()
    return trainer


# %% [markdown]
# `train` draws its batches from `BucketBatches`, random ones (`chunk=1`) unless told otherwise. What the padding
# costs in time, measured before we train: the
# same model takes training steps on batches from each of the three batchings in turn (split-padded, per batch,
# buckets, then again), so that a machine that slows down meanwhile slows all three alike. The split-padded batch
# is the per-batch one, widened to the split's longest: the same dates, only more padding.

# %%
import time

from amla.toolkit.train import train_step

random_batches, bucketed = batchings["per batch, random batches"], batchings["per batch, length buckets"]


def split_padded(m):
    src, tgt = random_batches.batch(m)
    return (F.pad(src, (0, src_train.shape[1] - src.shape[1]), value=PAD_ID),
            F.pad(tgt, (0, tgt_train.shape[1] - tgt.shape[1]), value=PAD_ID))


draws = {"the split's longest": split_padded, "per batch, random batches": random_batches.batch,
         "per batch, length buckets": bucketed.batch}
amla.seed_everything(0)
probe = Seq2Seq.build(len(task.src_vocab), len(task.tgt_vocab), emb_dim=S.emb, hidden=S.hidden, attn_dim=S.attn,
                      attention_fn=additive_attention).to(device)
probe_opt = torch.optim.AdamW(probe.parameters(), lr=S.lr)
no_scaling = torch.amp.GradScaler(device.type, enabled=False)
step_s = {name: [] for name in draws}
for m in range(S.timing_steps + 1):
    for name, draw in draws.items():
        batch = tuple(t.to(device) for t in draw(m))
        t0 = time.perf_counter()
        train_step(probe, [batch], probe_opt, no_scaling, None, 1.0, loss_fn)  # returns a float: synchronised
        if m > 0:  # the first round warms up
            step_s[name].append(time.perf_counter() - t0)
epoch_s = {}
for name, times in step_s.items():
    median = sorted(times)[len(times) // 2]
    epoch_s[name] = median * (len(examples) // S.batch)
    print(f"{name:>27}: {median * 1e3:6.1f} ms a step, {S.batch / median:7,.0f} dates/s, "
          f"{epoch_s[name]:6.1f} s an epoch of {len(examples):,} dates")

# %%
whose = {ex: "yours" if amla.checks.yours(ex) else "the course's reference" for ex in ("3.1", "3.2")}
print(f"attention: {whose['3.1']}; loss: {whose['3.2']}")
amla.seed_everything(0)
attention_model = Seq2Seq.build(len(task.src_vocab), len(task.tgt_vocab), emb_dim=S.emb, hidden=S.hidden,
                                attn_dim=S.attn, attention_fn=additive_attention)
attention_trainer = train(attention_model, S.steps, loss_fn)
print(f"{sum(p.numel() for p in attention_model.parameters()):,} parameters")

# %% [markdown]
# Now, once, the held-out test dates, and how each format fares:

# %%
from collections import defaultdict

attention_model.eval()
attention_hits = exact_match(attention_model, src_test, tgt_test)
print(f"held-out exact match with attention: {attention_hits.float().mean():.2%} of {len(attention_hits)} dates")
per_format = defaultdict(list)
for fmt, hit in zip(task.test.tags, attention_hits.tolist()):
    per_format[fmt].append(hit)
for fmt, hits in per_format.items():
    print(f"{fmt:>24}: {sum(hits) / len(hits):7.2%} of {len(hits)}")

# %% [markdown]
# **Buckets, then?** They made a step several times cheaper (the timing above), but a bucket holds dates of about
# one length, and here the length of a date is almost its format: a batch of spelled-out dates, then one of
# digits. The same model, trained for the same number of steps on length buckets instead of random batches:

# %%
amla.seed_everything(0)
bucket_model = Seq2Seq.build(len(task.src_vocab), len(task.tgt_vocab), emb_dim=S.emb, hidden=S.hidden,
                             attn_dim=S.attn, attention_fn=additive_attention)
bucket_trainer = train(bucket_model, S.steps, loss_fn, chunk=50)
bucket_hits = exact_match(bucket_model.eval(), src_test, tgt_test)
train_seconds = {"random batches": attention_trainer.history.train[-1]["elapsed_s"],
                 "length buckets": bucket_trainer.history.train[-1]["elapsed_s"]}
for name, hits in (("random batches", attention_hits), ("length buckets", bucket_hits)):
    print(f"{name:>15}: held-out exact match {hits.float().mean():7.2%}, {S.steps} steps in "
          f"{train_seconds[name]:5.1f} s ({S.steps * S.batch / train_seconds[name]:,.0f} dates/s)")

# %% [markdown]
# Compare the two lines: what buckets save in time per step, and what they cost at a fixed number of steps. With
# the order of the formats so closely tied to the length, the batches of a bucketed epoch are not draws from the
# whole task, and the rest of this hour trains on random batches (padded per batch, which costs nothing in
# accuracy). Buckets pay where length says little about the content, as for Hour 07's sentences; with fewer
# batches per sorted run (`chunk`) they mix more and pad more.
#
# `greedy_decode` returns the characters and, for each output step, the attention weights over the input. A few
# held-out dates and, if there are any, the mistakes:

# %%
from amla.transformers.seq2seq import greedy_decode

tokens, alignments = greedy_decode(attention_model, src_test.to(device), max_len=tgt_test.shape[1])
predictions = task.tgt_vocab.decode_batch(tokens.cpu())
wrong = [i for i, hit in enumerate(attention_hits.tolist()) if not hit]
for i in list(range(6)) + wrong[:6]:
    mark = "ok" if attention_hits[i] else f"WRONG, expected {task.test.targets[i]}"
    print(f"{task.test.sources[i]!r:>58} -> {predictions[i]}  {mark}")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. The baseline without attention
#
# Same encoder, same sizes, same optimizer and learning-rate schedule; only the decoder differs: `PlainDecoder`
# sees the input through the final state $c$ alone. To be fair to it we train it twice: for the same number of
# steps as the attention model, and for twice as many. The baseline is the yardstick, so it runs on the course's
# code only (`PlainDecoder` has no attention, and it trains with `seq2seq_loss`, the course's teacher-forced loss),
# and so does the comparison below (`exact_match` with greedy decoding).

# %%
amla.seed_everything(0)
baseline = Seq2Seq.build(len(task.src_vocab), len(task.tgt_vocab), emb_dim=S.emb, hidden=S.hidden, attention=False)
baseline_trainer = train(baseline, S.steps, seq2seq_loss)

# %%
amla.seed_everything(0)
baseline_long = Seq2Seq.build(len(task.src_vocab), len(task.tgt_vocab), emb_dim=S.emb, hidden=S.hidden,
                              attention=False)
baseline_long_trainer = train(baseline_long, 2 * S.steps, seq2seq_loss)

# %% [markdown]
# **Accuracy by input length.** The test dates, grouped by the number of input characters, for the three models
# (every input of 30 characters or more is a date in words):

# %%
from matplotlib.figure import Figure

baseline_hits = exact_match(baseline, src_test, tgt_test)
baseline_long_hits = exact_match(baseline_long, src_test, tgt_test)
lengths = (src_test != PAD_ID).sum(1)
edges = [6, 10, 15, 21, 30, 50, 100]  # the shortest input, "1.1.70", has 6 characters
buckets = [(lo, hi) for lo, hi in zip(edges[:-1], edges[1:]) if ((lengths >= lo) & (lengths < hi)).any()]
labels = [f"{lo}-{hi - 1}" if hi < 100 else f"{lo}+" for lo, hi in buckets]


def by_length(hits):
    return [hits[(lengths >= lo) & (lengths < hi)].float().mean().item() for lo, hi in buckets]


curves = {
    f"attention, {S.steps} steps": by_length(attention_hits),
    f"no attention, {S.steps} steps": by_length(baseline_hits),
    f"no attention, {2 * S.steps} steps": by_length(baseline_long_hits),
}
for name, accuracy in curves.items():
    print(f"{name:>26}: " + "  ".join(f"{label} {a:6.1%}" for label, a in zip(labels, accuracy)))

# %%
fig = Figure(figsize=(7, 3.6), layout="constrained")
ax = fig.subplots()
for (name, accuracy), style in zip(curves.items(), ["o-", "s--", "^-"]):
    ax.plot(labels, accuracy, style, label=name)
counts = [int(((lengths >= lo) & (lengths < hi)).sum()) for lo, hi in buckets]
ax.set_xticks(range(len(labels)), [f"{label}\n({n} dates)" for label, n in zip(labels, counts)], fontsize=8)
ax.set_xlabel("input length (characters)")
ax.set_ylabel("held-out exact match")
ax.set_title("Accuracy by input length", fontsize=11)
ax.grid(alpha=0.3)
ax.legend(fontsize=8)
fig

# %% [markdown]
# What the curves show, in numbers (your run's, printed by the cell below):

# %%
base = curves[f"no attention, {S.steps} steps"]
longer = curves[f"no attention, {2 * S.steps} steps"]
seconds = {"attention": attention_trainer.history.train[-1]["elapsed_s"],
           "baseline": baseline_trainer.history.train[-1]["elapsed_s"]}
print(f"{S.steps} steps: attention {attention_hits.float().mean():.2%}, no attention "
      f"{baseline_hits.float().mean():.2%}; without attention best at {labels[max(range(len(base)), key=base.__getitem__)]}"
      f" characters ({max(base):.1%}), {base[-1]:.1%} for the longest inputs ({labels[-1]}) and {base[0]:.1%} for the "
      f"shortest ({labels[0]})")
print(f"time for {S.steps} steps: attention {seconds['attention']:.0f} s, no attention {seconds['baseline']:.0f} s "
      f"({seconds['baseline'] / seconds['attention']:.0%} of it)")
print(f"{2 * S.steps} steps without attention: {baseline_long_hits.float().mean():.2%}; shortest inputs "
      f"{longer[0]:.1%}, longest {longer[-1]:.1%}")

# %% [markdown]
# - **Same number of steps.** Without attention the model falls short of the attention model, and how well it does
#   depends on the input length: best in the middle, worse for the longest inputs, the dates in words, where the
#   final state has to carry the date through 30 to 60 characters of recurrence. But the *shortest* inputs
#   ("3.3.21", "20210303") are among the hardest: every one of their characters has to be stored exactly
#   (question 3).
# - **Same training time.** A step without attention costs about half as much, so in the time the attention model
#   trained the baseline does twice the steps, and then it nearly closes the gap. A date is about 15 bits; 128
#   numbers can hold it, once the model has learned how. (On the course machine, cpu profile: 100 % against
#   91.1 % after 600 steps, 99.85 % for the baseline after 1,200.)
#
# So on dates the bottleneck makes learning slower and length-dependent, but a patient baseline gets there. In
# translation a longer sentence carries *more* to remember, and the fixed-size vector then costs accuracy at any
# budget: that is what Bahdanau et al. measured. With attention none of this matters: the decoder reads the
# characters it needs, wherever they are.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. Alignment maps
#
# Stacking the weights $\alpha_{ij}$ of all output steps gives a matrix: one row per output character, one column
# per input character. Bahdanau et al. called it an **alignment**: where the model looked while writing each
# character. Pick an output character with the `query` menu; the strip below the map shades the input characters
# by its weights. (Without a live kernel you see the picture for the third output character, a digit of the year.)

# %%
from IPython.display import display

from amla.views import AttentionViewer


def alignment_viewer(i):
    n_in = int((src_test[i] != PAD_ID).sum())
    out = [task.tgt_vocab.itos[t] for t in tokens[i].tolist()]
    n_out = out.index("<eos>") + 1 if "<eos>" in out else len(out)  # the characters, then <eos>
    return AttentionViewer(alignments[i, :n_out, :n_in], out[:n_out], list(task.test.sources[i]),
                           title=f"{task.test.sources[i]}  ->  {predictions[i]}")


shown = ["yyyy.mm.dd", "weekday, month d, yyyy", "dd/mm/yyyy", "in words"]
viewers = {fmt: alignment_viewer(task.test.tags.index(fmt)) for fmt in shown if fmt in task.test.tags}
for viewer in viewers.values():
    display(viewer.select(query=min(2, len(viewer.queries) - 1)))

# %% [markdown]
# Inputs already written year-month-day give a **diagonal**: each output digit looks at the digit it copies, left
# to right. Other formats give **blocks**: inside a field (year, month, day) the attention moves forward; between
# fields it jumps to wherever the next field is written, which for "3 March 2021" means backwards. Some output
# characters copy nothing: the century of "Mar 3, 21", the leading zero of "May", the digits of "thirteenth"
# (where the "3" is said before the "1"). Their attention spreads over whatever tells the model the answer.
#
# A number for "moves forward": for each output step take the input position with the largest weight (the
# argmax), and count how often it does not move backwards from one step to the next.
#
# ### Exercise 3.3: How monotone is an alignment?
#
# Write `monotone_fraction(weights, groups)`. `weights` is [N, T, S] (N examples, T output steps, S input
# positions). `groups` is a list of tuples of output positions, e.g. `ISO_FIELDS = ((0, 1, 2, 3), (5, 6), (8, 9))`,
# the year, month and day digits of `yyyy-mm-dd`. For every example and every pair of neighbours `(g[k], g[k+1])`
# inside a group, compare the argmax input positions of the two steps (where two weights tie for the largest, the
# first of them, as `torch.argmax` gives); return the fraction of pairs (over all examples) where the position did
# not move backwards (`>=`), as a Python float.

# %%
def monotone_fraction(weights, groups):
    ### BEGIN SOLUTION
    where = weights.argmax(dim=-1)  # [N, T]: the input position each output step looks at most
    pairs = [(g[k], g[k + 1]) for g in groups for k in range(len(g) - 1)]
    before = torch.tensor([a for a, _ in pairs])
    after = torch.tensor([b for _, b in pairs])
    return (where[:, after] >= where[:, before]).float().mean().item()
    ### END SOLUTION


# %%
monotone_fraction = amla.checks.seq2seq.check_monotone_fraction(monotone_fraction)

# %% [markdown]
# Over the held-out set, with the `monotone_fraction` the check returned (yours once it passes): within the fields
# for every format, and along all eight digits for the formats written year-month-day, where the whole map should
# be a diagonal. `amla.transformers.seq2seq.alignments` collects the weights while the decoder writes the *true* ISO
# date (teacher forcing), so every row has the ten characters; for the dates the model gets right they equal the
# greedy alignments.

# %%
from amla.transformers.seq2seq import alignments as teacher_forced_alignments
from amla.transformers.tasks import ISO_FIELDS, YMD_FORMATS

aligned = teacher_forced_alignments(attention_model, src_test, tgt_test)  # [N, 11, S]: ten characters and <eos>
ymd = torch.tensor([fmt in YMD_FORMATS for fmt in task.test.tags])
monotone_fields = monotone_fraction(aligned, ISO_FIELDS)
monotone_ymd = monotone_fraction(aligned[ymd], [sum(ISO_FIELDS, ())])  # the 8 digits in a row
print(f"within year, month and day, all formats:  {monotone_fields:.1%} of steps do not move backwards")
print(f"along the 8 digits, year-month-day inputs: {monotone_ymd:.1%}")
for fmt in DATE_FORMATS:
    rows = torch.tensor([tag == fmt for tag in task.test.tags])
    if rows.any():
        print(f"{fmt:>24}: within fields {monotone_fraction(aligned[rows], ISO_FIELDS):6.1%}")

# %% [markdown]
# With the cpu profile, about 93 % of the steps inside a field move forward or stay, and 96 % along the digits of
# the year-month-day inputs. The exceptions are the characters that copy nothing: the century, the leading zero of
# a month or day written without one, and the digits of numbers in words, which is why "d.m.yy" and the two formats
# in words are the least monotone (84 to 87 %).
#
# The hour's numbers, collected by `amla bench 03` (the cpu target: held-out exact match of at least 99 %):

# %%
amla.report(
    exact_match=attention_hits.float().mean().item(),
    exact_match_baseline_same_steps=baseline_hits.float().mean().item(),
    exact_match_baseline_2x_steps=baseline_long_hits.float().mean().item(),
    baseline_same_steps_longest_inputs=curves[f"no attention, {S.steps} steps"][-1],
    baseline_same_steps_shortest_inputs=curves[f"no attention, {S.steps} steps"][0],
    baseline_same_steps_best_length=max(curves[f"no attention, {S.steps} steps"]),
    monotone_within_fields=monotone_fields,
    monotone_ymd_digits=monotone_ymd,
    steps=attention_trainer.step,
    train_s=attention_trainer.history.train[-1]["elapsed_s"],
    train_s_baseline=baseline_trainer.history.train[-1]["elapsed_s"],
    train_s_baseline_2x=baseline_long_trainer.history.train[-1]["elapsed_s"],
    padding_split=padding["the split's longest"], padding_per_batch=padding["per batch, random batches"],
    padding_buckets=padding["per batch, length buckets"], epoch_s_split=epoch_s["the split's longest"],
    epoch_s_per_batch=epoch_s["per batch, random batches"], epoch_s_buckets=epoch_s["per batch, length buckets"],
    exact_match_buckets=bucket_hits.float().mean().item(), train_s_buckets=train_seconds["length buckets"],
)

# %% [markdown]
# Your exercises, one line each. After fixing one, run its check cell again, then this one.

# %%
amla.checks.summary()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Questions
#
# 1. Why does the test set hold out *dates* rather than *strings*? What would a split by string measure instead?
# 2. In Exercise 3.1, what goes wrong if the padded scores are set to 0 instead of $-\infty$, and if the padding is
#    zeroed after the softmax?
# 3. The shortest inputs ("3.3.21", "20210303") are not the easiest for the model without attention. Why might a
#    short string of digits be harder to squeeze through one vector than a long date in words?
# 4. Teacher forcing feeds the true previous character. What happens at test time after the model's first wrong
#    character, and why does this matter less for dates than for long sentences?
# 5. The alignment of "3 March 2021" is not monotone, and the century of "Mar 3, 21" looks at no single character.
#    Is the model wrong? What would a perfectly monotone alignment require of the input format?
# 6. The keys are projected once per sequence ($W_k h_j$) but the query at every step. With $S$ input and $T$ output
#    positions, how many score computations does one sequence need, and what would you precompute in Hour 05's
#    Transformer instead?
# 7. Length buckets put dates of about one length into a batch, and the length of a date depends on its format.
#    What could that do to training, and what in `BucketBatches` keeps it in check?

# %% [markdown] tags=["answer"]
# 1. A split by string would let "3 March 2021" be tested while "03/03/2021" was trained on: the model would only
#    need to recognise a date it has already been taught to write, in a new costume. Holding out dates asks for
#    what we want: reading the day, month and year of a date it has never seen and writing them in a new order.
# 2. With 0, padding gets $e^0 = 1$ before normalisation, as much as a real character whose score is 0, so the
#    context mixes in the (zero) padding states and the real weights shrink. Zeroing after the softmax removes the
#    padding but leaves the real weights summing to less than 1, by a different amount in every sequence, so the
#    context is scaled down more for longer padding. Only $-\infty$ before the softmax gives exactly 0 at padding
#    and weights that sum to 1 over the real characters.
# 3. Every character of "20210303" must be reproduced exactly, and nothing in it is redundant: the final state
#    has to store eight digits and their order. "the third of March, two thousand twenty-one" carries the same
#    three numbers in many characters, and the encoder can turn each word into its value as it reads. With
#    attention neither is hard: the decoder copies the digit it looks at.
# 4. The wrong character is fed back as the next input, a prefix the model never saw in training, and errors can
#    compound. A date is ten characters whose fields hardly depend on each other and the attention looks at the
#    input afresh at every step, so one slip rarely derails the rest; in a 30-word sentence the decoder's own
#    history matters much more. Remedies: scheduled sampling, or beam search at test time (Hour 05).
# 5. No: ISO writes the year first, so the year digits must look at the end of "3 March 2021" and the day digits
#    at its start; the attention follows the *meaning*, not the position. The century of "21" is inferred (by the
#    rule 70-99 -> 19xx), so it looks at the digits that decide it. A monotone alignment needs an input in the
#    output's order in which every output character is written out, like "2021.03.03".
# 6. $S \times T$ scores, each a tanh of an $A$-vector and a dot product with $v$; the key projection $W_k h_j$ is
#    $S$ matrix-vector products, done once. The decoder state changes every step, so $W_q s_{i-1}$ cannot be
#    precomputed. In a Transformer's cross-attention the keys and values of the encoder output are projected once
#    and reused at every decoding step (the same idea as the KV cache of Hour 06).
# 7. A batch of spelled-out dates only, then one of digits only: each gradient is then an estimate for a few
#    formats, not for the mix, which makes the steps noisier and can tilt the model towards the formats of the
#    last batches. `BucketBatches` sorts only within runs of 50 batches drawn at random, so each batch is still a
#    random draw from its run, and it shuffles the batches, so that the formats alternate; a run with fewer batches
#    (`chunk`) mixes more and pads more. Whether it hurts is measured in Section 5: here it did, which is why the
#    hour trains on random batches.

# %% [markdown]
# **Next hour:** multi-head attention and the Transformer block, where attention replaces the recurrence too.
