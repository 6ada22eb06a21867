"""`python -m parafka.demo [OPTIONS]`: the same as `parafka demo [OPTIONS]`."""

import sys

from parafka.cli import main

if __name__ == "__main__":  # spawned worker processes import this module too
    sys.exit(main(["demo", *sys.argv[1:]]))
