"""``python -m lenscast`` is the ``lenscast`` command."""

from lenscast.cli import main

raise SystemExit(main())
