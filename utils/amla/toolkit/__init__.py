"""The toolkit: what every hour trains with (built in Hour 01, used by all the others).

- ``env``: device (cuda > mps > cpu), seeding, the profiles (smoke / cpu / gpu), the environment report
- ``train``: the course ``Trainer``, the training step with gradient accumulation, the warmup-cosine schedule
- ``optim``: ``MuonWithAdamW``, Muon for the weight matrices and AdamW for the rest (Hour 06)
- ``precision``: mixed precision (autocast dtype, autocast, GradScaler), a no-op on the CPU
- ``distributed``: data-parallel training (DDP under torchrun, rank-0 logging and checkpoints), Hour 09
- ``early_stopping``: the ``EarlyStopping`` callback (best weights restored), Hour 07
- ``checkpoint``: atomic checkpoints, loaded with ``weights_only=True``; the RNG state
- ``data``: the data directory, sha256-verified downloads, small built-in datasets
- ``report``: ``amla.report(...)``, the key metrics of an hour, collected by ``amla bench``
- ``errors``: helpers for the one-line error messages

The views every hour draws with live in ``amla.views``.
"""

from amla._lazy import lazy_submodules

__getattr__ = lazy_submodules(__name__, ("checkpoint", "data", "distributed", "early_stopping", "env", "errors", "optim", "precision", "report", "train"))
