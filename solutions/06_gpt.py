# %% tags=["setup"]
# Course set-up, the same in every hour. On Colab it installs the course package `amla`
# (and what this hour needs); elsewhere `make lab` has installed it already.
import sys, subprocess
if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", 'amla @ git+https://github.com/amla-course/amla@main'], check=True)
import amla
device = amla.setup(hour=6, seed=0)  # picks cuda > mps > cpu, seeds, prints the profile

# %% [markdown] slideshow={"slide_type": "slide"}
# # Hour 06: GPT from scratch
#
# A GPT is the decoder half of Hour 05's Transformer with the cross-attention taken out: a stack of causal
# self-attention blocks that reads a sequence of tokens and, at every position, predicts the next one. Trained on
# a million characters of Shakespeare it learns spelling, verse layout and who speaks when; trained on the
# internet, the same design with more layers became GPT-2, GPT-3 and their successors. This hour goes through the
# whole thing (tokenizer, model, training, sampling, fast generation) and trains it on a laptop CPU. You write the
# tokenizer's merges, the GPT block with its causal self-attention (every block of the model you train runs your
# code), the top-p sampler and one decode step of the KV cache; the course's `amla.transformers.gpt.GPT` supplies the
# embeddings around your blocks. A counting baseline comes first, to show what the model must beat.
#
# **By the end of this hour you can**
# - turn text into tokens two ways: one per **character**, and with a small **byte-pair encoding** (BPE) whose
#   merges you learn yourself;
# - measure what **counting** alone gets (a bigram model) and write averaging over the past as a lower-triangular
#   matrix, the step from which attention starts;
# - write a **GPT block**: causal self-attention with one fused projection to queries, keys and values, split into
#   heads, then the MLP, each in a pre-norm residual branch; and say where every parameter of a decoder-only
#   Transformer sits (token and position embeddings, the blocks, weight tying);
# - train it with the course `Trainer`, with **mixed precision** and **gradient accumulation** as switches and the
#   **Muon** optimizer for the weight matrices, to the course target (a validation loss below 1.60 nats per
#   character after 1 1/2 to 3 minutes of training on 2 CPU cores, as fast as the machine is that day), and read
#   over- and underfitting from train and validation curves;
# - **sample** from it with temperature, top-k and top-p (nucleus) sampling, and explain what each changes;
# - write the decode step of a **KV cache** (store the new key and value, attend to the prefix), make generation
#   several times faster with it, and check that it produces exactly the same tokens;
# - look at what the trained heads attend to, and test what the maps suggest by switching heads off.
#
# **How the exercises work.** Each exercise is a function with a `# YOUR CODE HERE` line. Replace the
# `raise NotImplementedError(...)` with your code and run the check cell below it, such as
# `merge_pair = amla.checks.gpt.check_merge_pair(merge_pair)`. The check runs your function on ordinary and edge
# inputs against the course's reference (values, types, gradients where there are any, and whether your inputs were
# left alone):
# - right: the check returns your function, and **the rest of the hour runs on your code**: the BPE tokenizer
#   learns its merges and encodes with your `merge_pair`, every block of the GPT you train is your `gpt_block`, the
#   sampling section draws from your `top_p_probs`, and the cached generation runs your `kv_attend`;
# - wrong: it stops there and names the most likely mistake, or the property your answer breaks;
# - not written yet: one line says so and the check returns the course's reference, so Run All shows you the
#   whole hour first.
#
# `amla.checks.summary()` at the end lists which exercises you have done.
#
# **Runtime** (whole notebook, `amla bench 06` on an idle 2-core CPU, tiny Shakespeare): smoke profile 8.4 s;
# cpu profile 142-157 s on a fast day (training 97-109 s at 26,300-23,500 tokens/s, validation loss 1.580). The
# machine's speed drifts: on the slowest day measured for this hour it trained at 14,800 tokens/s, which makes the
# cpu profile about 250 s. The gpu profile trains nanoGPT's Shakespeare-sized model (not yet measured: no GPU).

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. The corpus
#
# A language model learns $p(x_{t+1} \mid x_1, \dots, x_t)$, the distribution of the next token given the ones
# before it. Its training signal costs nothing: every position of every text is a labelled example.
#
# We use **tiny Shakespeare** (1.1 M characters of the plays, collected by Andrej Karpathy for char-rnn).
# `amla.transformers.text.load_corpus` takes it from the course data directory, downloads it (checking its sha256)
# when it is missing, and when neither works it falls back to a text every Python installation carries: the
# reference documentation of the language (`pydoc_data.topics`, 0.47 M characters). The cell says which one is in
# use; the numbers quoted in the prose are for Shakespeare.

# %%
import math
import time

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from amla.transformers.text import CharTokenizer, TokenWindows, load_corpus

S = amla.per_profile(
    smoke=dict(block=32, n_layer=2, n_head=2, n_embd=32, dropout=0.0,  # the model
               batch=8, grad_accum=2, steps=40, lr=3e-3, muon_lr=0.02, warmup=5, eval_every=20,  # its training
               eval_windows=8,
               bpe_chars=2_000, bpe_merges=30,  # the BPE exercise
               small_chars=4_000, small_embd=32, small_steps=20, small_eval_every=10,  # the overfitting run
               kv_new=64, view_chars=32, sample_chars=60, val_windows=64),  # generation, the viewer, the final eval
    cpu=dict(block=128, n_layer=4, n_head=4, n_embd=128, dropout=0.0,
             batch=16, grad_accum=1, steps=1200, lr=3e-3, muon_lr=0.02, warmup=100, eval_every=150, eval_windows=48,
             bpe_chars=50_000, bpe_merges=200, small_chars=20_000, small_embd=128, small_steps=400, small_eval_every=25,
             kv_new=256, view_chars=64, sample_chars=300, val_windows=None),
    gpu=dict(block=256, n_layer=6, n_head=6, n_embd=384, dropout=0.2,
             batch=64, grad_accum=1, steps=5000, lr=1e-3, muon_lr=None, warmup=100, eval_every=250, eval_windows=200,
             bpe_chars=200_000, bpe_merges=500, small_chars=20_000, small_embd=128, small_steps=600,
             small_eval_every=25, kv_new=256, view_chars=64, sample_chars=300, val_windows=None),
)
if device.type == "cpu" and amla.profile() == "smoke":
    torch.set_num_threads(min(2, torch.get_num_threads()))  # the tests' machines have 2 cores; elsewhere use them all
print(amla.profile(), S)

corpus = load_corpus(download=True)
print(corpus.text[:300])

# %% [markdown]
# ## 2. Characters as tokens
#
# The simplest tokenizer gives every distinct character an id. Shakespeare has 65 of them: letters, digits,
# punctuation, space and newline. A model over characters has a tiny vocabulary but long sequences: a line of
# verse is 40 tokens.
#
# We keep the first 90 % of the text for training and the last 10 % for validation. The validation text is a
# *different part of the plays*, so a model that memorised its training text does not look good on it.

# %%
tok = CharTokenizer(corpus.text)
ids = tok.encode(corpus.text)
n_train = int(0.9 * len(ids))
train_ids, val_ids = ids[:n_train], ids[n_train:]
print(f"vocabulary: {tok.vocab_size} characters: {''.join(tok.chars)!r}")
print(f"train {len(train_ids):,} tokens, validation {len(val_ids):,} tokens")
print("encode('To be') =", tok.encode("To be").tolist(), "  decode back:", repr(tok.decode(tok.encode("To be"))))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. Byte-pair encoding, in small
#
# GPT-2 and its successors do not read characters. They use **byte-pair encoding**: start from the bytes of the
# UTF-8 text (256 symbols, so any text can be written), find the pair of neighbouring symbols that occurs most
# often, give it a new id, replace every occurrence, and repeat. After $m$ merges the vocabulary has $256 + m$
# symbols, frequent words become single tokens, and the sequences get shorter. Encoding a new text replays the
# merges in the order they were learned.
#
# Two small functions do all the work. Counting the pairs of neighbours is one line,
# `Counter(zip(ids, ids[1:]))` (the package's `amla.transformers.text.pair_counts`; note that pairs overlap:
# `[5, 5, 5]` contains `(5, 5)` twice). Merging the chosen pair is yours.
#
# ### Exercise 6.1: Merging a pair
#
# Write `merge_pair(ids, pair, new_id)`: a new list in which every occurrence of `pair` is replaced by `new_id`.
# Scan **left to right**, and once two ids have been merged, continue *after* both: `[5, 5, 5]` with the pair
# `(5, 5)` becomes `[new_id, 5]`, not `[new_id, new_id]` (the middle 5 cannot belong to two tokens) and not
# `[5, new_id]`.

# %%
def merge_pair(ids, pair, new_id):
    ### BEGIN SOLUTION
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out
    ### END SOLUTION


# %%
merge_pair = amla.checks.gpt.check_merge_pair(merge_pair)

# %% [markdown]
# With your `merge_pair` (the course's reference stands in while the exercise is not done),
# `amla.transformers.text.train_bpe` learns merges from the start of the corpus: it counts the pairs and merges the
# most frequent one with your function, again and again. `BPETokenizer` encodes new text by replaying the merges with
# the same function and decodes it back. The first merges are the commonest pairs of the language
# (`e` + space, `t` + `h`, ...); later merges build on earlier ones into whole words.

# %%
from amla.transformers.text import BPETokenizer, train_bpe

sample = corpus.text[: S.bpe_chars]
merges = train_bpe(sample, S.bpe_merges, merge_pair_fn=merge_pair)
bpe = BPETokenizer(merges, merge_pair_fn=merge_pair)
print("pairs merged with", "your merge_pair" if amla.checks.yours("6.1") else "the reference merge_pair")
print("first merges:", [bpe.decode([256 + i]) for i in range(min(12, len(merges)))])
print("last merges: ", [bpe.decode([256 + i]) for i in range(max(0, len(merges) - 8), len(merges))])
held_out = corpus.text[n_train : n_train + 2000]  # text the merges were not learned from
encoded = bpe.encode(held_out)
assert bpe.decode(encoded) == held_out
bpe_chars_per_token = len(held_out) / len(encoded)
print(f"{len(merges)} merges: {len(held_out)} held-out characters -> {len(encoded)} tokens "
      f"({bpe_chars_per_token:.2f} characters per token); decode(encode(text)) == text")
print(" | ".join(bpe.decode([t]) for t in encoded[:30]))

# %% [markdown]
# Shorter sequences mean a model sees more text in the same context window, at the price of a bigger vocabulary
# (GPT-2 uses 50 257 tokens) and a tokenizer that needs its own training data. For the rest of the hour we stay
# with characters: 65 tokens, nothing to learn, and every sample can be read letter by letter.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. The model
#
# ### First, what counting gets you
#
# The simplest next-character model needs no training: count how often each character follows each other one in
# the training text and predict with those frequencies, $p(x_{t+1} = b \mid x_t = a) = \frac{n_{ab} + 1}{n_a + V}$
# (one extra count for every pair, so no probability is 0). Its validation loss is the bar every model of this hour
# must clear: whatever the GPT does better comes from looking further back than one character.

# %%
pairs = torch.zeros(tok.vocab_size, tok.vocab_size)
pairs.index_put_((train_ids[:-1], train_ids[1:]), torch.ones(len(train_ids) - 1), accumulate=True)
bigram = (pairs + 1) / (pairs + 1).sum(1, keepdim=True)
bigram_loss = -bigram[val_ids[:-1], val_ids[1:]].log().mean().item()
g = torch.Generator().manual_seed(0)
chars_out = [tok.stoi["\n"]]
for _ in range(80):
    chars_out.append(int(torch.multinomial(bigram[chars_out[-1]], 1, generator=g)))
print(f"bigram validation loss {bigram_loss:.3f} nats per character (uniform guess: ln {tok.vocab_size} = "
      f"{math.log(tok.vocab_size):.3f})")
print("a bigram sample:", repr(tok.decode(chars_out)))

# %% [markdown]
# ### Averaging the past, then attention
#
# To look further back, position $t$ needs a summary of positions $1 \dots t$. The plainest summary is the mean,
# and a mean over a growing prefix is a matrix product: with the lower-triangular $W_{ts} = 1/t$ for $s \le t$
# (else 0), $WX$ averages the past of every position at once. The same $W$ comes out of a softmax over scores that
# are all 0 where allowed and $-\infty$ above the diagonal. Attention keeps this form and changes one thing: the
# scores are $q_t \cdot k_s / \sqrt{d}$, computed from the data, so each position *chooses* which earlier
# characters to weight.

# %%
T_demo, C_demo = 6, 4
x_demo = torch.randn(T_demo, C_demo, generator=torch.Generator().manual_seed(0))
loop_mean = torch.stack([x_demo[: t + 1].mean(0) for t in range(T_demo)])
lower = torch.tril(torch.ones(T_demo, T_demo))
w_mean = lower / lower.sum(1, keepdim=True)
w_softmax = torch.zeros(T_demo, T_demo).masked_fill(lower == 0, float("-inf")).softmax(-1)
scores = (x_demo @ x_demo.T) / math.sqrt(C_demo)  # queries = keys = x here, for the picture only
w_attention = scores.masked_fill(lower == 0, float("-inf")).softmax(-1)
print(f"loop mean vs W @ X: {(loop_mean - w_mean @ x_demo).abs().max():.1e}; "
      f"W from the masked softmax of zeros: {(w_mean - w_softmax).abs().max():.1e}")
print("uniform weights of position 4:  ", [round(v, 2) for v in w_mean[3].tolist()])
print("attention weights of position 4:", [round(v, 2) for v in w_attention[3].tolist()])

# %% [markdown]
# ### The GPT
#
# A GPT maps token ids $x_1 \dots x_T$ to next-token logits in three steps.
#
# **Embed.** Each token gets a learned vector, and each *position* $t$ another learned vector (attention itself
# does not know the order of its inputs):
# $$ h^{(0)}_t = E[x_t] + P[t], \qquad E \in \mathbb{R}^{V \times C},\ P \in \mathbb{R}^{T_{\max} \times C}. $$
#
# **Transform**, $L$ times, with **pre-norm** blocks: each sub-layer reads a normalised copy of the residual stream
# and adds its result back,
# $$ h \leftarrow h + \operatorname{Attn}(\operatorname{LN}(h)), \qquad
#    h \leftarrow h + \operatorname{MLP}(\operatorname{LN}(h)). $$
# The residual path stays an identity from input to output, which is what lets deep stacks train without
# warm-up tricks (the original Transformer normalised *after* the addition). The attention is Hour 04's
# multi-head attention with a **causal mask**: position $t$ sees only positions $\le t$, so every position can be
# trained at once and none can peek at the token it must predict. Queries, keys and values come from one fused
# projection $W_{qkv} \in \mathbb{R}^{C \times 3C}$, split into $H$ heads of size $C/H$. The MLP is
# $W_2\,\operatorname{GELU}(W_1 h)$ with a hidden size of $4C$ (GPT-2's tanh approximation of GELU, cheaper on a
# CPU and within $5 \cdot 10^{-4}$ of the exact curve).
#
# **Read out.** A last LayerNorm, then logits $z_t = \operatorname{LN}(h^{(L)}_t)\, E^\top$: the output layer
# reuses the embedding matrix (**weight tying**). A token's input and output vector are the same, which saves
# $V \cdot C$ parameters and helps small models.
#
# The loss is the cross-entropy of the logits against the next token, averaged over all $B \times T$ positions.
# `amla.transformers.gpt.GPT` holds the embeddings, the stack of blocks and the read-out; the block is yours.
#
# ### Exercise 6.2: Causal self-attention and the GPT block
#
# Write `gpt_block(block, x)`: one pre-norm block of the GPT for `x` of shape `[B, T, C]`, returning the new `x`.
# `block` is an `amla.transformers.gpt.Block`; use its parts, not `block(...)` or `block.attn(...)`:
#
# 1. `h = block.ln1(x)`, then the fused projection `block.attn.qkv(h)`, `[B, T, 3C]`, split along the last axis into
#    `q, k, v` in that order (`.split(C, dim=2)`).
# 2. Split each into `block.attn.n_head` heads, `[B, H, T, C/H]`, with Hour 04's `split_heads` (imported below).
# 3. Causal attention of every head: `F.scaled_dot_product_attention(q, k, v, is_causal=True)` computes
#    $\operatorname{softmax}(q k^\top / \sqrt{C/H} + \text{mask})\, v$ with Hour 02's causal mask, without storing
#    the $T \times T$ weights. (Writing the scores, the mask and the softmax out, as in Hour 02, passes the check
#    too, but trains more slowly.)
# 4. `merge_heads` back to `[B, T, C]`, the output projection `block.attn.proj`, then `block.attn.resid_drop` (the
#    dropout, which does nothing at dropout 0 or in eval mode), and add the result to `x`.
# 5. `x + block.mlp(block.ln2(x))`: the MLP branch (it applies its own dropout).
#
# The check compares outputs and the gradients of `x` and of every parameter with the course's block on 1 to 8
# heads, a single position, float64, and in training mode with dropout. (The package's own `Block.forward` also
# drops attention weights when `dropout > 0`; with a `gpt_block`, yours or the reference, the model does not.)

# %%
from amla.transformers.nn import merge_heads, split_heads


def gpt_block(block, x):
    ### BEGIN SOLUTION
    B, T, C = x.shape
    q, k, v = block.attn.qkv(block.ln1(x)).split(C, dim=2)
    q, k, v = (split_heads(t, block.attn.n_head) for t in (q, k, v))
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    x = x + block.attn.resid_drop(block.attn.proj(merge_heads(y)))
    return x + block.mlp(block.ln2(x))
    ### END SOLUTION


# %%
gpt_block = amla.checks.gpt.check_gpt_block(gpt_block)

# %% [markdown]
# The model: `GPT(config, block_forward=gpt_block)` runs every block of every forward pass through your function
# (the reference while the exercise is not done), in training and in evaluation. Two paths keep the package's
# block, and the hour says where: the attention viewer (it needs the weights, which the fused kernel never
# stores) and generation with the KV cache (Section 7, where you write the cached step yourself).

# %%
from amla.transformers.gpt import GPT, GPTConfig

config = GPTConfig(vocab_size=tok.vocab_size, block_size=S.block, n_layer=S.n_layer, n_head=S.n_head,
                   n_embd=S.n_embd, dropout=S.dropout)
amla.seed_everything(0)
model = GPT(config, block_forward=gpt_block)
print("every block runs", "your gpt_block" if amla.checks.yours("6.2") else "the reference gpt_block")
print(config)
print(f"{model.num_params():,} parameters; the tied embedding matrix E is {tuple(model.tok_emb.weight.shape)}")
for name, p in list(model.named_parameters())[:10]:
    print(f"  {name:28} {tuple(p.shape)}")

# %% [markdown]
# Before training, the model should know nothing: a uniform guess over 65 characters has a loss of
# $\ln 65 \approx 4.17$ nats. The small initialisation (standard deviation 0.02, smaller still for the projections
# that write into the residual stream) puts the model right there. A first loss far above $\ln V$ means the
# initial logits are too large: the model is confidently wrong before it has seen any data.

# %%
train_windows = TokenWindows(train_ids, S.block)
val_windows = TokenWindows(val_ids, S.block)
x, y = train_windows.collate(list(range(0, 8 * S.block, S.block)))
with torch.no_grad():
    loss0 = F.cross_entropy(model(x).flatten(0, 1), y.flatten()).item()
print(f"initial loss {loss0:.3f}, ln(vocab) = {math.log(tok.vocab_size):.3f}")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. Training
#
# ### Two switches from Hour 01: mixed precision and gradient accumulation
#
# The Trainer has both, and this run sets them explicitly:
#
# - `precision="auto"` runs the forward pass under **autocast**: on a GPU the matrix products run in bf16 (fp16 with
#   a gradient scaler where bf16 is missing), faster on tensor cores and with half the activation memory, while the
#   weights and the optimizer stay in fp32. On a CPU the Trainer stays in fp32, so a notebook gives the same numbers
#   on every CPU (Hour 09 measures what bf16 autocast does on a CPU).
# - `grad_accum=k` splits every batch into $k$ micro-batches of `batch` windows, divides each loss by $k$, and steps
#   the optimizer once after adding up their gradients. It is the same update as one batch of $k \cdot$ `batch`
#   windows, with $k$ times less activation memory: how a large batch fits in a small GPU. It is the same because
#   every window has the same number of tokens; with padded sequences the mean of the micro-batch means is not the
#   mean over all tokens (Hour 09 measures it and shows the fix). (The smoke profile uses $k = 2$ so the code path
#   runs in the tests; the cpu and gpu batches fit at once.)
#
# The cell checks the second claim on one batch: the gradient of 16 windows at once against 4 micro-batches of 4.
# They should agree up to float rounding. (The first claim is checked on the trained model, after the run.)

# %%
from amla.toolkit.precision import autocast_dtype

print(f"precision='auto' on {device.type}: autocast dtype {autocast_dtype(device, 'auto') or 'none (fp32)'}")
model.eval()  # no dropout, so the two gradients see the same network
xb, yb = train_windows.collate(list(range(0, 16 * S.block, S.block)))
xb, yb = xb.to(device), yb.to(device)


def full_gradient(micro_batches):
    model.zero_grad()
    for xs, ys in zip(xb.chunk(micro_batches), yb.chunk(micro_batches)):
        loss = F.cross_entropy(model(xs).flatten(0, 1), ys.flatten()) / micro_batches  # the mean over all 16
        loss.backward()
    grads = torch.cat([p.grad.flatten() for p in model.parameters()])
    model.zero_grad()
    return grads


g_once, g_accum = full_gradient(1), full_gradient(4)
print(f"gradient, 1 batch of 16 vs 4 micro-batches of 4: largest difference {(g_once - g_accum).abs().max():.1e} "
      f"(largest entry {g_once.abs().max():.1e})")
model.train()

# %% [markdown]
# ### A better optimizer for the weight matrices: Muon
#
# AdamW scales the step of every weight by that weight's own running gradient size, blind to the matrix it sits
# in. The gradient of a Transformer's weight matrix is dominated by a few directions (a few large singular values),
# and AdamW's step inherits them, so the rarer directions learn slowly. **Muon** (Keller Jordan and others, 2024;
# `torch.optim.Muon`) keeps SGD's momentum for each weight matrix $W$ of shape $m \times n$, then orthogonalises it:
#
# $$B_t = \mu B_{t-1} + G_t, \qquad G_t + \mu B_t = U \Sigma V^\top, \qquad
#   W \leftarrow W - \eta \sqrt{\max(1, m/n)}\; U V^\top .$$
#
# Every singular direction of the step gets the same size. $U V^\top$ needs no SVD: five Newton-Schulz iterations
# $X \leftarrow aX + b\,(XX^\top)X + c\,(XX^\top)^2 X$ (matrix products only) get close to it. Muon is for the
# matrices of the hidden layers; the embeddings (here also the output head, which is tied to them), the norms and the
# biases stay with AdamW. `MuonWithAdamW` puts each parameter where it belongs and steps both, so the Trainer's
# warm-up and cosine schedule scales both learning rates (`muon_lr` 0.02 for Muon, `lr` for AdamW).
#
# The cell shows the split, how few directions dominate a gradient, and what each step costs (median of 10, the
# three timed in turn, on copies of the model holding one batch's gradient).

# %%
import copy

from amla.toolkit.optim import MuonWithAdamW, muon_split
from amla.transformers.efficiency import median_ms

matrices, rest = muon_split(model)
print(f"Muon: {len(matrices)} weight matrices, {sum(p.numel() for p in matrices):,} weights; AdamW: {len(rest)} "
      f"tensors, {sum(p.numel() for p in rest):,} weights (the embeddings with the tied head, norms, biases)")

def with_gradient(net):
    """A copy of the model holding one batch's gradient (the model itself keeps none; deepcopy drops .grad)."""
    twin = copy.deepcopy(net)
    F.cross_entropy(twin(xb).flatten(0, 1), yb.flatten()).backward()
    return twin


probe = with_gradient(model)
grad = probe.blocks[0].mlp.fc.weight.grad
energy = torch.linalg.svdvals(grad.float().cpu()) ** 2
print(f"the gradient of the first MLP matrix {tuple(grad.shape)}: its 4 largest of {len(energy)} singular values "
      f"hold {energy[:4].sum() / energy.sum():.0%} of its squared norm")

adamw = torch.optim.AdamW(with_gradient(model).parameters(), lr=S.lr, betas=(0.9, 0.99))
muon = MuonWithAdamW(with_gradient(model), lr=S.lr)  # the time of a step does not depend on the rates
ms = median_ms({"adamw": adamw.step, "muon": muon.step,  # the warm-up call creates each optimizer's state
                "forward_backward": lambda: F.cross_entropy(probe(xb).flatten(0, 1), yb.flatten()).backward()},
               repeats=10, device=device)
print(f"one step: AdamW {ms['adamw']:.1f} ms, Muon + AdamW {ms['muon']:.1f} ms; one forward and backward pass of "
      f"{len(xb)} windows {ms['forward_backward']:.1f} ms")

# %% [markdown]
# ### The run
#
# A training example is any window of `block` characters of the training text, with the same window shifted by
# one as targets (`TokenWindows`); the Trainer draws random windows in a fixed, seeded order. The settings
# follow from what is cheap on a CPU: no dropout (a 0.8 M parameter model does not overfit a million characters in
# a few thousand steps), Muon with AdamW at high learning rates with linear warm-up and cosine decay, and evaluation
# on a fixed set of validation windows so it costs a second rather than a minute. The gpu profile keeps nanoGPT's
# Shakespeare recipe (AdamW alone, dropout 0.2, weight decay 0.1), which its target is about; the Muon settings here
# were measured on the cpu profile only.
#
# The clock starts before the Trainer is built and stops after the final evaluation on the **whole** validation
# text: that is the time the target (1.60 within 5 minutes on 2 cores) is about.

# %%
from amla.views import Dashboard

val_x, val_y = val_windows.tiles(S.val_windows)  # every non-overlapping window of the validation text (smoke: 64)
spread = max(1, len(val_x) // S.eval_windows)  # the windows evaluated during training: spread over the whole text
val_few_x, val_few_y = val_x[::spread][: S.eval_windows], val_y[::spread][: S.eval_windows]
train_x, train_y = train_windows.tiles(S.eval_windows * spread)
train_x, train_y = train_x[::spread], train_y[::spread]


@torch.no_grad()
def mean_loss(model, xs, ys, batch=32):
    """Mean cross-entropy over fixed windows, in eval mode (no dropout), on the model's device."""
    total = 0.0
    for x, y in amla.toolkit.train.eval_batches(model, (xs, ys), batch):  # chunks on the device; the mode is restored after
        total += F.cross_entropy(model(x).flatten(0, 1), y.flatten(), reduction="sum").item()
    return total / ys.numel()


def evaluate(model):
    return {"val_loss": mean_loss(model, val_few_x, val_few_y),
            "train_eval_loss": mean_loss(model, train_x, train_y)}


train_config = amla.TrainConfig(max_steps=S.steps, batch_size=S.batch, grad_accum=S.grad_accum, precision="auto",
                                lr=S.lr, warmup_steps=S.warmup, betas=(0.9, 0.99), eval_every=S.eval_every,
                                weight_decay=0.1 if S.dropout else 0.0)
t_start = time.perf_counter()
optimizer = None  # None: the Trainer builds its AdamW from the config (the gpu profile: nanoGPT's recipe)
if S.muon_lr:
    optimizer = MuonWithAdamW(model, lr=S.lr, muon_lr=S.muon_lr, betas=train_config.betas,
                              weight_decay=train_config.weight_decay)
trainer = amla.Trainer(model, train_windows, train_config, optimizer=optimizer, eval_fn=evaluate,
                       collate_fn=train_windows.collate, callbacks=[Dashboard(every_s=15, max_overhead=0.01)],
                       device=device)
trainer.fit()
val_loss = mean_loss(model, val_x, val_y)
wall_s = time.perf_counter() - t_start
records = trainer.history.train[5:] or trainer.history.train  # the first steps include warm-up costs
tokens_per_s = sum(r["tokens_per_s"] for r in records) / len(records)
print(f"validation loss on all {val_y.numel():,} validation characters: {val_loss:.3f} nats "
      f"({val_loss / math.log(2):.2f} bits per character)")
print(f"last evaluation: training windows {trainer.history.last('train_eval_loss'):.3f}, "
      f"validation windows {trainer.history.last('val_loss'):.3f} nats")
print(f"what attention over {S.block} characters adds to the bigram counts: {bigram_loss:.3f} -> {val_loss:.3f} nats")
print(f"wall time {wall_s:.0f} s (training and every evaluation), {tokens_per_s:,.0f} training tokens/s")

# %% [markdown]
# **For scale.** nanoGPT's example settings for a CPU (4 layers, 4 heads, 128 wide, 64-character blocks, batch 12,
# no dropout) reach a validation loss of 1.89 after their 2 000 iterations (74 s) on the course's 2-core machine,
# and 1.64 when run for 6 000 iterations (3 min 40 s). Where was this run after the same time? (The Trainer records
# the seconds spent in training steps; the evaluations come on top.)

# %%
def seconds_at(step):
    return trainer.history.train[step - 1]["elapsed_s"]


for seconds, theirs in [(74, 1.89), (220, 1.64)]:
    nearest = min(trainer.history.eval, key=lambda r: abs(seconds_at(int(r["step"])) - seconds))
    print(f"nanoGPT's CPU example: {theirs:.2f} after {seconds} s; this run: {nearest['val_loss']:.3f} on the "
          f"validation windows after {seconds_at(int(nearest['step'])):.0f} s (step {int(nearest['step'])})")

# %% [markdown]
# (When this run ends sooner than 220 s, its last evaluation stands in.) The two setups differ in more than the
# time: this run's blocks see 128 characters instead of 64, and it trains with Muon (question 9 compares it with
# AdamW). A wall-clock comparison between runs made at different times also says as much about the machine as about
# the model, and the losses are measured on different validation samples, so read them to about 0.01.

# %% [markdown]
# **Throughput and precision.** The run above printed the training tokens per second; Hour 09 turns it into FLOP/s
# and the model FLOPs utilisation (MFU) against the chip's peak, measures where the time and memory of a GPT go, and
# shows what bf16 and fp16 do to the numbers (rounding, underflow, loss scaling).

# %% [markdown]
# The two curves the Trainer recorded: the loss on the training windows and on the validation windows, measured
# the same way (eval mode, the same fixed windows every time).

# %%
def plot_curves(history, title):
    fig = Figure(figsize=(6.5, 3.4), layout="constrained")
    ax = fig.subplots()
    for key, label in [("train_eval_loss", "train"), ("val_loss", "validation")]:
        ax.plot(*history.series(key), marker="o", markersize=3, label=label)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (nats per character)")
    ax.set_title(title, fontsize=10)
    ax.legend()
    return fig


seen = trainer.step * S.batch * S.grad_accum * S.block
print(f"{seen / 1e6:.1f} M characters read in training: each training character about "
      f"{seen / len(train_ids):.1f} times")
plot_curves(trainer.history, f"{model.num_params() / 1e6:.2f} M parameters, {len(train_ids) / 1e6:.1f} M characters")

# %% [markdown]
# On the full corpus both curves are still falling when the run ends, and the training loss is only a little below
# the validation loss (the last evaluation, printed after the run). The model reads each training character only a
# few times and is too small to memorise them: it is **underfitting**, and a bigger model or a longer run would help
# more than any regulariser.
#
# ### When the model does overfit
#
# Give the same kind of model only a tiny slice of text and the picture changes: the training loss keeps falling
# while the validation loss turns back up, the model is now learning *this* text rather than English. Three
# remedies: **dropout** (randomly zeroing activations while training, so no unit can rely on one other), **weight
# decay** (pulling the weights towards 0), and **early stopping** (keep the weights from the best validation
# evaluation, and stop once it has not improved for a while). The last one is a `Callback` of the course Trainer,
# `amla.toolkit.early_stopping.EarlyStopping`: after every evaluation it compares the watched metric with the best
# so far, keeps a copy of the best weights, sets `trainer.should_stop` after `patience` evaluations without
# improvement, and puts the best weights back when the run ends. Its whole logic:

# %%
import inspect

from amla.toolkit.early_stopping import EarlyStopping

print(inspect.getsource(EarlyStopping.on_eval))

# %%
small_windows = TokenWindows(train_ids[: S.small_chars], 64)
small_x, small_y = small_windows.tiles()
small_x, small_y = small_x[:: max(1, len(small_x) // 64)][:64], small_y[:: max(1, len(small_y) // 64)][:64]
short_val_x, short_val_y = TokenWindows(val_ids, 64).tiles(64)  # 64 windows of each, spread over the text


def train_small(dropout, weight_decay, stopper=None):
    amla.seed_everything(0)
    small = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=64, n_layer=2, n_head=4, n_embd=S.small_embd,
                          dropout=dropout), block_forward=gpt_block)
    cfg = amla.TrainConfig(max_steps=S.small_steps, batch_size=32, lr=3e-3, warmup_steps=S.small_steps // 10,
                           betas=(0.9, 0.99), weight_decay=weight_decay, eval_every=S.small_eval_every,
                           progress=False)

    def ev(m):
        return {"val_loss": mean_loss(m, short_val_x, short_val_y), "train_eval_loss": mean_loss(m, small_x, small_y)}

    t = amla.Trainer(small, small_windows, cfg, eval_fn=ev, collate_fn=small_windows.collate,
                     callbacks=[stopper] if stopper else [], device=device)
    t.fit()
    return t


plain_run = train_small(dropout=0.0, weight_decay=0.0)
stopper = EarlyStopping("val_loss", mode="min", patience=4)
regular_run = train_small(dropout=0.2, weight_decay=0.1, stopper=stopper)
fig = Figure(figsize=(11, 3.4), layout="constrained")
runs = [(plain_run, "no dropout, no weight decay"), (regular_run, "dropout 0.2, weight decay 0.1")]
for ax, (run, title) in zip(fig.subplots(1, 2, sharey=True), runs):
    for key, label in [("train_eval_loss", "train"), ("val_loss", "validation")]:
        ax.plot(*run.history.series(key), marker="o", markersize=3, label=label)
    ax.set_title(f"{S.small_chars:,} training characters: {title}", fontsize=10)
    ax.set_xlabel("optimizer step")
ax.axvline(stopper.best_step, color="0.5", linestyle="--", label="best validation (kept)")
fig.axes[0].set_ylabel("loss")
fig.axes[1].legend()
best_plain = min(plain_run.history.series("val_loss")[1])
print(f"no regularisation: best validation {best_plain:.3f}, final {plain_run.history.last('val_loss'):.3f}, "
      f"train {plain_run.history.last('train_eval_loss'):.3f}")
print(f"dropout + decay:   best validation {stopper.best:.3f} at step {stopper.best_step}, "
      f"stopped at step {regular_run.step} of {S.small_steps}")
fig

# %% [markdown]
# Without regularisation the gap between the curves opens early: in the cpu profile's run the training loss reached
# 1.55 while the validation loss stalled at about 2.37, the model was learning the slice, not the language, and more
# steps would only widen the gap. Dropout and weight decay slow the memorising, so the gap opens later, but they
# also slow the learning: in the same 400 steps the regularised run's best validation loss (2.43) was *worse*. That
# is the trade-off to keep in mind; regularisation pays when a run is long enough to overfit, and early stopping
# (the model leaves `fit()` with the best weights) is the cheap insurance for the day it does. On the full corpus, at
# our CPU scale, none of this is needed, which is why the main run uses no dropout. The gpu profile trains a much
# bigger model for longer and uses dropout 0.2, on the expectation (not measured here: no gpu run is recorded)
# that it would otherwise overfit the same data sooner.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. Sampling
#
# The model gives logits $z$ for the next character. Generation draws one, appends it, and repeats. How we draw
# matters as much as the model:
#
# - **greedy**: always the most likely character. Deterministic, and soon stuck in loops.
# - **temperature** $\tau$: sample from $\operatorname{softmax}(z / \tau)$. $\tau < 1$ sharpens the distribution
#   (safer, duller), $\tau > 1$ flattens it (more varied, more misspelt); $\tau \to 0$ is greedy.
# - **top-k**: sample only among the $k$ most likely characters.
# - **top-p** (nucleus sampling): sample among the *smallest set of most likely characters whose probabilities add
#   up to at least $p$*. When the model is sure the set is one or two characters, when it is unsure it is many:
#   the cut adapts, which a fixed $k$ cannot.
#
# ### Exercise 6.3: Top-p probabilities
#
# Write `top_p_probs(logits, p, temperature)`. `logits` is `[B, V]`. Return `[B, V]` probabilities, in the
# original vocabulary order: apply the temperature to the logits, take the softmax, sort each row from most to
# least likely, keep tokens while the probability of the tokens *before* them is below `p` (so the token that
# crosses `p` is kept), set the others to 0, and renormalise each row to sum to 1. Hints: `tensor.sort(dim=-1,
# descending=True)` returns values and indices; `torch.zeros_like(probs).scatter(-1, indices, values)` puts
# sorted values back in place.

# %%
def top_p_probs(logits, p, temperature=1.0):
    ### BEGIN SOLUTION
    probs = (logits / temperature).softmax(dim=-1)
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    before = sorted_probs.cumsum(dim=-1) - sorted_probs
    sorted_probs = sorted_probs.masked_fill(before >= p, 0.0)
    kept = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return kept / kept.sum(dim=-1, keepdim=True)
    ### END SOLUTION


# %%
top_p_probs = amla.checks.gpt.check_top_p(top_p_probs)

# %% [markdown]
# What the three knobs do to the distribution over the next character after a prompt. The four distributions come
# from your `top_p_probs` (with p = 1 it is a plain softmax with a temperature), and so do the top-p samples below:
# `generate(..., top_p_fn=top_p_probs)` draws each character from the nucleus your function computes. (While the
# exercise is not done, the course's reference stands in for it.)

# %%
from amla.transformers.gpt import generate

print("nucleus from", "your top_p_probs" if amla.checks.yours("6.3") else "the reference top_p_probs")
prompt = "ROMEO:\nWhat light through yonder window"
model.eval()
with torch.no_grad():
    next_logits = model(tok.encode(prompt)[None, -S.block :].to(device))[:, -1].cpu()
settings = {"temperature 1": top_p_probs(next_logits, 1.0),
            "temperature 0.5": top_p_probs(next_logits, 1.0, 0.5),
            "top-p 0.9": top_p_probs(next_logits, 0.9), "top-p 0.5": top_p_probs(next_logits, 0.5)}
top = settings["temperature 1"][0].topk(12).indices
fig = Figure(figsize=(11, 2.8), layout="constrained")
for ax, (label, probs) in zip(fig.subplots(1, 4, sharey=True), settings.items()):
    ax.bar(range(12), probs[0, top], color="tab:blue")
    ax.set_xticks(range(12), [repr(tok.chars[i])[1:-1] for i in top.tolist()], fontsize=8)
    ax.set_title(f"{label}: {int((probs[0] > 0).sum())} characters possible", fontsize=9)
fig.axes[0].set_ylabel(f"p(next | ...{prompt[-12:]!r})")
fig

# %% [markdown]
# And whole samples, 300 characters each (cpu profile) from the same prompt:

# %%
samples = {}
for label, kwargs in [("greedy", dict(temperature=0.0)), ("temperature 0.8", dict(temperature=0.8)),
                      ("temperature 1.5", dict(temperature=1.5)), ("temperature 1, top-p 0.9", dict(top_p=0.9))]:
    gen = torch.Generator(device).manual_seed(0)
    out = generate(model, tok.encode(prompt)[None].to(device), S.sample_chars, generator=gen, top_p_fn=top_p_probs,
                   **kwargs)
    samples[label] = tok.decode(out[0, len(prompt) :].cpu())
    print(f"----- {label} -----\n{prompt}{samples[label]}\n")

# %% [markdown]
# Things to compare: greedy decoding soon falls into a loop (it always takes the same turn at the same place);
# temperature 0.8 and top-p 0.9 give the look of a play (speaker names in capitals followed by a colon, short
# lines, mostly real words); at temperature 1.5 the rare characters get enough probability to be drawn often, and
# the spelling falls apart first.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 7. The KV cache
#
# Generating token $t+1$ needs the keys and values of all positions $\le t$ in every layer. Without a cache,
# `generate` recomputes them from scratch at every step: $n$ new tokens cost about $\sum_t t \approx n^2/2$
# position-passes through the whole network. But the keys and values of the old positions never change (the mask
# keeps them from seeing the future), so we can **store** them: a `KVCache` holds
# `[layers, batch, heads, block, head_dim]` keys and values; the prompt runs once (the *prefill*), and each later
# step feeds only the newest token, whose query attends to every stored key. Note the mask of that single query: it
# may see *all* stored positions, so `is_causal=True` (which aligns the mask at the top left) would be wrong there.
#
# ### Exercise 6.4: One decode step with the KV cache
#
# Write `kv_attend(q, k, v, k_cache, v_cache, pos)`, the attention of one layer for one new position, the step the
# model runs once per layer for every generated token. `q, k, v` are the new position's query, key and value,
# `[B, H, 1, hd]`, already projected and split into heads. `k_cache` and `v_cache`, `[B, H, max_len, hd]`, are this
# layer's cache: slots `0 .. pos-1` hold the keys and values of the `pos` earlier positions, and the later slots hold
# nothing of this sequence (zeros, or leftovers of an earlier one after a `reset()`). Your function must
#
# 1. **write** `k` and `v` into slot `pos` of the caches, in place (`k_cache[:, :, pos:pos+1] = k`), so that the next
#    steps find them there;
# 2. **attend** with the one query to slots `0 .. pos`, the prefix and the new position itself, and return the
#    output, `[B, H, 1, hd]`.
#
# Do not advance anything: the model moves the cache's length on once every layer has run. The check compares the
# output *and both caches after the call* with the reference, on an empty cache (`pos = 0`), the last free slot,
# caches with leftovers, one head, `hd = 1` and float64.

# %%
def kv_attend(q, k, v, k_cache, v_cache, pos):
    ### BEGIN SOLUTION
    k_cache[:, :, pos : pos + 1] = k
    v_cache[:, :, pos : pos + 1] = v
    return F.scaled_dot_product_attention(q, k_cache[:, :, : pos + 1], v_cache[:, :, : pos + 1])
    ### END SOLUTION


# %%
kv_attend = amla.checks.gpt.check_kv_attend(kv_attend)

# %% [markdown]
# `generate(..., kv_attend_fn=kv_attend)` runs your step in every layer for every token after the prompt (the
# prompt itself, many positions at once, goes through the package's cached attention). Without the cache,
# `generate` recomputes the whole context with the model's blocks, which are your `gpt_block`: two different pieces
# of your code that must agree token for token.
#
# The outputs must be **the same tokens**; only the time changes. Greedy decoding makes that an exact test. With
# learned position embeddings the cache only works while the context fits in `block_size` positions; beyond that
# `generate` restarts the cache from the last half block (and then differs from recomputing, which always sees the
# last full block). So the tokens are compared over the part of the run that fits in the block (all 256 new tokens
# in the gpu profile, the first 128 with the cpu profile's 128-character block), and the time over all of it.

# %%
start = tok.encode("\n")[None].to(device)
new_tokens = S.kv_new
fits = min(new_tokens, S.block)  # the first `fits` new tokens are generated from a context that fits in the cache


def timed(use_cache):
    t0 = time.perf_counter()
    out = generate(model, start, new_tokens, temperature=0.0, use_cache=use_cache, kv_attend_fn=kv_attend)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - t0


times = {True: [], False: []}
for _ in range(3):  # alternate the two and keep each one's fastest run: a busy moment of the machine hits both
    with_cache, seconds = timed(True)
    times[True].append(seconds)
    without_cache, seconds = timed(False)
    times[False].append(seconds)
t_cache, t_plain = min(times[True]), min(times[False])
kv_same = torch.equal(with_cache[:, : 1 + fits], without_cache[:, : 1 + fits])
kv_speedup = t_plain / t_cache
print(f"{new_tokens} new tokens: without cache {t_plain:.2f} s, with cache {t_cache:.2f} s -> {kv_speedup:.1f}x faster "
      f"({t_cache / new_tokens * 1e3:.2f} ms per cached step)")
print("cached steps by", "your kv_attend" if amla.checks.yours("6.4") else "the reference kv_attend",
      "; recomputing by", "your gpt_block" if amla.checks.yours("6.2") else "the reference gpt_block")
print(f"identical greedy tokens over the {fits} tokens generated within block_size={S.block}: {kv_same}")
print(repr(tok.decode(with_cache[0, :120].cpu())))

# %% [markdown]
# The speed-up grows with the length of the generation: without the cache a step costs the whole context, with it
# one position (plus attention over the stored keys, cheap at these sizes).
#
# It also grows with the arithmetic per step. On a CPU a cached step for one sequence is about a hundred small
# operations (17 products of one row with a weight matrix, the attention, the norms), each with a fixed cost of a
# few microseconds; recomputing 128 positions costs only a few times more, because a CPU multiplies a 128-row matrix
# in little more time per call than a single row. The cache saves *arithmetic*, so its full effect shows once
# arithmetic dominates: with several sequences at once (below: 8), or on a GPU with a long context. On the course
# machine the cache was 3 to 5.6 times faster for one sequence and 9 to 12 times for 8 (2.5 and 7.3 on a machine
# without AVX-512): the ratio moves with the machine and its load, the tokens never do.

# %%
starts = start.expand(8, -1)  # 8 sequences from the same start; greedy, so all 8 are the same text
batch_times = {}
for use_cache in (True, False):
    t0 = time.perf_counter()
    generate(model, starts, new_tokens, temperature=0.0, use_cache=use_cache, kv_attend_fn=kv_attend)
    if device.type == "cuda":
        torch.cuda.synchronize()
    batch_times[use_cache] = time.perf_counter() - t0
kv_speedup_batch8 = batch_times[False] / batch_times[True]
print(f"8 sequences x {new_tokens} new tokens: without cache {batch_times[False]:.2f} s, with cache "
      f"{batch_times[True]:.2f} s -> {kv_speedup_batch8:.1f}x faster")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 8. What the heads look at
#
# The attention weights of the trained model on a passage of the validation text, every layer and head. Pick a
# **layer**, a **head** and a **query** character; the strip below the map shades the earlier characters by the
# query's weights (spaces are shown as `␣`, newlines as `⏎`). Things to look for: heads that look at the previous
# character or two (they spell), heads that look back to the last space or newline (they know where a word or line
# starts), and, in the first layer, heads that spread their weight evenly. (Without a live kernel you see the
# picture selected below.)

# %%
from amla.views import AttentionViewer

passage = val_ids[: S.view_chars]
with torch.no_grad():
    _, maps = model.forward_with_attention(passage[None].to(device))  # [layers, 1, heads, T, T]
chars = [{" ": "␣", "\n": "⏎"}.get(c, c) for c in tok.decode(passage)]
viewer = AttentionViewer(maps[:, 0].cpu(), chars, title="trained GPT on validation text",
                         layer_names=[f"layer {i}" for i in range(config.n_layer)])
viewer.select(layer=min(1, config.n_layer - 1), head=0, query=len(chars) - 1)

# %% [markdown]
# A map shows where a head reads, not whether the model needs what it reads (Hour 04 made this point with the
# reversal heads). The test is the same here: switch one head off with `amla.transformers.ablation.heads_removed`
# and measure the validation loss again. Next to each loss increase, the weight the head puts on the previous
# character, the most common pattern in the maps.

# %%
from amla.transformers.ablation import heads_removed

model.eval()
base_loss = mean_loss(model, val_few_x, val_few_y)
with torch.no_grad():
    _, val_maps = model.forward_with_attention(val_few_x[:8].to(device))  # [layers, 8, heads, T, T]
previous = val_maps.diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=(1, -1)).cpu()  # [layers, heads]
loss_increase = torch.zeros(config.n_layer, config.n_head)
for layer, block in enumerate(model.blocks):
    for head in range(config.n_head):
        with heads_removed(block.attn.proj, [head], n_heads=config.n_head):
            loss_increase[layer, head] = mean_loss(model, val_few_x, val_few_y) - base_loss
print(f"validation loss {base_loss:.3f}; with one head removed, the increase (and the head's weight on the "
      "previous character):")
for layer in range(config.n_layer):
    print(f"  layer {layer}: " + "   ".join(f"head {h} {loss_increase[layer, h]:+.3f} ({previous[layer, h]:.2f})"
                                          for h in range(config.n_head)))
most, least = (divmod(int(i), config.n_head) for i in (loss_increase.argmax(), loss_increase.argmin()))
print(f"most needed: layer {most[0]}, head {most[1]}; least needed: layer {least[0]}, head {least[1]}")

# %% [markdown]
# In the course machine's cpu run one head stands out both ways: head 3 of the first layer puts 93 % of its weight on
# the previous character, and removing it raises the validation loss from 1.56 to 2.90 nats. The other first-layer heads
# cost 0.45 to 0.81 nats each, and no single head of the three later layers costs more than 0.05: they share their work,
# so each is replaceable on its own (Hour 04 found the same). The previous-character weight of those later heads (0.07
# to 0.31) says nothing about how much they matter. Maps suggest, ablations test; and the ablation itself has limits
# (Hour 04's question 9).

# %% [markdown]
# The hour's numbers, collected by `amla bench 06` (the cpu target: validation loss at most 1.60 within 5 minutes
# of wall time on 2 cores, evaluation included; the KV cache at least 3 times faster at 256 new tokens):

# %%
metrics = dict(
    corpus=corpus.name,
    val_loss=val_loss,
    train_eval_loss=trainer.history.last("train_eval_loss"),
    val_eval_loss=trainer.history.last("val_loss"),
    train_wall_s=wall_s,
    steps=trainer.step,
    tokens_per_s=tokens_per_s,
    params=model.num_params(),
    initial_loss=loss0,
    bigram_val_loss=bigram_loss,
    kv_cache_speedup=kv_speedup,
    kv_cache_speedup_batch8=kv_speedup_batch8,
    kv_cache_new_tokens=new_tokens,
    kv_cache_same_tokens=kv_same,
    bpe_chars_per_token=bpe_chars_per_token,
    overfit_best_val=best_plain,
    overfit_final_val=plain_run.history.last("val_loss"),
    ablation_max_loss_increase=loss_increase.max().item(),
    ablation_min_loss_increase=loss_increase.min().item(),
)
amla.report(**metrics)

# %% [markdown]
# Your exercises, one line each. After fixing one, run its check cell again, then this one.

# %%
amla.checks.summary()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Questions
#
# 1. The initial loss is close to $\ln 65$. What would an initial loss of 10 tell you, and what would you change?
# 2. With weight tying, the same matrix $E$ embeds the input character and scores the output character. Why is
#    that reasonable for a language model? How many parameters does it save here, and for GPT-2 ($V$ = 50 257,
#    $C$ = 768)?
# 3. A character model needs about 4 times as many positions as a BPE model for the same text. What does that cost
#    in attention, and what does BPE cost instead?
# 4. Exercise 6.3 keeps the token whose cumulative probability crosses $p$. A sampler that keeps only the tokens
#    whose cumulative probability is *below* $p$ looks almost the same: why can it leave no token at all, and what
#    does it do to a confident model?
# 5. Why must the KV cache version and the recomputing version give exactly the same greedy tokens? Give two bugs
#    that would make them differ.
# 6. The cached step feeds one query against $t$ stored keys. Which causal mask does it need, and what goes wrong
#    with `is_causal=True`?
# 7. The main run uses no dropout, yet the small-data run overfits within a few hundred steps. What decides whether
#    regularisation helps: the model size, the amount of data, the number of steps?
# 8. Your `gpt_block` gets queries, keys and values from one `Linear(C, 3C)` and splits its output. Why is that the
#    same model as three separate `Linear(C, C)` layers, and why is it faster?
# 9. Train with AdamW alone (`muon_lr=None` in the profile's settings: the Trainer then builds its AdamW with the
#    config's `lr` and `betas`). How many steps does it need to reach 1.60, and what does that do to the run's time?
#    Why is Muon given only the weight matrices of the linear layers?

# %% [markdown] tags=["answer"]
# 1. That the initial logits are far from uniform: the model is confidently wrong from the start (10 nats means the
#    right character gets about $e^{-10}$), usually because of too large an initialisation of the embedding or the
#    output layer. The first steps are then spent shrinking the logits. Initialise with a small standard deviation
#    (0.02 here), or scale the output layer down.
# 2. Characters (or words) that are used in the same contexts should both be predicted in similar contexts and be
#    read in similar ways, so one vector per token serves both. It saves $V \cdot C$ parameters: $65 \times 128 =$
#    8 320 here (1 % of the model), and $50\,257 \times 768 \approx 38.6$ M for GPT-2, almost a third of its 124 M.
# 3. Attention costs grow with $T^2$ per sequence (and $T$ per token), and the context window holds 4 times less
#    text, so the model sees less of the past. BPE costs a vocabulary of tens of thousands of rows (embedding and
#    softmax), a tokenizer that must be trained and shipped, and odd behaviour on spelling, digits and rare words,
#    which are split into arbitrary pieces.
# 4. If the single most likely token already has probability above $p$, "cumulative below $p$" excludes it and
#    nothing is kept (a row of zeros, and `0/0` after renormalising). More generally the cut is always one token too
#    early, so a confident model loses exactly the token it is confident about. Keeping the token that crosses $p$
#    guarantees at least one token and a kept mass of at least $p$.
# 5. Attention at a position depends only on the positions up to it, and the cache stores exactly the keys and
#    values the full pass computes for them; so the logits agree up to float rounding and greedy tokens agree
#    exactly (barring a near tie). Bugs: position embeddings restarting at 0 for each new token instead of
#    continuing at the cache length; writing the new key at the wrong slot or forgetting to advance the length;
#    applying a top-left causal mask to the new query; forgetting the dropout is off (`model.eval()`); caching the
#    keys *before* the projection.
# 6. The query is the last position, so it may attend to every stored key and itself: no mask at all (or a
#    bottom-right aligned one when several new tokens are fed). `is_causal=True` with one query and $t$ keys aligns
#    the mask at the top left and lets the query see only the first key.
# 7. The ratio of what the model can memorise to how much distinct data it sees. 20 000 characters are seen dozens
#    of times in 400 steps and a 0.4 M parameter model memorises them; 1 M characters are seen only a few times in
#    the main run, and the model is too small to memorise them: its training loss stays only a little below its
#    validation loss (compare the last evaluation's two losses the main run prints), the gap of a model that generalises rather
#    than memorises, and dropout would mostly slow it down. Bigger models and longer runs (the gpu profile) move towards overfitting,
#    and there dropout pays.
# 8. The fused weight is the three matrices $W_q, W_k, W_v$ stacked along the output axis: row block $i$ of the
#    output only ever multiplies row block $i$ of the weight, so splitting the output gives exactly the three
#    projections, and each block has its own gradient. It is faster because one matrix product of width $3C$ is one
#    kernel call that reads $h$ once, instead of three calls that read it three times; for small models like this
#    one the fixed cost per call is a large share of the time.
# 9. On the course machine (cpu profile, the same schedule and seed, `lr` 3e-3, betas 0.9 and 0.99): AdamW alone reached
#    1.769 after 1 200 steps, 1.635 after 2 000 and 1.595 after 2 500, where Muon reached 1.580 after 1 200 steps (1.552
#    after 1 500). A Muon step costs about a fifth more there (the Newton-Schulz products on small matrices; Section 5
#    prints both step costs), but AdamW needs about twice as many steps, so its training takes about 1.7 times as long.
#    Muon is defined for matrices that map one hidden space to another: its update treats the input and output
#    dimensions as spaces to orthogonalise in. An embedding table is a lookup whose rows are updated only for the tokens
#    in the batch (orthogonalising across tokens mixes unrelated rows); norms and biases are vectors, for which
#    "orthogonal" means only a sign per entry; and the tied output head is the embedding itself. Those keep AdamW, as in
#    the published Muon recipes.

# %% [markdown]
# **Next hour:** pretrained transformers. Instead of training from scratch, we load BERT and T5, see what their
# pretraining objectives taught them, and fine-tune them for a task in minutes.
