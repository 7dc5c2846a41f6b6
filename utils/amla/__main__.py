"""``python -m amla``: the same as the ``amla`` command."""

from amla.course.cli import main

raise SystemExit(main())
