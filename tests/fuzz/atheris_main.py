"""One coverage-guided atheris process for one target: ``python -m tests.fuzz.atheris_main
TARGET STATE_DIR [libFuzzer flags and corpus dirs]`` (``scripts/fuzz`` starts it and restarts it
after a hang or an out-of-memory kill).

A broken property or a crash does not stop the run: the input is saved at once into
``tests/fuzz/corpus/TARGET/crash-<sha1>`` (one per distinct signature: exception type, the
innermost sidecar frame, the message without numbers), its traceback appended to
``STATE_DIR/crashes.log``, and fuzzing goes on. Statistics are written to ``STATE_DIR/stats.json``
as the run goes, since atheris leaves without running exit hooks. Not here: the targets
(:mod:`tests.fuzz.targets`) or the time budget (:mod:`tests.fuzz.run`).
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
import traceback
from pathlib import Path

import atheris

# instrumented: the code under test and the pure-Python parsers it drives (llhttp is C)
with atheris.instrument_imports(include=["sidecar", "h2", "hpack", "hyperframe", "yaml"]):
    from tests.fuzz.common import set_input_seconds
    from tests.fuzz.targets import TARGETS, PropertyBroken

CORPUS = Path(__file__).parent / "corpus"
STATS_EVERY = 5.0
#: the bound on one input under instrumentation, which slows the h2 and YAML code ~30 times;
#: what takes this long here is a hang, or worth a look (the replay holds inputs to 1 s)
INSTRUMENTED_INPUT_SECONDS = 5.0


class Recorder:
    """Runs the target on each input; saves each new kind of failure as it happens."""

    def __init__(self, target: str, state: Path) -> None:
        self.name = target
        self.fn = TARGETS[target]
        self.state = state
        self.started = time.monotonic()
        self.last_stats = 0.0
        self.execs = 0
        self.signatures_file = state / "signatures"
        self.signatures = set(_read_lines(self.signatures_file))
        self.saved: list[str] = []

    def __call__(self, data: bytes) -> None:
        self.execs += 1
        try:
            self.fn(data)
        except Exception as e:  # every failure is recorded; the run goes on
            self.record(data, e)
        now = time.monotonic()
        if now - self.last_stats > STATS_EVERY:
            self.last_stats = now
            self.write_stats(now)

    def record(self, data: bytes, error: Exception) -> None:
        signature = _signature(error)
        if signature in self.signatures:
            return
        self.signatures.add(signature)
        with self.signatures_file.open("a") as f:
            f.write(signature + "\n")
        path = CORPUS / self.name / f"crash-{hashlib.sha1(data).hexdigest()[:16]}"  # noqa: S324
        path.write_bytes(data)
        self.saved.append(path.name)
        trace = "".join(traceback.format_exception(error))
        with (self.state / "crashes.log").open("a") as f:
            f.write(f"=== {path} ({len(data)} bytes)\n{signature}\n{trace}\n")
        print(f"\n[fuzz] new failure saved as {path}: {signature}", file=sys.stderr, flush=True)
        self.write_stats(time.monotonic())

    def write_stats(self, now: float) -> None:
        stats = {
            "target": self.name,
            "seconds": round(now - self.started, 1),
            "execs": self.execs,
            "execs_per_second": round(self.execs / max(now - self.started, 1e-9)),
            "new_failures": self.saved,
            "signatures": sorted(self.signatures),
        }
        (self.state / "stats.json").write_text(json.dumps(stats, indent=1) + "\n")


#: what varies between two inputs breaking the same property: quoted input, numbers, lists
_VARYING = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|\d+|\[[^\]]*\]|\([^)]*\)")


def _signature(error: BaseException) -> str:
    """What makes two failures the same bug: for a broken property, what the message says
    before its details; for a crash, its type and innermost sidecar frame."""
    if isinstance(error, PropertyBroken):
        return "broken: " + _VARYING.sub("_", str(error)).split(": ", 1)[0][:100]
    frames = traceback.extract_tb(error.__traceback__)
    ours = [f for f in frames if "/sidecar/" in f.filename]
    where = f"{Path(ours[-1].filename).name}:{ours[-1].lineno}" if ours else "-"
    return f"crash: {type(error).__name__} @ {where}"


def _read_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def main() -> None:
    target, state = sys.argv[1], Path(sys.argv[2])
    state.mkdir(parents=True, exist_ok=True)
    set_input_seconds(INSTRUMENTED_INPUT_SECONDS)
    recorder = Recorder(target, state)
    atheris.Setup([sys.argv[0], *sys.argv[3:]], recorder)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
