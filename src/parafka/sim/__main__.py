"""`python -m parafka.sim`: the simulator's command, kept where users run it."""

import sys

from parafka.testing.sim.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
