"""Fuzz harness for the config loader: bytes as a config file, through
:func:`~sidecar.config.load_data` (read, decode, strict YAML, substitution) and
:func:`~sidecar.config.validate_data` with the built-in plugins' schemas.

Checked for every input: the loader returns a config or raises :class:`ConfigError` with at
least one problem, each naming the file, and nothing else (no ``RecursionError``, no pydantic or
YAML exception leaking); it finishes within its bound, whatever aliases the YAML nests. Secret
references are checked but never read: a fuzzed ``{file: ...}`` must not read this machine's
files, so :meth:`SecretRef.reveal` answers a fixed value meanwhile. Not here: the models'
individual rules (tests/unit/test_config_*.py).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from sidecar.config import PluginSchemas, SecretRef, load_data, parse_config, validate_data
from sidecar.errors import ConfigError
from sidecar.plugins import make_plugin_host

from .common import PropertyBroken, input_seconds

#: what ``${...}`` may name during fuzzing: a fixed environment, never the machine's
ENVIRON = {"FUZZ_SET": "set", "FUZZ_PORT": "15001", "FUZZ_EMPTY": ""}


@cache
def _schemas() -> PluginSchemas:
    return make_plugin_host(load_entry_points=False).schemas()


@cache
def _scratch() -> Path:
    fd, name = tempfile.mkstemp(prefix="sidecar-fuzz-", suffix=".yaml")
    os.close(fd)
    return Path(name)


def _reveal_offline(self: SecretRef) -> str:
    """``SecretRef.reveal`` without reading: a fixed value, checked as the real one would be."""
    value = "fuzz-secret-value"
    problem = self.value_problem(value)
    if problem is not None:
        raise LookupError(f"the secret {self} {problem}")
    return value


@contextmanager
def _secrets_offline() -> Iterator[None]:
    real = SecretRef.reveal
    SecretRef.reveal = _reveal_offline  # type: ignore[method-assign]
    try:
        yield
    finally:
        SecretRef.reveal = real  # type: ignore[method-assign]


def config_target(data: bytes) -> None:
    """``data`` as the bytes of a config file."""
    path = _scratch()
    path.write_bytes(data)
    started = time.perf_counter()
    with _secrets_offline():
        try:
            loaded, name = load_data(path, ENVIRON)
            validate_data(loaded, name, _schemas())
        except ConfigError as e:
            _check_problems(e, str(path))
    _check_time(started, len(data))


def config_text_target(text: str) -> None:
    """``text`` through :func:`~sidecar.config.parse_config`, the path reloads take."""
    started = time.perf_counter()
    with _secrets_offline():
        try:
            parse_config(text, "fuzz.yaml", ENVIRON, schemas=_schemas())
        except ConfigError as e:
            _check_problems(e, "fuzz.yaml")
    _check_time(started, len(text))


def _check_problems(error: ConfigError, file: str) -> None:
    if not error.problems:
        raise PropertyBroken("a config refused without any problem") from error
    for problem in error.problems:
        if problem.file != file or not problem.reason:
            raise PropertyBroken(f"a problem without file or reason: {problem!r}") from error
        str(problem)


def _check_time(started: float, size: int) -> None:
    elapsed = time.perf_counter() - started
    if elapsed > input_seconds():
        raise PropertyBroken(f"a {size}-byte config took {elapsed:.2f}s to load")
