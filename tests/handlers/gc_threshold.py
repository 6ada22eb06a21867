"""A handler for the CLI tests: writes the garbage collector's young threshold, as the
handler sees it, to the file named by PARAFKA_TEST_OUT."""

import gc
import os
from pathlib import Path

from parafka import Record

OUT = Path(os.environ["PARAFKA_TEST_OUT"])


def handle(record: Record) -> None:
    OUT.write_text(f"{gc.get_threshold()[0]}\n")
