"""Value types used in config files: durations, sizes, addresses and secret references.

Each parses the human form (``"2s"``, ``"64KiB"``, ``"127.0.0.1:15001"``, ``{env: NAME}``) once,
at load time, into a plain value, and says exactly what it expected when it cannot.
"""

from __future__ import annotations

__all__ = ["Address", "Duration", "SecretRef", "Size", "parse_duration", "parse_size"]

import os
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, model_validator
from pydantic_core import PydanticCustomError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_SIZE = re.compile(r"^\s*(\d+)\s*(B|KB|KiB|MB|MiB|GB|GiB)?\s*$")
_SIZE_UNITS = {
    None: 1,
    "B": 1,
    "KB": 1000,
    "KiB": 1024,
    "MB": 1000**2,
    "MiB": 1024**2,
    "GB": 1000**3,
    "GiB": 1024**3,
}


def parse_duration(value: Any) -> float:
    """``"250ms"``, ``"2s"``, ``"1.5m"``, ``"1h"`` (or a number of seconds) → seconds."""
    if isinstance(value, bool):
        pass
    elif isinstance(value, int | float) and value >= 0:
        return float(value)
    elif isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    raise PydanticCustomError(
        "duration", 'expected a duration like "2s", got {got}', {"got": _show(value)}
    )


def parse_size(value: Any) -> int:
    """``"64KiB"``, ``"10MB"``, ``1024`` → bytes."""
    if isinstance(value, bool):
        pass
    elif isinstance(value, int) and value >= 0:
        return value
    elif isinstance(value, str):
        m = _SIZE.match(value)
        if m:
            return int(m.group(1)) * _SIZE_UNITS[m.group(2)]
    raise PydanticCustomError(
        "size", 'expected a size like "64KiB" or "10MB", got {got}', {"got": _show(value)}
    )


def parse_address(value: Any) -> str:
    """``"host:port"`` (``[v6]:port`` for IPv6) with a port in 0–65535."""
    if isinstance(value, str):
        host, sep, port = value.rpartition(":")
        if sep and host and port.isdigit() and int(port) <= 65535:
            return value
    raise PydanticCustomError(
        "address", 'expected an address like "127.0.0.1:15001", got {got}', {"got": _show(value)}
    )


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def _show(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


Duration = Annotated[float, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]
Address = Annotated[str, BeforeValidator(parse_address)]


class SecretRef(BaseModel):
    """A secret by reference: ``{env: NAME}`` or ``{file: /path}``; never the value itself.

    The reference is what ``/config`` shows; :meth:`reveal` reads the value when it is needed.
    File secrets are re-read when the file changes (Kubernetes swaps a symlink on rotation).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: str | None = None
    file: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise PydanticCustomError(
                "secret_ref", "expected exactly one of {{env: NAME}} or {{file: PATH}}"
            )
        return self

    def reveal(self) -> str:
        """The secret's current value; raises ``LookupError`` (without the value) if missing."""
        if self.env is not None:
            value = os.environ.get(self.env)
            if value is None:
                raise LookupError(f"environment variable {self.env} is not set")
            return value
        assert self.file is not None
        try:
            return Path(self.file).read_text().strip()
        except OSError as e:
            raise LookupError(f"cannot read secret file {self.file}: {e.strerror}") from None

    def __repr__(self) -> str:
        return f"SecretRef(env={self.env!r})" if self.env else f"SecretRef(file={self.file!r})"

    __str__ = __repr__


#: A string field that may also be given as a secret reference.
StrOrSecret = str | SecretRef


def _dump_secret(v: SecretRef) -> dict[str, str]:
    return {"env": v.env} if v.env is not None else {"file": v.file or ""}


SecretField = Annotated[SecretRef, PlainSerializer(_dump_secret)]
