"""``python -m sae``: the command line (see sae.cli)."""

from __future__ import annotations

import sys

from sae.cli import main

if __name__ == "__main__":
    sys.exit(main())
