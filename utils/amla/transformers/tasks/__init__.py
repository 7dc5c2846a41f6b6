"""Sequence tasks made in code: no download, any size, a seed makes them repeatable.

Every task gives ``PairSet``\\ s of (source text, target text) pairs, and a ``Vocab`` turns text into
padded tensors of token ids and back. What they share (``amla.transformers.tasks.vocab``):

- ``Vocab``: a character-level vocabulary with the special tokens ``<pad>`` (id 0), ``<bos>`` (1)
  and ``<eos>`` (2); ``encode_batch`` pads with ``<pad>``, ``decode`` stops at ``<eos>``.
- ``PairSet``: sources, targets and a tag per pair (which format or variant made it);
  ``tensors(src_vocab, tgt_vocab)`` gives the padded id tensors a model trains on.

Tasks, one module each:

- ``date_task`` (``amla.transformers.tasks.dates``, Hour 03): human-written dates to ISO ``yyyy-mm-dd``, split by date.
- ``reversal_task`` (``amla.transformers.tasks.reversal``, Hour 04): a random sequence and the same sequence reversed.
- ``addition_task`` (``amla.transformers.tasks.addition``, Hour 05): ``"123+4567="`` -> ``"4690"``, split by operand pair.
"""

from amla.transformers.tasks.addition import AdditionTask, addition_task
from amla.transformers.tasks.dates import (
    DATE_CHARACTERS, DATE_END, DATE_FORMATS, DATE_START, ISO_CHARACTERS, ISO_FIELDS, MONTHS, WEEKDAYS, YMD_FORMATS,
    DateTask, date_task, render_date,
)
from amla.transformers.tasks.reversal import ReversalTask, reversal_task
from amla.transformers.tasks.vocab import BOS, BOS_ID, EOS, EOS_ID, PAD, PAD_ID, SPECIALS, PairSet, Vocab

__all__ = [
    "AdditionTask", "BOS", "BOS_ID", "DATE_CHARACTERS", "DATE_END", "DATE_FORMATS", "DATE_START", "DateTask", "EOS",
    "EOS_ID", "ISO_CHARACTERS", "ISO_FIELDS", "MONTHS", "PAD", "PAD_ID", "PairSet", "ReversalTask", "SPECIALS",
    "Vocab", "WEEKDAYS", "YMD_FORMATS", "addition_task", "date_task", "render_date", "reversal_task",
]
