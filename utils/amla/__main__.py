"""``python -m amla``: the same as the ``amla`` command."""

from amla.cli import main

raise SystemExit(main())
