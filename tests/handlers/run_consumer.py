"""Run one ParallelConsumer in its own process, for tests that kill it with SIGKILL.

Usage: python -m tests.handlers.run_consumer '<json>'; the JSON object holds the
ParallelConsumer keyword arguments, the handler target as "handler", and optionally
"until_idle" and "log_level" (parafka's log lines of that level and above on stderr;
without it, warnings and errors only). Prints the final stats as one JSON line when the
run ends by itself.
"""

import dataclasses
import json
import logging
import sys

from parafka import ParallelConsumer


def main() -> None:
    spec = json.loads(sys.argv[1])
    handler = spec.pop("handler")
    until_idle = spec.pop("until_idle", None)
    if (level := spec.pop("log_level", None)) is not None:
        logging.basicConfig(level=level, format="%(name)s %(levelname)s %(message)s")
    stats = ParallelConsumer(handler, **spec).run(until_idle=until_idle)
    print(json.dumps(dataclasses.asdict(stats), default=str), flush=True)


if __name__ == "__main__":
    main()
