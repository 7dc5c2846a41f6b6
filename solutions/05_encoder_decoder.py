# %% tags=["setup"]
# Course set-up, the same in every hour. On Colab it installs the course package `amla`
# (and what this hour needs); elsewhere `make lab` has installed it already.
import sys, subprocess
if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", 'amla @ git+https://github.com/amla-course/amla@main'], check=True)
import amla
device = amla.setup(hour=5, seed=0)  # picks cuda > mps > cpu, seeds, prints the profile

# %% [markdown] slideshow={"slide_type": "slide"}
# # Hour 05: The encoder-decoder Transformer
#
# Hour 03 translated dates with a recurrent encoder-decoder and additive attention; Hour 04 built multi-head
# attention and the Transformer block. This hour puts the blocks together into the model of "Attention is all you
# need" (Vaswani et al., 2017): an **encoder** that reads the whole input at once, a **decoder** that writes the
# output one token at a time, and **cross-attention** between them. We train it on **multi-digit addition**, a
# task where every output digit depends on several input digits and on a carry, then on Hour 03's dates, and
# decode with greedy and **beam search**.
#
# **By the end of this hour you can**
# - explain **cross-attention**: queries from the decoder, keys and values from the encoder's output;
# - build the masks of an encoder-decoder: **source padding** (encoder self-attention and cross-attention),
#   **causal + target padding** (decoder self-attention);
# - write the **decoder block**: masked self-attention, cross-attention on the encoder's memory and the
#   feed-forward net, each in a pre-norm residual branch;
# - train with **teacher forcing** in one parallel pass and write **label-smoothed cross-entropy**;
# - decode **greedily** and with **beam search**, and say what **length normalisation** is for;
# - measure why writing the sum **least significant digit first** makes addition easier to learn;
# - read **cross-attention maps**: which input digits each output digit looks at.
#
# **How the exercises work.** Each exercise is a function with a `# YOUR CODE HERE` line. Replace the
# `raise NotImplementedError(...)` with your code and run the check cell below it, such as
# `decoder_block = amla.checks.encoder_decoder.check_decoder_block(decoder_block)`. The check runs your function
# on ordinary and edge inputs against the course's reference (values, dtype, gradients, and whether your inputs were
# left alone):
# - right: the check returns your function, and **the rest of the hour runs on your code**: every decoder block of
#   the models you train is your `decoder_block`, they are trained with your loss, and beam search runs on your
#   beam step;
# - wrong: it stops there and names the most likely mistake, or the property your answer breaks;
# - not written yet: one line says so and the check returns the course's reference, so Run All shows you the
#   whole hour first.
#
# `amla.checks.summary()` at the end lists which exercises you have done.
#
# **Runtime** (whole notebook, measured with `amla bench 05` on an idle 2-core CPU): smoke profile about 11 s; cpu
# profile about 3 min 40 s (216 s) on a fast day, of which about 2 min 50 s are three training runs: addition with
# reversed results (1,200 steps, 43 s, 100 % exact match on 2,000 held-out sums), the same in the usual digit order
# (38 s) and Hour 03's dates (600 steps, 86 s). On a slow day the same machine took about 5 min 20 s (66, 65 and
# 122 s). On a machine whose cores are busy with other jobs it can take several times longer.
# The `gpu` profile trains a wider, deeper model on more data for more steps.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. Addition as translation
#
# `amla.transformers.tasks.addition_task` writes sums such as `"123+4567="` and their results `"4690"`. Each
# operand has 1 to 4 digits (the number of digits is drawn first, so short and long operands are equally common).
# The split holds out **pairs of operands**: if `123+4567` is a test question, neither it nor `4567+123` is ever
# trained on, so the test measures whether the model learned to add, not whether it remembers sums. The tag of a
# pair says how many digits each operand has.
#
# With `reverse=True` the result is written **least significant digit first**: `"4690"` becomes `"0964"`. That is
# the order in which we add by hand: the units digit needs only the two units digits; the tens digit needs the
# two tens digits and the carry out of the units, which the decoder has *just written*. In the usual order the
# very first output digit already depends on every carry of the sum. We train with reversed results and measure
# the usual order against it in Section 6.
#
# The sizes of this hour, per profile:

# %%
S = amla.per_profile(
    smoke=dict(n_train=2000, n_val=100, n_test=200, d_model=32, heads=2, layers=1, batch=64, lr=3e-3, steps=40,
               eval_every=20, dates=(2000, 200, 300), date_steps=20, beam=3),
    cpu=dict(n_train=50000, n_val=500, n_test=2000, d_model=64, heads=4, layers=2, batch=128, lr=3e-3, steps=1200,
             eval_every=300, dates=(30000, 1000, 2000), date_steps=600, beam=4),
    gpu=dict(n_train=200000, n_val=1000, n_test=5000, d_model=128, heads=4, layers=3, batch=256, lr=2e-3,
             steps=3000, eval_every=500, dates=(100000, 2000, 5000), date_steps=2000, beam=4),
)
print(amla.profile(), S)

# %%
from amla.transformers.tasks import addition_task

task = addition_task(S.n_train, S.n_val, S.n_test, max_digits=4, reverse=True, seed=0)
print(f"train {len(task.train)} sums, validation {len(task.val)}, test {len(task.test)}")
print(task.src_vocab, task.tgt_vocab, sep="\n")
for source, target, tag in list(zip(task.train.sources, task.train.targets, task.train.tags))[:5]:
    print(f"{source:>10} -> {target:<6} (the sum is {task.read(target)}, operands {tag})")

# %% [markdown]
# Sources and targets become padded id tensors with Hour 03's `Vocab`: `<pad>` = 0, `<bos>` = 1, `<eos>` = 2, and
# every target ends with `<eos>`.

# %%
from amla.transformers.tasks import PAD_ID

src_train, tgt_train = task.train.tensors(task.src_vocab, task.tgt_vocab)
src_val, tgt_val = task.val.tensors(task.src_vocab, task.tgt_vocab)
src_test, tgt_test = task.test.tensors(task.src_vocab, task.tgt_vocab)
print("sources", tuple(src_train.shape), " targets", tuple(tgt_train.shape))
print(task.train.sources[0], "->", src_train[0].tolist(), "   ", task.train.targets[0], "->", tgt_train[0].tolist())

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. Encoder, decoder, and cross-attention
#
# The **encoder** is Hour 04's `TransformerEncoder`: embeddings plus sinusoidal positions, then $N$ blocks of
# self-attention and feed-forward. Its output, one vector per source token, is the **memory**
# $M \in \mathbb{R}^{S \times d}$. It is computed once per input.
#
# The **decoder** reads the output written so far, $y_0 = \texttt{<bos>}, y_1, \dots, y_{t}$, and predicts
# $y_{t+1}$. Each of its blocks has three residual branches (pre-norm, as in Hour 04):
# 1. **causal self-attention** over the output so far: position $i$ may look at positions $j \le i$ only;
# 2. **cross-attention**: the decoder states $X$ ask, the memory answers,
#    $$Q = X W_Q, \qquad K = M W_K, \qquad V = M W_V, \qquad
#    \operatorname{CrossAttn}(X, M) = \operatorname{softmax}\!\Big(\frac{Q K^\top}{\sqrt{d_k}} + \text{mask}\Big) V ;$$
#    the weights are a $T \times S$ matrix, one row per output position, one column per input token: Hour 03's
#    alignment, now per layer and per head;
# 3. the position-wise feed-forward network.
#
# A final LayerNorm and a linear layer give the logits over the target vocabulary. Cross-attention is Hour 04's
# `MultiHeadAttention` called with `kv=memory`; what is new is the decoder block around it, which you write in
# Exercise 5.1 once the masks are clear. The model, `amla.transformers.encoder_decoder.EncoderDecoder`, runs its
# decoder blocks like this (`decoder_block_fn` is where yours goes):

# %%
import inspect

from amla.transformers.encoder_decoder import EncoderDecoder

print(inspect.getsource(EncoderDecoder.decode))

# %%
amla.seed_everything(0)
model = EncoderDecoder(len(task.src_vocab), len(task.tgt_vocab), d_model=S.d_model, n_heads=S.heads,
                       n_layers=S.layers, max_len=32)
print(f"{sum(p.numel() for p in model.parameters()):,} parameters")
memory, src_mask = model.encode(src_train[:4])
print("memory", tuple(memory.shape), " source mask", tuple(src_mask.shape))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. Masks: padding on both sides, causality in the decoder
#
# A batch pads its sources and targets with `<pad>`. Three attentions, three masks (bool, True = may attend, as in
# Hour 02):
# - **encoder self-attention**: no query may look at a padded source token: `source_mask(src)`, shape [B, 1, S];
# - **cross-attention**: the same source mask, since the keys are the source tokens;
# - **decoder self-attention**: position $i$ may look at position $j$ if $j \le i$ (**causal**) and $y_j$ is not
#   padding: shape [B, 1, T, T], the 1 broadcasts over the heads.
#
# Why causal: in training the decoder sees the *whole* target at once (Section 4). Without the mask, the position
# that must predict $y_{t+1}$ could simply look at $y_{t+1}$.
#
# ### Exercise 5.1: The decoder block
#
# Write `decoder_block(block, x, memory, src_mask, tgt_in)`, one decoder block's forward pass. The arguments:
# - `block`, a `TransformerBlock` built with `cross_attention=True`; its parts are `block.norm1` and
#   `block.self_attn`, `block.norm_cross` and `block.cross_attn`, `block.norm2` and `block.ff` (the feed-forward
#   net), and `block.drop` (the dropout on each branch's output). An attention layer is called as
#   `attn(queries, kv, mask)` with `kv=None` for self-attention, and returns `(output, weights)`;
# - `x` [B, T, d], the decoder's states; `memory` [B, S, d] and `src_mask` [B, 1, S], from `model.encode`;
# - `tgt_in` [B, T], the decoder's input ids (`<bos>`, then the target tokens, then `PAD_ID`), for the mask.
#
# First build the self-attention mask, a bool tensor [B, 1, T, T] whose entry `[b, 0, i, j]` is True when query `i`
# may attend key `j`: `j <= i` and `tgt_in[b, j]` is not padding (create new tensors on `tgt_in.device`, so that
# it also works on a GPU). Then the three pre-norm branches, each `x = x + drop(f(norm(x)))`:
#
# $$x \leftarrow x + \operatorname{SelfAttn}(\operatorname{LN}_1(x);\ \text{mask}), \qquad
#   x \leftarrow x + \operatorname{CrossAttn}(\operatorname{LN}_c(x), M;\ \text{src\_mask}), \qquad
#   x \leftarrow x + \operatorname{FFN}(\operatorname{LN}_2(x)).$$

# %%
import torch


def decoder_block(block, x, memory, src_mask, tgt_in):
    ### BEGIN SOLUTION
    t = tgt_in.shape[1]
    causal = torch.ones(t, t, dtype=torch.bool, device=tgt_in.device).tril()  # j <= i
    mask = causal & (tgt_in != PAD_ID)[:, None, None, :]  # and key j is a real token
    x = x + block.drop(block.self_attn(block.norm1(x), None, mask)[0])
    x = x + block.drop(block.cross_attn(block.norm_cross(x), memory, src_mask)[0])  # queries x, keys/values memory
    return x + block.drop(block.ff(block.norm2(x)))
    ### END SOLUTION


# %%
decoder_block = amla.checks.encoder_decoder.check_decoder_block(decoder_block)

# %% [markdown]
# With padding on the right, as here, a real position never sees padding anyway: padding comes after it and the
# causal mask already hides the future. The padding mask matters for the padded *rows* (whose outputs the loss
# ignores) and for any batch padded on the left.
#
# `EncoderDecoder(..., decoder_block_fn=decoder_block)` runs every decoder block with the function the check
# returned: yours once Exercise 5.1 passes (while it is not done, the reference stands in for it). Two properties we
# can test on an untrained model built that way: changing a later target token does not change the logits of
# earlier positions, and more padding on the sources changes nothing.

# %%
amla.seed_everything(0)
model = EncoderDecoder(len(task.src_vocab), len(task.tgt_vocab), d_model=S.d_model, n_heads=S.heads,
                       n_layers=S.layers, max_len=32, decoder_block_fn=decoder_block).eval()
print("decoder block:", "yours" if amla.checks.yours("5.1") else "the course's reference (Exercise 5.1 not done yet)")
src, tgt = src_train[:8], tgt_train[:8]
logits = model(src, tgt)
changed = tgt.clone()
changed[:, 2] = (changed[:, 2] + 1) % len(task.tgt_vocab)
print("positions 0-2 unchanged after changing token 2:",
      torch.allclose(model(src, changed)[:, :3], logits[:, :3], atol=1e-5))
print("position 3 changed:", not torch.allclose(model(src, changed)[:, 3], logits[:, 3]))
more_padding = torch.nn.functional.pad(src, (0, 5), value=PAD_ID)
print("5 more pads on the sources change nothing:", torch.allclose(model(more_padding, tgt), logits, atol=1e-5))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. Teacher forcing and label smoothing
#
# **Teacher forcing, in parallel.** Hour 03's GRU decoder needed a loop over the target positions. Here the decoder
# input is the target shifted right by one, `<bos>` first (`shift_right`), and one forward pass gives the logits of
# every position; the causal mask makes position $t$ see only $y_{<t}$, exactly as if we had looped.
#
# **Label smoothing.** Cross-entropy against a one-hot target rewards pushing $p(y)$ to 1, so logits grow without
# bound and the model becomes over-confident. Vaswani et al. trained against a softened target: with smoothing
# $\varepsilon$ and $V$ classes,
# $$q(c) = (1 - \varepsilon)\,[c = y] + \frac{\varepsilon}{V}, \qquad
# \ell = -\sum_{c=1}^{V} q(c) \log p(c) = (1 - \varepsilon)\,\big(-\log p(y)\big) + \varepsilon \cdot \frac{1}{V}\sum_{c=1}^{V}
# \big(-\log p(c)\big).$$
# The second term is the cross-entropy with the uniform distribution: it pulls every log-probability up a little.
# The loss of a batch is the mean of $\ell$ over the **real** target tokens; padding is ignored. This is exactly
# what `F.cross_entropy(logits, y, label_smoothing=eps, ignore_index=PAD_ID)` computes: every class, `<pad>`
# included, gets $\varepsilon / V$. (Other codebases spread $\varepsilon$ over the $V - 1$ wrong classes, or leave
# out `<pad>`; the differences are small, but they are different losses.)
#
# ### Exercise 5.2: Label-smoothed cross-entropy
#
# Write `label_smoothed_cross_entropy(logits, targets, smoothing)`: `logits` [B, T, V], `targets` [B, T] with
# `PAD_ID` after `<eos>`, `smoothing` the $\varepsilon$ above. Return the mean of $\ell$ over the positions whose
# target is not `PAD_ID` (a scalar tensor). Use `log_softmax`, not `softmax` then `log`.

# %%
def label_smoothed_cross_entropy(logits, targets, smoothing):
    ### BEGIN SOLUTION
    logp = logits.log_softmax(dim=-1)  # [B, T, V]
    nll = -logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # -log p(y)   [B, T]
    uniform = -logp.mean(dim=-1)  # (1/V) sum_c -log p(c)   [B, T]
    per_token = (1 - smoothing) * nll + smoothing * uniform
    real = targets != PAD_ID  # the positions that count
    return (per_token * real).sum() / real.sum()  # the mean over the real tokens
    ### END SOLUTION


# %%
label_smoothed_cross_entropy = amla.checks.encoder_decoder.check_label_smoothing(label_smoothed_cross_entropy)

# %% [markdown]
# And the loss the check returned (yours once Exercise 5.2 passes) against PyTorch's own, on the untrained model's
# logits:

# %%
import torch.nn.functional as F

whose = "yours" if amla.checks.yours("5.2") else "reference"
with torch.no_grad():
    logits = model(src_train[:64], tgt_train[:64])
for eps in (0.0, 0.1):
    ours = label_smoothed_cross_entropy(logits, tgt_train[:64], eps)
    torchs = F.cross_entropy(logits.flatten(0, 1), tgt_train[:64].flatten(), ignore_index=PAD_ID, label_smoothing=eps)
    print(f"eps={eps}: {whose} {ours.item():.6f}   F.cross_entropy {torchs.item():.6f}")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. Training on addition
#
# `amla.transformers.encoder_decoder.translation_loss` is the Trainer's `loss_fn`: teacher forcing, then
# `loss=label_smoothed_cross_entropy` with $\varepsilon = 0.1$. The model below is built from your pieces: its
# decoder blocks run the `decoder_block` of Exercise 5.1 and it is trained with the `label_smoothed_cross_entropy`
# of Exercise 5.2, as the checks returned them; while an exercise is not done, the reference stands in for it. The
# other models of this hour (Sections 6 and 9) use the same two functions. We watch the **exact match** on the
# validation sums: the share whose whole result, `<eos>` included, comes out right with greedy decoding (Section 7).

# %%
import functools

from amla.transformers.encoder_decoder import exact_match, translation_loss
from amla.views import Dashboard

loss_fn = functools.partial(translation_loss, smoothing=0.1, loss=label_smoothed_cross_entropy)


def train(model, data, steps, validation, eval_every=S.eval_every, seed=0):
    config = amla.TrainConfig(max_steps=steps, batch_size=S.batch, lr=S.lr, warmup_steps=steps // 20,
                              eval_every=eval_every, seed=seed)
    validate = lambda m: {"val_exact_match": exact_match(m, *validation).float().mean().item()}  # noqa: E731
    trainer = amla.Trainer(model, data, config, loss_fn=loss_fn, eval_fn=validate, callbacks=[Dashboard()],
                           device=device)
    trainer.fit()
    return trainer


amla.seed_everything(0)
model = EncoderDecoder(len(task.src_vocab), len(task.tgt_vocab), d_model=S.d_model, n_heads=S.heads,
                       n_layers=S.layers, max_len=32, decoder_block_fn=decoder_block)
print("decoder block:", "yours" if amla.checks.yours("5.1") else "the reference",
      "  loss:", "yours" if amla.checks.yours("5.2") else "the reference")
trainer = train(model, (src_train, tgt_train), S.steps, (src_val, tgt_val))

# %% [markdown]
# Once, the held-out test sums, by the number of digits of the operands:

# %%
from collections import defaultdict

hits = exact_match(model, src_test, tgt_test)
print(f"held-out exact match: {hits.float().mean():.2%} of {len(hits)} sums")
per_tag = defaultdict(list)
for tag, hit in zip(task.test.tags, hits.tolist()):
    per_tag[tag].append(hit)
print("  ".join(f"{tag}: {sum(h) / len(h):.0%}" for tag, h in sorted(per_tag.items())))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. Does the digit order matter?
#
# The same model (with the same decoder block and loss, yours once Exercises 5.1 and 5.2 pass), the same data and
# the same number of steps, but the results written the usual way, most significant digit first:

# %%
plain_task = addition_task(S.n_train, S.n_val, S.n_test, max_digits=4, reverse=False, seed=0)
assert plain_task.train.sources == task.train.sources  # the same questions; only the answers' order differs
plain_train = plain_task.train.tensors(plain_task.src_vocab, plain_task.tgt_vocab)
plain_val = plain_task.val.tensors(plain_task.src_vocab, plain_task.tgt_vocab)
plain_test = plain_task.test.tensors(plain_task.src_vocab, plain_task.tgt_vocab)
amla.seed_everything(0)
plain_model = EncoderDecoder(len(task.src_vocab), len(task.tgt_vocab), d_model=S.d_model, n_heads=S.heads,
                             n_layers=S.layers, max_len=32, decoder_block_fn=decoder_block)
plain_trainer = train(plain_model, plain_train, S.steps, plain_val)
plain_hits = exact_match(plain_model, *plain_test)
print(f"held-out exact match, usual order: {plain_hits.float().mean():.2%}   reversed: {hits.float().mean():.2%}")
for name, tr in [("reversed", trainer), ("usual order", plain_trainer)]:
    steps, values = tr.history.series("val_exact_match")
    print(f"{name:>12}: " + "  ".join(f"step {s}: {v:.1%}" for s, v in zip(steps, values)))

# %% [markdown]
# What we measured (cpu profile; the history printed above gives every step): with reversed results the validation
# exact match jumps to nearly 100 % within a few hundred steps and the test sums come out 100 % right; in the usual
# order the model learns more slowly and ends below 100 % on the test sums. How far below depends on the run: on the
# course's 2-core machine 97.45 % one day and 95.65 % another (the virtual machine behind it changes between days),
# on a CPU without AVX-512 99.35 %, with the same code, data and seed; your run prints its own. The same network
# learns both, but the usual order is harder: its first digit depends on every carry below it (question 6).

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. Greedy decoding and beam search
#
# At test time there is no target to feed: the decoder must read its own output. **Greedy decoding** takes the most
# likely token at every step and feeds it back, until `<eos>`. It can miss the most likely *sequence*: a token
# that looks best now may lead to a poor continuation.
#
# **Beam search** keeps the $K$ most likely partial outputs (the *beams*). At every step each beam is extended by
# every token, the score of an extension is the beam's summed log-probability plus the token's,
# $$\text{score}(y_{1..t+1}) = \sum_{i=1}^{t+1} \log p(y_i \mid y_{<i}, x),$$
# and the best $K$ of all $K \times V$ extensions survive. A beam that has said `<eos>` is finished: it stays in the
# race, extended by `<pad>` at no cost. With $K = 1$ this is greedy decoding.
#
# ### Exercise 5.3: One step of beam search
#
# Write `beam_step(scores, log_probs, finished)` for $B$ examples with $K$ beams each: `scores` [B, K] the beams'
# summed log-probabilities, `log_probs` [B, K, V] the model's next-token log-probabilities, `finished` [B, K] bool.
# For a finished beam, replace its row of `log_probs` by 0 at `PAD_ID` and $-\infty$ elsewhere. Then add the scores,
# flatten to [B, K V], keep the top $K$, and return `(new_scores, parent, token)`, each [B, K]: new beam $k$ is old
# beam `parent[:, k]` followed by `token[:, k]`.

# %%
def beam_step(scores, log_probs, finished):
    ### BEGIN SOLUTION
    b, k, v = log_probs.shape
    only_pad = torch.full_like(log_probs, float("-inf"))
    only_pad[..., PAD_ID] = 0.0
    log_probs = torch.where(finished.unsqueeze(-1), only_pad, log_probs)
    total = (scores.unsqueeze(-1) + log_probs).reshape(b, k * v)
    new_scores, index = total.topk(k, dim=-1)
    return new_scores, index // v, index % v
    ### END SOLUTION


# %%
beam_step = amla.checks.encoder_decoder.check_beam_step(beam_step)

# %% [markdown]
# `amla.transformers.encoder_decoder.beam_search(..., beam_step_fn=beam_step)` runs the step it is given in a loop;
# every beam search below (and `exact_match(..., beam_size=K, beam_step_fn=beam_step)`) runs on the `beam_step`
# the check returned: yours once Exercise 5.3 passes, the reference while it is not done. It starts with one live
# beam (the others at $-\infty$, or all $K$ beams would be the same), reorders the beams' tokens by `parent` after
# every step, and stops when every beam has finished.
#
# **Length normalisation.** Every token adds a negative log-probability, so a sum favours *short* outputs: a beam
# that says `<eos>` early escapes the later penalties. When the finished beams are compared at the end, their scores
# are divided by $\text{length}^\alpha$: $\alpha = 0$ compares raw sums, $\alpha = 1$ the mean log-probability per
# token (Wu et al., 2016, use a smoothed version of the same idea).

# %%
from amla.transformers.encoder_decoder import beam_search, greedy_decode

model.eval()
greedy = greedy_decode(model, src_test[:200], tgt_test.shape[1])
beam1, _ = beam_search(model, src_test[:200], tgt_test.shape[1], beam_size=1, beam_step_fn=beam_step)
print("beam step:", "yours" if amla.checks.yours("5.3") else "the course's reference (Exercise 5.3 not done yet)")
print("beam search with K = 1 equals greedy decoding:", torch.equal(beam1, greedy))

# %% [markdown]
# Exact match on the test sums with greedy decoding and with a beam, raw and length-normalised, for both models:

# %%
import time

decoding = {}
for name, m, (s, t) in [("reversed", model, (src_test, tgt_test)), ("usual order", plain_model, plain_test)]:
    for label, kw in [("greedy", dict(beam_size=1)), (f"beam {S.beam}", dict(beam_size=S.beam, beam_step_fn=beam_step)),
                      (f"beam {S.beam}, alpha=1", dict(beam_size=S.beam, length_penalty=1.0, beam_step_fn=beam_step))]:
        t0 = time.perf_counter()
        decoding[name, label] = exact_match(m, s, t, **kw).float().mean().item()
        print(f"{name:>12}, {label:<16} {decoding[name, label]:8.2%}   ({time.perf_counter() - t0:.1f} s)")

# %% [markdown]
# Read the table above. Where greedy decoding is already at 100 % (the reversed model in the cpu profile), a beam
# has nothing to add. Otherwise a beam can only help on sums whose greedy choice went wrong early while a second
# hypothesis kept the right digit; how many there are changes from run to run (on the course machine one cpu run
# gained 0.35 points with a beam of 4, another gained nothing), so compare the rows of your own run. The beam costs
# about its width times the decoding time (the times in brackets). Here all outputs of one question have nearly the same length,
# so length normalisation hardly matters; in translation, where outputs of very different lengths compete, it does.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 8. Cross-attention maps
#
# `cross_attention_maps(model, src, tokens)` runs the decoder over `<bos>` + the output and returns the
# cross-attention weights [B, layers, heads, T, S]. Row $t$ belongs to the step that *writes* output token $t$. In
# the viewer the queries are the output digits (reversed: units first) and the keys are the input characters.
# Pick a layer, a head or all heads, and an output digit.

# %%
from IPython.display import display

from amla.transformers.encoder_decoder import cross_attention_maps
from amla.views import AttentionViewer

tokens = greedy_decode(model, src_test, tgt_test.shape[1])
maps = cross_attention_maps(model, src_test, tokens)


def cross_viewer(i):
    n_in = int((src_test[i] != PAD_ID).sum())
    out = [task.tgt_vocab.itos[t] for t in tokens[i].tolist()]
    n_out = out.index("<eos>") + 1 if "<eos>" in out else len(out)
    title = f"{task.test.sources[i]}{task.read(task.tgt_vocab.decode(tokens[i]))}  (written {''.join(out[:n_out - 1])})"
    return AttentionViewer(maps[i, :, :, :n_out, :n_in], out[:n_out], list(task.test.sources[i]), title=title,
                           layer_names=[f"decoder layer {l}" for l in range(maps.shape[1])])


example = next(i for i, tag in enumerate(task.test.tags) if tag == "4+4")
viewer = cross_viewer(example)
display(viewer.select(layer=-1, query=1, all_heads=True))

# %% [markdown]
# A number for "looks at the right digits": for output digit $k$ (units = 0), the input digits that matter are
# digit $k$ of each operand, counted from the right. Summing the last layer's weights on them, averaged over the
# heads, over the test sums whose operands both have 4 digits:

# %%
def digit_positions(source, k):
    """Input positions of digit k (from the right) of both operands, if they have one."""
    a, b = source.rstrip("=").split("+")
    where = [len(a) - 1 - k] if k < len(a) else []
    return where + ([len(a) + len(b) - k] if k < len(b) else [])


four = [i for i, tag in enumerate(task.test.tags) if tag == "4+4"]
mass, carry_mass = defaultdict(list), []
for i in four:
    for k in range(4):
        row = maps[i, -1, :, k].mean(0)  # output digit k's cross-attention, averaged over the heads
        mass[k].append(row[digit_positions(task.test.sources[i], k)].sum().item())
        if k > 0:  # digit k-1 of the operands: where the carry into digit k comes from
            carry_mass.append(row[digit_positions(task.test.sources[i], k - 1)].sum().item())
aligned_mass = sum(sum(v) for v in mass.values()) / sum(len(v) for v in mass.values())
carry_share = sum(carry_mass) / len(carry_mass)
print("  ".join(f"digit {k}: {sum(v) / len(v):.0%}" for k, v in mass.items()), f"  all: {aligned_mass:.0%}")
print(f"on digit k-1 of the operands (the carry's source), digits 1-3: {carry_share:.0%}")

# %% [markdown]
# The first line is the share of the last layer's cross-attention that an output digit puts on the two input digits
# it is the sum of (about 90 % in the course's cpu runs); the second, how much of it lies on the next lower digits
# of the operands, where a carry would come from. Together they say where the attention goes, not that the model
# uses it (Hour 04's ablation is the test for that). Nobody told the model where the digits of the operands are:
# with operands of different lengths it has to find digit $k$ from the right of each by content and position.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 9. Back to dates: the Transformer against Hour 03's GRU
#
# Hour 03's GRU with additive attention reached 100 % exact match on 2,000 held-out dates with the cpu profile
# (600 steps, about a minute). The same data split (`date_task` with the same sizes and seed), a Transformer of this
# hour's size (with the same decoder block and loss as above), trained for the same number of steps with the same
# batch size:

# %%
from amla.transformers.tasks import date_task

dates = date_task(*S.dates, seed=0)  # Hour 03's sizes: the same training, validation and test dates
date_train = dates.train.tensors(dates.src_vocab, dates.tgt_vocab)
date_val = dates.val.tensors(dates.src_vocab, dates.tgt_vocab)
date_test = dates.test.tensors(dates.src_vocab, dates.tgt_vocab)
amla.seed_everything(0)
date_model = EncoderDecoder(len(dates.src_vocab), len(dates.tgt_vocab), d_model=S.d_model, n_heads=S.heads,
                            n_layers=S.layers, max_len=80, decoder_block_fn=decoder_block)
date_trainer = train(date_model, date_train, S.date_steps, date_val, eval_every=S.date_steps // 3)
date_hits = exact_match(date_model, *date_test)
print(f"held-out exact match on dates: {date_hits.float().mean():.2%} of {len(date_hits)}")
print(f"{sum(p.numel() for p in date_model.parameters()):,} parameters (Hour 03 prints its GRU's count)")

# %% [markdown]
# Compare the printed exact match with Hour 03's (100 % in the course's cpu runs after the same 600 steps; 99.05
# to 99.45 % for this Transformer there). This is one seed per model and the two models are not matched in size,
# so it does not show that one architecture is better: only that at this budget the Transformer has no advantage on
# this small task. A plausible reason is that a recurrence reads the characters in order by construction, while
# the Transformer must learn order from its position encodings. Its strengths lie elsewhere: it
# reads the whole input in parallel, and it keeps improving with size and data (Hours 06 to 09).
#
# The hour's numbers, collected by `amla bench 05` (the cpu target: held-out addition exact match of at least 99 %):

# %%
amla.report(
    exact_match=hits.float().mean().item(),
    exact_match_usual_order=plain_hits.float().mean().item(),
    exact_match_beam=decoding["reversed", f"beam {S.beam}"],
    exact_match_usual_order_beam=decoding["usual order", f"beam {S.beam}"],
    exact_match_usual_order_beam_normalised=decoding["usual order", f"beam {S.beam}, alpha=1"],
    aligned_attention_mass=aligned_mass,
    date_exact_match=date_hits.float().mean().item(),
    steps=trainer.step,
    train_s=trainer.history.train[-1]["elapsed_s"],
    train_s_usual_order=plain_trainer.history.train[-1]["elapsed_s"],
    train_s_dates=date_trainer.history.train[-1]["elapsed_s"],
)

# %% [markdown]
# Your exercises, one line each. After fixing one, run its check cell again, then this one.

# %%
amla.checks.summary()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Questions
#
# 1. In cross-attention, which of $Q$, $K$, $V$ come from the decoder and which from the encoder? What is the shape
#    of the weights, and why can the keys and values be computed once per input while decoding?
# 2. The decoder's self-attention is causal but the encoder's is not. Why may the encoder look at the whole input,
#    and what would go wrong in training if the decoder could?
# 3. With padding on the right, the target padding mask does not change the loss at all (Section 3). Why? Which
#    mask would you get wrong first if the batches were padded on the left?
# 4. With $\varepsilon = 0.1$ and $V = 13$, what probability does the smoothed target give the right token and each
#    other token? What is the smallest possible value of the loss, and why is it not 0?
# 5. Why is beam search with $K = 1$ the same as greedy decoding, and why do raw summed log-probabilities favour
#    short outputs?
# 6. Reversing the digits of the result made addition easier to learn. Which input digits does output digit $k$
#    depend on in each order? Would reversing the *operands* instead help as much?
# 7. Your decoder block normalises x before the cross-attention but not the memory. Why does the memory need no
#    LayerNorm of its own there, and what would change if the three branches were applied in another order (say,
#    cross-attention first)?

# %% [markdown] tags=["answer"]
# 1. The queries come from the decoder (one per output position); the keys and values from the encoder's output,
#    the memory. The weights are [T, S] per head: for each output position, a distribution over the input tokens.
#    The memory does not change while the output is written, so $M W_K$ and $M W_V$ can be computed once and reused
#    at every step; only the new query is new (Hour 06's KV cache does the same for self-attention).
# 2. The input is given in full before decoding starts, so every input token may use every other. The decoder is
#    trained on the whole target at once (teacher forcing); without the causal mask the position that predicts
#    $y_{t+1}$ could read $y_{t+1}$ itself, the loss would fall to almost 0, and at test time, where the future is
#    not there, the model would fail.
# 3. Right padding comes after the real tokens and the causal mask already hides later positions from each real
#    query; only the padded rows see padding, and the loss ignores them. With left padding the padding sits
#    *before* the real tokens, inside the causal window: forgetting the target padding mask would let real positions
#    attend to padding. (The source padding mask matters in either case: without it, every query attends to
#    padding.)
# 4. Every class gets $\varepsilon / V = 0.1 / 13 \approx 0.0077$, the right one $1 - 0.1 + 0.0077 \approx 0.908$.
#    The loss is the cross-entropy $H(q, p) = H(q) + \mathrm{KL}(q \,\|\, p)$, smallest when $p = q$: then it
#    equals the entropy of $q$, about $-0.908 \ln 0.908 - 12 \cdot 0.0077 \ln 0.0077 \approx 0.54$ nats, not 0. So
#    a training loss that stops near 0.5 is not a sign of trouble.
# 5. With one beam, the best of the $1 \times V$ extensions is the most likely next token: the greedy choice. Every
#    token multiplies the probability by a number below 1 (adds a negative log-probability), so a longer output has
#    a lower score unless each of its tokens is certain; dividing by length$^\alpha$ compares outputs per token.
# 6. Least significant first, output digit $k$ needs digit $k$ of each operand and the carry out of digit $k - 1$,
#    which depends on what was just computed: each step is a small, local rule, the same for every $k$. Most
#    significant first, the first digit written may depend on the carry chain through *all* digits below it, which
#    the model must work out before writing anything. Reversing the operands only changes where the input digits
#    sit; the encoder can attend anywhere, so it would help much less: the order that matters is the order in which
#    the decoder must *commit* to its output.
# 7. The encoder ends with its own LayerNorm (pre-norm stacks put one after the last block), so the memory is
#    already normalised once for every decoder block and every layer that reads it; normalising it again in each
#    block would only add parameters. With cross-attention first, the first block's queries would come from the
#    bare token embeddings, before any position has seen the tokens before it: it could ask the source only about
#    its own token, not about the output written so far. Masked self-attention first lets each query carry its
#    context, which is why every Transformer decoder uses this order.

# %% [markdown]
# **Next hour:** GPT, a decoder without an encoder, trained on text.
