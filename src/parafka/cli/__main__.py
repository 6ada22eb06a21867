"""`python -m parafka.cli`: the `parafka` command."""

import sys

from parafka.cli import main

if __name__ == "__main__":
    sys.exit(main())
