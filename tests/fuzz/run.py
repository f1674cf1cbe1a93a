"""The time budget of a coverage-guided run: ``python -m tests.fuzz.run TARGET [SECONDS]`` (what
``scripts/fuzz`` runs).

It starts :mod:`tests.fuzz.atheris_main` with libFuzzer's time limit, a per-input timeout and a
memory limit, and restarts it until the budget is spent: libFuzzer ends the process on a hang
(``-timeout``) or past the memory limit, and those inputs (``timeout-*``, ``oom-*``) are copied
into ``tests/fuzz/corpus/TARGET/`` like the crashes the process saves itself. New coverage goes
to a scratch queue (``$SIDECAR_FUZZ_STATE``, default ``$TMPDIR/sidecar-fuzz/TARGET``), so the
checked-in corpus stays the small seed set plus what failed. Not here: the fuzzing itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .targets import TARGETS

ROOT = Path(__file__).parents[2]
CORPUS = Path(__file__).parent / "corpus"
DICTS = Path(__file__).parent / "dicts"
#: libFuzzer's limits for one input: a hang and a memory blow-up end the process
INPUT_TIMEOUT = 10
RSS_LIMIT_MB = 2048
FAILED = ("crash-", "timeout-", "oom-", "leak-", "slow-unit-")
#: tokens libFuzzer splices into inputs (tests/fuzz/dicts/NAME.dict), by target
DICTIONARIES = {"http_request": "http", "headers": "http", "upstream_response": "http"}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in TARGETS:
        names = ", ".join(TARGETS)
        print(f"usage: scripts/fuzz TARGET [SECONDS]; targets: {names}", file=sys.stderr)
        return 2
    target = argv[0]
    budget = float(argv[1]) if len(argv) > 1 else 60.0
    base = os.environ.get("SIDECAR_FUZZ_STATE") or Path(tempfile.gettempdir()) / "sidecar-fuzz"
    state = Path(base) / target
    queue, seeds, artifacts = state / "queue", state / "seeds", state / "artifacts"
    for d in (queue, artifacts):
        d.mkdir(parents=True, exist_ok=True)
    # the checked-in corpus minus its failures, which would stop libFuzzer at its first read
    shutil.rmtree(seeds, ignore_errors=True)
    seeds.mkdir(parents=True)
    for f in (CORPUS / target).iterdir():
        if not f.name.startswith(FAILED):
            shutil.copy(f, seeds / f.name)
    deadline = time.monotonic() + budget
    log = state / "fuzz.log"
    runs = 0
    while (left := deadline - time.monotonic()) >= 1:
        runs += 1
        started = time.monotonic()
        command = [
            sys.executable,
            "-m",
            "tests.fuzz.atheris_main",
            target,
            str(state),
            f"-max_total_time={int(left)}",
            f"-timeout={INPUT_TIMEOUT}",
            f"-rss_limit_mb={RSS_LIMIT_MB}",
            f"-artifact_prefix={artifacts}/",
            "-print_final_stats=1",
            str(queue),
            str(seeds),
        ]
        dictionary = DICTS / f"{DICTIONARIES.get(target, target)}.dict"
        if dictionary.exists():
            command.insert(5, f"-dict={dictionary}")
        with log.open("a") as out:
            out.write(f"\n=== run {runs}: {' '.join(command)}\n")
            out.flush()
            code = subprocess.call(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        found = _collect(artifacts, CORPUS / target)
        for name in found:
            print(f"[fuzz] libFuzzer stopped on an input, saved as corpus/{target}/{name}")
        if code != 0 and not found and time.monotonic() - started < 5:
            print(f"[fuzz] the fuzzer failed to start (exit {code}); see {log}", file=sys.stderr)
            return 1
    _summary(state, target, runs)
    return 0


def _collect(artifacts: Path, corpus: Path) -> list[str]:
    """Move libFuzzer's artifacts (hangs, out-of-memory) into the corpus, named by content."""
    names = []
    for f in sorted(artifacts.iterdir()):
        kind = f.name.split("-", 1)[0]
        data = f.read_bytes()
        name = f"{kind}-{hashlib.sha1(data).hexdigest()[:16]}"  # noqa: S324
        if not (corpus / name).exists():
            (corpus / name).write_bytes(data)
            names.append(name)
        f.unlink()
    return names


def _summary(state: Path, target: str, runs: int) -> None:
    stats_file = state / "stats.json"
    stats = json.loads(stats_file.read_text()) if stats_file.exists() else {}
    print(
        f"[fuzz] {target}: {runs} run(s), {stats.get('execs', '?')} inputs in the last, "
        f"{stats.get('execs_per_second', '?')}/s; failures known: "
        f"{len(stats.get('signatures', []))} (details: {state / 'crashes.log'})"
    )
    for signature in stats.get("signatures", []):
        print(f"  {signature}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
