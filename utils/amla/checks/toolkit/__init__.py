"""Self-checks of Hour 01 (the toolkit): the training step, the warmup-cosine schedule, exact resume.

- 1.1 ``train_step``: two steps in a row on fresh copies of a small model (gradients left over from the first step
  show in the second), the losses and the parameters after each step compared with the reference; edge inputs:
  one micro-batch, micro-batches of one example, a max_norm that does not bind and one that binds hard, an enabled
  GradScaler (init_scale 2**10, so that clipping the scaled gradients is visible), a disabled one with momentum,
  bf16 autocast on the CPU. The micro-batches must come back unchanged; model, optimizer and scaler may change.
- 1.2 ``lr_at``: the learning rate at chosen steps of several schedules; edge inputs: no warm-up, warm-up as long as
  the run (no cosine part), min_lr == max_lr, min_lr = 0, steps far past the end. Its inputs are numbers, which
  cannot be changed in place.
- 1.3 ``save_training_state`` and ``load_training_state``, checked together: a run is interrupted, saved, loaded
  into fresh objects in "a new process" and finished; it must equal the uninterrupted run bit for bit, saving must
  change nothing, must leave no temporary file, must survive a crash mid-write, and the last save must win.
"""

from amla.checks.toolkit.lr_schedule import check_lr_schedule
from amla.checks.toolkit.resume import check_resume
from amla.checks.toolkit.train_step import check_train_step

__all__ = ["check_lr_schedule", "check_resume", "check_train_step"]
