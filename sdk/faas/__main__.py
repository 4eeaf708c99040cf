"""``python -m faas``: the ``faas`` command line."""

from __future__ import annotations

import sys

from faas.cli import main

if __name__ == "__main__":
    sys.exit(main())
