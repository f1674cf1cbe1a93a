"""``sidecar contract verify`` and ``sidecar contract pact-from-cassette``.

``verify PACT --upstream NAME [-c FILE] [--provider-states-url URL]`` starts the sidecar from
FILE (:func:`~.verify.verification_sidecar`), sends each of the pact's HTTP interactions through
upstream NAME and prints ``PASS``/``FAIL`` per interaction, each failure on its own line. Exit
codes: 0 when every interaction passed; 1 when one failed (or the pact has none to verify);
2 when the pact, the cassette or the config cannot be used.

``pact-from-cassette CASSETTE --consumer A --provider B -o PACT`` writes the V3 pact of a
recorded cassette (:mod:`.from_cassette`), replacing PACT in one rename.
"""

from __future__ import annotations

__all__ = ["add_parser", "run"]

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .pact import PactInteraction
    from .verify import Verdict

_VERIFY_HELP = "verify a pact (V2-V4 HTTP interactions) through the sidecar against the provider"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``contract`` and its two commands to the ``sidecar`` parser."""
    contract = sub.add_parser("contract", help="contract tests with Pact files")
    cmds = contract.add_subparsers(dest="contract_command", required=True)
    verify = cmds.add_parser("verify", help=_VERIFY_HELP)
    verify.add_argument("pact", help="the pact file (JSON)")
    verify.add_argument("--upstream", required=True, help="the upstream the provider is")
    verify.add_argument("-c", "--config", help="YAML config file (the embedded default without)")
    verify.add_argument(
        "--provider-states-url",
        help="where provider states are set up (POST {state, params, action: setup})",
    )
    convert = cmds.add_parser(
        "pact-from-cassette", help="write a V3 consumer pact from a recorded cassette"
    )
    convert.add_argument("cassette", help="the cassette file")
    convert.add_argument("--consumer", required=True, help="the consumer's name")
    convert.add_argument("--provider", required=True, help="the provider's name")
    convert.add_argument("-o", "--output", required=True, help="the pact file to write")


def run(args: argparse.Namespace) -> int:
    if args.contract_command == "verify":
        return _verify(args.pact, args.upstream, args.config, args.provider_states_url)
    return _convert(args.cassette, args.consumer, args.provider, args.output)


def _verify(pact_path: str, upstream: str, config: str | None, state_url: str | None) -> int:
    from .. import loops
    from ..errors import ConfigError, PluginError
    from .pact import PactError, load_pact

    try:
        pact = load_pact(pact_path)
    except PactError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        verdicts, base = loops.run(_run(pact.interactions, upstream, config, state_url))
    except ConfigError as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        return 2
    except (PluginError, OSError, LookupError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(
        f"verifying {pact_path}: {pact.consumer or '?'} -> {pact.provider or '?'}, "
        f"{len(pact.interactions)} HTTP interactions through {base}"
    )
    for skipped in pact.skipped:
        print(f"SKIP  {skipped}: not an HTTP interaction")
    for verdict in verdicts:
        states = ", ".join(name for name, _ in verdict.interaction.states)
        given = f" (given {states})" if states else ""
        print(f"{'PASS' if verdict.passed else 'FAIL'}  {verdict.interaction.description}{given}")
        for failure in verdict.failures:
            print(f"      - {failure}")
    failed = sum(1 for v in verdicts if not v.passed)
    print(f"{len(verdicts) - failed} of {len(verdicts)} interactions passed; {failed} failed")
    if not verdicts:
        print("error: the pact has no HTTP interaction to verify", file=sys.stderr)
        return 1
    return 0 if failed == 0 else 1


async def _run(
    interactions: Sequence[PactInteraction],
    upstream: str,
    config: str | None,
    state_url: str | None,
) -> tuple[list[Verdict], str]:
    from .verify import verification_sidecar, verify_interactions

    async with verification_sidecar(config) as sidecar:
        if upstream not in sidecar.config.upstreams:
            names = ", ".join(sorted(sidecar.config.upstreams)) or "none"
            raise LookupError(f"no upstream {upstream!r} in the config (upstreams: {names})")
        base = f"http://127.0.0.1:{sidecar.http_port}/{upstream}"
        verdicts = await verify_interactions(interactions, base, state_url=state_url)
    return verdicts, base


def _convert(cassette: str, consumer: str, provider: str, output: str) -> int:
    from ..cassettes.file import CassetteError, load_interactions
    from .from_cassette import pact_from_interactions

    try:
        conversion = pact_from_interactions(load_interactions(cassette), consumer, provider)
        _write_atomically(Path(output), json.dumps(conversion.pact, indent=2) + "\n")
    except (CassetteError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for note in conversion.notes:
        print(f"note: {note}", file=sys.stderr)
    count = len(conversion.pact["interactions"])
    print(f"{output}: {count} interactions, {consumer} -> {provider} (pact V3)")
    return 0


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.resolve().parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
