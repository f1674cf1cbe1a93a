"""Runs ``sidecar`` (the rest of its command line) in this process, and writes the names of the
modules it has imported to a file each time a test asks: the test creates ``$PROBE_ASK``, this
writes ``$PROBE_OUT`` (one name a line) and removes ``$PROBE_ASK``.

Used as ``SidecarProcess(..., prefix=[python, module_probe.py])``: the sidecar then runs exactly
as ``sidecar run`` does, with one thread more that imports only the standard library.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path


def answer_asks(ask: Path, out: Path) -> None:
    while True:  # a daemon thread: it ends with the process
        if ask.exists():
            tmp = out.with_suffix(".tmp")
            tmp.write_text("\n".join(sorted(sys.modules)))
            tmp.replace(out)  # whole, never half-written
            ask.unlink()
        time.sleep(0.01)


if __name__ == "__main__":
    threading.Thread(
        target=answer_asks,
        args=(Path(os.environ["PROBE_ASK"]), Path(os.environ["PROBE_OUT"])),
        daemon=True,
    ).start()
    from sidecar.cli import main

    # argv: this file, the sidecar executable, then its arguments
    sys.exit(main(sys.argv[2:]))
