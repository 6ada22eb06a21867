"""The `parafka` command (and `python -m parafka`): the CLI, or one line naming the extra to
install when the CLI's dependencies are missing (`pip install parafka` is the library only)."""

from __future__ import annotations

import sys

from parafka.core.errors import EXIT_USAGE
from parafka.core.extras import MissingExtra, require


def main() -> int:
    """Entry point of the console script; returns the exit code."""
    try:
        for module in ("click", "rich"):
            require(module, "the parafka command")
    except MissingExtra as exc:
        print(f"parafka: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from parafka.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
