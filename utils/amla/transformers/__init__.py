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
- ``pretraining``: BERT's masking rule, static and dynamic masking (RoBERTa), a small masked language model, T5's
  text-to-text tasks told apart by a prefix (Hour 07)
- ``pretrained``: all-MiniLM-L6-v2 offline (sha256-checked weights, eager attention), mean pooling, a TF-IDF
  baseline; ``finetune``: a sentence classifier on a pretrained encoder, length-bucketed batches, evaluation;
  ``bias``: a WEAT association test with a permutation p-value (Hour 07)
- ``vit``: the hour's digits data and shift augmentation, patches, the patch embedding (equal to a strided
  convolution), the Vision Transformer, attention rollout, a small CNN baseline (Hour 08)
- ``swin``: windowed and shifted-window attention; ``detr``: set prediction with bipartite matching (Hour 08)
- ``efficiency``: measured time and memory of attention, SDPA backends, activation checkpointing,
  ``torch.compile`` with a fallback, bf16 autocast, MFU (Hour 09)
"""

from amla._lazy import lazy_submodules

__getattr__ = lazy_submodules(__name__, (
    "ablation", "attention", "bias", "detr", "efficiency", "encoder", "encoder_decoder", "finetune", "gpt", "nn",
    "positions", "pretrained", "pretraining", "seq2seq", "swin", "tasks", "text", "vit"))
