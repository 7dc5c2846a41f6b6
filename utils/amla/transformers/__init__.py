"""Part 1 of the course, attention and transformers: what Hours 02-09 build and later hours reuse.

- ``attention``: softmax, scaled dot-product attention, padding and causal masks, kernel regression (Hour 02)
- ``tasks``: sequence tasks made in code: dates (Hour 03), reversal (Hour 04), addition (Hour 05)
- ``seq2seq``: the GRU encoder-decoder with additive attention, teacher forcing, greedy decoding (Hour 03)
- ``nn``: multi-head attention and the Transformer block (Hour 04)
- ``positions``: sinusoidal, learned and rotary positions (Hour 04)
- ``encoder``: the Transformer encoder, and how a student's Hour 04 pieces build it (Hour 04)
- ``encoder_decoder``: the encoder-decoder Transformer, label smoothing, beam search (Hour 05)
- ``text``: corpora, character and byte-pair tokenizers (Hour 06)
- ``gpt``: a small GPT with a KV cache, sampling (Hour 06)
- ``ablation``: switch attention heads off to test what an attention map suggests (Hours 04, 06)
- ``vit``: patches, the patch embedding (equal to a strided convolution), the Vision Transformer, attention
  rollout, a small CNN baseline (Hour 08, being written: its notebook is not there yet)
- ``efficiency``: measured time and memory of attention, SDPA backends, activation checkpointing,
  ``torch.compile`` with a fallback, bf16 autocast, MFU (Hour 09)
"""

from amla._lazy import lazy_submodules

__getattr__ = lazy_submodules(__name__, (
    "ablation", "attention", "efficiency", "encoder", "encoder_decoder", "gpt", "nn", "positions", "seq2seq", "tasks",
    "text", "vit"))
