"""Every input kept under tests/fuzz/corpus/ replayed through its target: the seeds, and every
input a fuzzer found breaking a property, stay handled as documented (docs/fuzzing.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .targets import TARGETS

CORPUS = Path(__file__).parent / "corpus"
#: the corpus is checked in: it stays small
MAX_CORPUS_BYTES = 1 << 20
#: inputs that still break a property in code this suite does not own, each with why; a fix
#: makes its test pass, and strict xfail then asks for the entry to go
KNOWN_OPEN: dict[str, str] = {}


def _inputs() -> list[object]:
    params: list[object] = []
    for folder in sorted(p for p in CORPUS.iterdir() if p.is_dir()):
        for path in sorted(folder.iterdir()):
            key = f"{folder.name}/{path.name}"
            marks = (
                [pytest.mark.xfail(reason=KNOWN_OPEN[key], strict=True)]
                if key in KNOWN_OPEN
                else []
            )
            params.append(pytest.param(folder.name, path, id=key, marks=marks))
    return params


@pytest.mark.parametrize(("target", "path"), _inputs())
def test_kept_input_is_handled_as_documented(target: str, path: Path) -> None:
    """No input the fuzzers kept crashes, hangs, overruns a buffer or reaches an upstream
    it should not: each replays cleanly through its target."""
    TARGETS[target](path.read_bytes())


def test_every_target_has_a_corpus_and_every_corpus_a_target() -> None:
    """A corpus folder without a target would never be replayed, a target without seeds
    never fuzzed from a good start."""
    folders = {p.name for p in CORPUS.iterdir() if p.is_dir()}
    assert folders == set(TARGETS)
    for name in TARGETS:
        assert any(p.name.startswith("seed-") for p in (CORPUS / name).iterdir()), name


def test_the_corpus_stays_small() -> None:
    """The corpus is checked in and replayed by every test run: well under a megabyte."""
    size = sum(p.stat().st_size for p in CORPUS.rglob("*") if p.is_file())
    assert size < MAX_CORPUS_BYTES


def test_known_open_entries_name_real_inputs() -> None:
    """An entry for an input that is gone would hide nothing and mean nothing."""
    for key in KNOWN_OPEN:
        assert (CORPUS / key).is_file(), key
