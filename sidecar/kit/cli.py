"""``sidecar plugin new``: start a plugin distribution from a template.

::

    sidecar plugin new NAME --kind adapter|filter|credentials|ratelimit-backend [--dir PATH]

Writes ``sidecar-NAME`` (or ``PATH``): a ``pyproject.toml``, the package ``sidecar_NAME``, a
README and tests that pass as written (:mod:`.scaffold`). Exit codes: 0 written, 1 refused (the
reason on stderr), 2 bad arguments.
"""

from __future__ import annotations

__all__ = ["add_parser", "run"]

import argparse
import sys
from pathlib import Path

#: the kinds a template exists for (``templates/<kind>/``)
KINDS = ("adapter", "filter", "credentials", "ratelimit-backend")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``plugin`` and its command ``new`` to the ``sidecar`` parser."""
    plugin = sub.add_parser("plugin", help="start a plugin of your own (plugin new NAME)")
    cmds = plugin.add_subparsers(dest="plugin_command", required=True)
    new = cmds.add_parser(
        "new", help="write a plugin distribution (package, tests, README) that works as is"
    )
    new.add_argument("name", help="the plugin's name: lowercase letters, digits and '_'")
    new.add_argument("--kind", required=True, choices=KINDS, help="what the plugin adds")
    new.add_argument(
        "--dir",
        type=Path,
        metavar="PATH",
        help="directory to write (default ./sidecar-NAME); must not exist",
    )


def run(args: argparse.Namespace) -> int:
    from .scaffold import ScaffoldRefused, scaffold

    try:
        written = scaffold(args.name, args.kind, args.dir)
    except ScaffoldRefused as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {written.root} ({len(written.files)} files), a {args.kind} plugin:")
    for path in written.files:
        print(f"  {path.relative_to(written.root)}")
    print(
        "next:\n"
        f"  cd {written.root}\n"
        "  pip install -e '.[test]'    # the plugin, found by sidecar through its entry point\n"
        "  pytest                      # its unit and integration tests"
    )
    return 0
