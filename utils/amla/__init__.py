"""amla: the shared package of *Advanced ML Architectures, hour by hour*.

Small and explicit on purpose: each module is something a student does in the course.

- ``amla.env``: device (cuda > mps > cpu), seeding, profiles (smoke/cpu/gpu), environment report
- ``amla.train``: the Trainer, the training step with gradient accumulation, warmup-cosine schedule
- ``amla.precision``: mixed precision (autocast dtype, autocast, GradScaler), a no-op on the CPU
- ``amla.attention``: softmax, scaled dot-product attention, masks (Hour 02)
- ``amla.tasks``, ``amla.seq2seq``: sequence tasks made in code; the GRU encoder-decoder with attention (Hour 03)
- ``amla.nn``, ``amla.encoder_decoder``: multi-head attention and the Transformer (Hours 04-05)
- ``amla.text``, ``amla.gpt``: corpora, character and BPE tokenizers; a small GPT with a KV cache (Hour 06)
- ``amla.ablation``: switch attention heads off to test what an attention map suggests (Hours 04, 06)
- ``amla.checkpoint``: atomic checkpoints loaded with ``weights_only=True``
- ``amla.views``: matplotlib figures, interactive views with a static fallback, the live dashboard
- ``amla.checks``: the self-checks of the exercises
- ``amla.data``: the data directory, verified downloads, small built-in datasets
- ``amla.report``: the key metrics of an hour, collected by ``amla bench``
"""

from amla.env import env_report, per_profile, pick_device, profile, seed_everything, setup
from amla.report import report
from amla.train import Callback, History, TrainConfig, Trainer

__version__ = "0.1.0"

_SUBMODULES = (
    "ablation", "attention", "checkpoint", "checks", "course", "data", "encoder_decoder", "env", "gpt", "nn",
    "precision", "report", "seq2seq", "tasks", "text", "train", "views",
)


def __getattr__(name: str):  # PEP 562: `amla.views`, `amla.checks.toolkit` without importing all at start-up
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"amla.{name}")
    raise AttributeError(f"module 'amla' has no attribute {name!r}")


__all__ = [
    "Callback",
    "History",
    "TrainConfig",
    "Trainer",
    "env_report",
    "per_profile",
    "pick_device",
    "profile",
    "report",
    "seed_everything",
    "setup",
]
