"""A small GPT (Hour 06): decoder-only Transformer, sampling, and a KV cache for fast generation.

The model: token and learned position embeddings, ``n_layer`` pre-norm blocks (causal self-attention,
then an MLP, each added to the residual stream), a final LayerNorm, and a language-model head that
shares its weight matrix with the token embedding (weight tying). Attention runs through PyTorch's fused
``F.scaled_dot_product_attention``; ``need_weights=True`` takes the explicit path (scores, mask,
softmax) so the attention maps can be looked at.

Generation appends one token at a time. Without a cache every step runs the whole context again; with
a ``KVCache`` the keys and values of the earlier positions are kept, and a step only computes the new
position: the same tokens, much less work.

Two functions are the references of Hour 06's exercises and the hooks through which a student's versions run:
``gpt_block(block, x)`` (Exercise 6.2, the block with its causal self-attention, ``GPT(config, block_forward=fn)``)
and ``kv_attend(q, k, v, k_cache, v_cache, pos)`` (Exercise 6.4, one cached decode step of one layer,
``generate(..., kv_attend_fn=fn)``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from amla.toolkit.errors import check_hook, shape_text
from amla.transformers.attention import causal_mask
from amla.transformers.nn import merge_heads, split_heads

__all__ = [
    "GPT", "GPTConfig", "KVCache", "CausalSelfAttention", "flops_per_token", "generate", "gpt_block", "kv_attend",
    "sample_next", "top_p_probs",
]


@dataclass
class GPTConfig:
    vocab_size: int
    block_size: int = 256  # the longest context the model sees (one learned position embedding each)
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = False  # biases in the Linear layers and LayerNorms

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive int, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"GPTConfig.n_embd={self.n_embd} must be divisible by n_head={self.n_head}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout}")


class KVCache:
    """Keys and values of the positions seen so far, for every layer: ``[n_layer, B, heads, max_len, head_dim]``.

    ``update(layer, k, v)`` writes the new positions after the ``length`` stored ones and returns all keys and
    values up to them; the model calls ``advance(T)`` once all layers have seen the ``T`` new positions.
    ``attend_fn`` (e.g. a student's ``kv_attend``, Exercise 6.4) runs the decode steps that add one position.
    """

    def __init__(self, n_layer: int, batch: int, n_head: int, max_len: int, head_dim: int,
                 device: torch.device | str | None = None, dtype: torch.dtype = torch.float32,
                 attend_fn: "KVAttend | None" = None) -> None:
        shape = (n_layer, batch, n_head, max_len, head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.max_len, self.length = max_len, 0
        self.attend_fn = check_hook("KVCache", "attend_fn", attend_fn, _KV_SIGNATURE)

    @classmethod
    def for_model(cls, model: "GPT", batch: int, attend_fn: "KVAttend | None" = None) -> "KVCache":
        c, p = model.config, next(model.parameters())
        return cls(c.n_layer, batch, c.n_head, c.block_size, c.n_embd // c.n_head, p.device, p.dtype, attend_fn)

    def attend(self, layer: int, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """One decode step of ``layer`` through ``attend_fn``: q, k, v of one new position ``[B, H, 1, hd]``."""
        if self.length >= self.max_len:
            raise ValueError(f"KVCache holds {self.max_len} positions; all are stored, there is no room for one more")
        y = self.attend_fn(q, k, v, self.k[layer], self.v[layer], self.length)
        if not isinstance(y, Tensor) or y.shape != q.shape:
            raise ValueError(f"KVCache: attend_fn must return the attention output {tuple(q.shape)}, got "
                             f"{shape_text(y)}")
        return y

    def update(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        start, end = self.length, self.length + k.size(2)
        if end > self.max_len:
            raise ValueError(f"KVCache holds {self.max_len} positions; {self.length} stored + {k.size(2)} new is too many")
        self.k[layer, :, :, start:end] = k
        self.v[layer, :, :, start:end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]

    def advance(self, n: int) -> None:
        self.length += n

    def reset(self) -> None:
        self.length = 0


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with one fused projection to queries, keys and values."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head, self.head_dim = config.n_head, config.n_embd // config.n_head
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = config.dropout
        self.resid_drop = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, cache: KVCache | None = None, layer: int = 0,
                need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (split_heads(t, self.n_head) for t in (q, k, v))  # [B, H, T, hd], Hour 04's helper
        past = cache.length if cache is not None else 0
        if cache is not None and cache.attend_fn is not None and T == 1 and not need_weights:
            return self.resid_drop(self.proj(merge_heads(cache.attend(layer, q, k, v)))), None
        if cache is not None:
            k, v = cache.update(layer, k, v)  # [B, H, past + T, hd]
        p = self.dropout if self.training else 0.0
        weights = None
        if need_weights:  # the explicit path: what the fused kernel computes, with the weights kept
            scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)
            allowed = causal_mask(T, past + T, device=x.device, align="bottom_right")  # Hour 02's mask
            weights = scores.masked_fill(~allowed, float("-inf")).softmax(dim=-1)
            y = F.dropout(weights, p, self.training) @ v
        elif past == 0:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        elif T == 1:  # one new query may look at every stored position: no mask at all
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        else:  # several new queries after a prefix: query i sees the prefix and new positions <= i
            allowed = causal_mask(T, past + T, device=x.device, align="bottom_right")
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=p)
        y = merge_heads(y)  # [B, T, C]
        return self.resid_drop(self.proj(y)), weights


class MLP(nn.Module):
    """Hour 04's FeedForward without biases, with its output projection named ``proj`` (GPT-2's scaled init) and
    GPT-2's tanh approximation of GELU: the same curve to within 5e-4, and on a CPU the exact (erf) version costs
    about 5 microseconds more per call, 13 % of a KV-cached generation step of the Hour 06 model."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.proj(F.gelu(self.fc(x), approximate="tanh")))


class Block(nn.Module):
    """Pre-norm block: ``x + attn(ln(x))``, then ``x + mlp(ln(x))``.

    With ``block_forward`` (e.g. a student's ``gpt_block``, Exercise 6.2) a pass without a cache and without
    attention weights is ``block_forward(self, x)``; generation with a cache and the attention viewer take the
    package's path.
    """

    def __init__(self, config: GPTConfig, block_forward: "BlockForward | None" = None) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)
        self.block_forward = check_hook("Block", "block_forward", block_forward, _BLOCK_SIGNATURE)

    def forward(self, x: Tensor, cache: KVCache | None = None, layer: int = 0,
                need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        if self.block_forward is not None and cache is None and not need_weights:
            out = self.block_forward(self, x)
            if not isinstance(out, Tensor) or out.shape != x.shape:
                raise ValueError(f"Block: block_forward must return x {tuple(x.shape)}, got {shape_text(out)}")
            return out, None
        a, weights = self.attn(self.ln1(x), cache, layer, need_weights)
        x = x + a
        return x + self.mlp(self.ln2(x)), weights


class GPT(nn.Module):
    """Decoder-only Transformer language model: ``model(idx [B, T]) -> logits [B, T, vocab_size]``.

    ``block_forward(block, x) -> x`` (e.g. a student's ``gpt_block``) runs every block of the passes without a
    cache; see ``Block``.
    """

    def __init__(self, config: GPTConfig, block_forward: "BlockForward | None" = None) -> None:
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.n_embd)
        self.pos_emb = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config, block_forward) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.tok_emb.weight  # weight tying: one matrix reads and writes tokens
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2: shrink what each block adds to the residual stream
            if name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_params(self, embeddings: bool = True) -> int:
        """Parameters, each counted once (the tied matrix too); without the position embedding if not ``embeddings``."""
        n = sum(p.numel() for p in self.parameters())
        return n if embeddings else n - self.pos_emb.weight.numel()

    def forward(self, idx: Tensor, cache: KVCache | None = None) -> Tensor:
        return self._run(idx, cache, need_weights=False)[0]

    def forward_with_attention(self, idx: Tensor) -> tuple[Tensor, Tensor]:
        """Logits and the attention weights of every layer and head: ``[B, T, V]``, ``[n_layer, B, heads, T, T]``."""
        logits, weights = self._run(idx, None, need_weights=True)
        return logits, torch.stack(weights)

    def _run(self, idx: Tensor, cache: KVCache | None, need_weights: bool) -> tuple[Tensor, list[Tensor]]:
        if idx.dim() != 2 or idx.dtype not in (torch.long, torch.int, torch.int32):
            raise ValueError(f"GPT expects token ids of shape [B, T] (integer), got {idx.dtype} {tuple(idx.shape)}")
        B, T = idx.shape
        start = cache.length if cache is not None else 0
        if start + T > self.config.block_size:
            raise ValueError(f"positions {start}..{start + T - 1} exceed block_size={self.config.block_size}; "
                             "crop the context to the last block_size tokens")
        pos = torch.arange(start, start + T, device=idx.device)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(pos))
        weights = []
        for i, block in enumerate(self.blocks):
            x, w = block(x, cache, i, need_weights)
            if w is not None:
                weights.append(w)
        if cache is not None:
            cache.advance(T)
        return self.lm_head(self.ln_f(x)), weights


BlockForward = Callable[[Block, Tensor], Tensor]
KVAttend = Callable[[Tensor, Tensor, Tensor, Tensor, Tensor, int], Tensor]
_BLOCK_SIGNATURE = "gpt_block(block, x) -> x"
_KV_SIGNATURE = "kv_attend(q, k, v, k_cache, v_cache, pos) -> out"


def gpt_block(block: Block, x: Tensor) -> Tensor:
    """Exercise 6.2's reference: the pre-norm block from its parts, ``x + attn(ln1(x))``, then
    ``x + mlp(ln2(x))``, the attention causal self-attention with one fused projection to q, k and v.

    Dropout: the residual dropout after the attention (``block.attn.resid_drop``) and the MLP's own; not the dropout
    of the attention weights, which the package's ``Block.forward`` adds.
    """
    B, T, C = x.shape
    attn = block.attn
    q, k, v = attn.qkv(block.ln1(x)).split(C, dim=2)
    q, k, v = (split_heads(t, attn.n_head) for t in (q, k, v))  # [B, H, T, hd]
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    x = x + attn.resid_drop(attn.proj(merge_heads(y)))
    return x + block.mlp(block.ln2(x))


def kv_attend(q: Tensor, k: Tensor, v: Tensor, k_cache: Tensor, v_cache: Tensor, pos: int) -> Tensor:
    """Exercise 6.4's reference: one decode step of one layer. ``q, k, v [B, H, 1, hd]`` belong to the new position,
    ``k_cache, v_cache [B, H, max_len, hd]`` hold the ``pos`` earlier ones in slots ``0 .. pos - 1`` (later slots
    hold leftovers). Writes ``k, v`` into slot ``pos`` and returns the new query's attention over slots
    ``0 .. pos``: ``[B, H, 1, hd]``."""
    k_cache[:, :, pos : pos + 1] = k
    v_cache[:, :, pos : pos + 1] = v
    return F.scaled_dot_product_attention(q, k_cache[:, :, : pos + 1], v_cache[:, :, : pos + 1])


def flops_per_token(config: GPTConfig, n_params: int, context: int | None = None) -> float:
    """Training FLOPs per token: ``6 N`` for the weights (forward 2N, backward 4N) plus the attention scores
    and weighted sums, ``12 * n_layer * T * n_embd`` (the PaLM appendix estimate), T the context length."""
    T = context or config.block_size
    return 6.0 * n_params + 12.0 * config.n_layer * T * config.n_embd


# --- sampling -------------------------------------------------------------------------------------


def top_p_probs(logits: Tensor, p: float, temperature: float = 1.0) -> Tensor:
    """Nucleus (top-p) probabilities over the last dim: the smallest set of most likely tokens whose
    probability reaches ``p`` (the token that crosses ``p`` included), renormalised; 0 elsewhere."""
    if not 0.0 < p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {p}")
    probs = (logits / temperature).softmax(dim=-1)
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    before = sorted_probs.cumsum(dim=-1) - sorted_probs  # probability of the more likely tokens
    sorted_probs = sorted_probs.masked_fill(before >= p, 0.0)  # keep a token while the mass before it is < p
    kept = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return kept / kept.sum(dim=-1, keepdim=True)


TopP = Callable[[Tensor, float, float], Tensor]
_TOP_P_SIGNATURE = "top_p_probs(logits, p, temperature) -> probs"


def sample_next(logits: Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                generator: torch.Generator | None = None, *, top_p_fn: TopP | None = None) -> Tensor:
    """One token per row of ``logits [B, V]``: greedy when ``temperature == 0``, else sampled from the
    tempered distribution, restricted to the ``top_k`` most likely and/or the top-``p`` nucleus.

    ``top_p_fn(logits, p, temperature) -> probs`` computes the nucleus (default: ``top_p_probs``); Hour 06 passes
    the student's. It gets the logits already divided by the temperature (and top-k filtered), with temperature 1.
    """
    check_hook("sample_next", "top_p_fn", top_p_fn, _TOP_P_SIGNATURE)
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    logits = logits / temperature
    if top_k is not None:
        kth = logits.topk(min(top_k, logits.size(-1)), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is None:
        probs = logits.softmax(dim=-1)
    elif top_p_fn is None:
        probs = top_p_probs(logits, top_p)
    else:
        if not 0.0 < top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        probs = top_p_fn(logits, top_p, 1.0)
        if not isinstance(probs, Tensor) or probs.shape != logits.shape:
            got = f"shape {tuple(probs.shape)}" if isinstance(probs, Tensor) else type(probs).__name__
            raise ValueError(f"sample_next: top_p_fn must return probabilities of shape {tuple(logits.shape)}, got {got}")
    return torch.multinomial(probs, 1, generator=generator)


def generate(model: GPT, idx: Tensor, max_new_tokens: int, *, temperature: float = 1.0, top_k: int | None = None,
             top_p: float | None = None, use_cache: bool = True, generator: torch.Generator | None = None,
             top_p_fn: TopP | None = None, kv_attend_fn: KVAttend | None = None) -> Tensor:
    """Append ``max_new_tokens`` tokens to ``idx [B, T]``; returns ``[B, T + max_new_tokens]``.

    Each token is drawn by ``sample_next`` (``temperature``, ``top_k``, ``top_p``; ``top_p_fn`` computes the
    nucleus, default ``top_p_probs``: Hour 06 passes the student's). ``kv_attend_fn`` runs the cached decode steps
    (``kv_attend``'s signature; default: the package's attention; Hour 06 passes the student's).

    Without the cache each step runs the model on the last ``block_size`` tokens. With it, the prompt runs once
    (the prefill) and each step feeds only the newest token. Both give the same tokens as long as the context
    fits in ``block_size`` (prompt + new tokens - 1 <= block_size). Beyond that, learned positions cannot be
    shifted inside a cache: the cached version then starts again from the last ``block_size // 2`` tokens.
    """
    check_hook("generate", "top_p_fn", top_p_fn, _TOP_P_SIGNATURE)
    check_hook("generate", "kv_attend_fn", kv_attend_fn, _KV_SIGNATURE)
    was_training = model.training
    model.eval()
    block = model.config.block_size
    try:
        with torch.inference_mode():  # no_grad, and no version counters either: about 10 % of a cached CPU step
            cache = KVCache.for_model(model, idx.size(0), kv_attend_fn) if use_cache else None
            for _ in range(max_new_tokens):
                if cache is None:
                    logits = model(idx[:, -block:])
                elif cache.length == 0:  # the prefill: the whole prompt at once
                    logits = model(idx[:, -block:], cache)
                elif cache.length >= block:  # full: start again from the last half block
                    cache.reset()
                    logits = model(idx[:, -(block // 2):], cache)
                else:
                    logits = model(idx[:, -1:], cache)
                nxt = sample_next(logits[:, -1], temperature, top_k, top_p, generator, top_p_fn=top_p_fn)
                idx = torch.cat([idx, nxt], dim=1)
    finally:
        model.train(was_training)
    return idx.clone()  # inference-mode tensors cannot enter autograd later; the clone is an ordinary tensor
