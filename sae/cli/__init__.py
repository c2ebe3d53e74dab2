"""The command line: ``python -m sae train ...`` and ``python -m sae gradcheck``.

Exit codes: 0 success; 1 training diverged or a gradient check failed; 2 a bad flag, value, data
or file (one line ``error: ...`` on stderr, never a traceback); 130 interrupted (Ctrl-C).

Example (UFLDL's exercise, a few seconds):
    python -m sae train --dataset patches --hidden 25 --rho 0.01 --beta 3 --weight-decay 1e-4 \\
        --optimizer lbfgs --max-iter 400 --seed 0 --out runs/ufldl
"""

from __future__ import annotations

import sys
from typing import Sequence

from sae.core.config import ConfigError
from sae.cli.parser import build_parser, given_flags


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (argparse usage errors exit 2 through SystemExit)."""
    from sae.data import DataError
    from sae.viz.images import ImageError
    from sae.runs.model_file import RunFileError

    args = build_parser().parse_args(argv)
    args.given = given_flags(argv)
    try:
        return args.handler(args)
    except (ConfigError, DataError, RunFileError, ImageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; nothing saved", file=sys.stderr)
        return 130


__all__ = ["main", "build_parser"]
