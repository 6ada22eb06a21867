"""`python -m examples.demo [OPTIONS]` (what `make demo` runs), from a checkout's root."""

import sys

from examples.demo.cli import demo
from parafka.cli import run_command

if __name__ == "__main__":  # spawned worker processes import this module too
    sys.exit(run_command(demo, sys.argv[1:], "python -m examples.demo"))
