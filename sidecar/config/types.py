"""Value types used in config files: durations, sizes, addresses, header values and secrets.

Each parses the human form (``"2s"``, ``"64KiB"``, ``"127.0.0.1:15001"``, ``{env: NAME}``) once,
at load time, into a plain value, and says exactly what it expected when it cannot. This module
does not know where a value sits in the file: the loader adds the key path to every message.

Nothing here ever puts a secret's value in a message: a secret is named by its reference only.
"""

from __future__ import annotations

__all__ = [
    "Address",
    "Duration",
    "HeaderSecretRef",
    "HeaderValue",
    "LoopbackAddress",
    "PositiveDuration",
    "SecretField",
    "SecretRef",
    "Size",
    "StrOrSecret",
    "header_value_problem",
    "parse_address",
    "parse_duration",
    "parse_size",
    "split_address",
]

import ipaddress
import json
import os
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    PlainValidator,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_SIZE = re.compile(r"^(\d+)\s*(b|kb|kib|mb|mib|gb|gib)?$", re.IGNORECASE)
_SIZE_UNITS = {
    None: 1,
    "b": 1,
    "kb": 1000,
    "kib": 1024,
    "mb": 1000**2,
    "mib": 1024**2,
    "gb": 1000**3,
    "gib": 1024**3,
}
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9-]{1,63})*\.?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: a secret file holds a key or a token; reading stops past this
MAX_SECRET_CHARS = 1 << 20
#: Field-value octets RFC 9110 §5.5 allows: visible latin-1, space and tab (no CR, LF, NUL).
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")


def show(value: Any) -> str:
    """A config value as a message shows it: strings quoted, YAML spellings for the rest."""
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return text if len(text) <= 80 else text[:76] + '..."'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


# --- durations and sizes -----------------------------------------------------------------------


def parse_duration(value: Any) -> float:
    """``"250ms"``, ``"2s"``, ``"1.5m"``, ``"1h"``, ``"1m30s"`` or a number of seconds → seconds."""
    if isinstance(value, bool):
        pass
    elif isinstance(value, int | float) and value >= 0:
        return float(value)
    elif isinstance(value, str):
        text = value.strip()
        if _DURATION.match(text):
            return sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(text))
    raise PydanticCustomError(
        "duration", 'expected a duration like "2s", got {got}', {"got": show(value)}
    )


def _positive(value: float) -> float:
    if value <= 0:
        raise PydanticCustomError("duration", "must be longer than 0s")
    return value


def parse_size(value: Any) -> int:
    """``"64KiB"``, ``"10MB"``, ``1024`` → bytes (``KB`` is 1000, ``KiB`` is 1024)."""
    if isinstance(value, bool):
        pass
    elif isinstance(value, int) and value >= 0:
        return value
    elif isinstance(value, str):
        m = _SIZE.match(value.strip())
        if m:
            unit = m.group(2).lower() if m.group(2) else None
            return int(m.group(1)) * _SIZE_UNITS[unit]
    raise PydanticCustomError(
        "size", 'expected a size like "64KiB" or "10MB", got {got}', {"got": show(value)}
    )


# --- addresses ---------------------------------------------------------------------------------


def parse_address(value: Any) -> str:
    """``"host:port"`` (``"[v6]:port"`` for IPv6) with a port in 0–65535 (0: any free port)."""
    if isinstance(value, str):
        host, sep, port = value.rpartition(":")
        if sep and host and port.isdigit() and int(port) <= 65535:
            bare = host[1:-1] if host.startswith("[") and host.endswith("]") else None
            if bare is not None:
                try:
                    ipaddress.IPv6Address(bare)
                    return value
                except ValueError:
                    pass
            elif ":" not in host and _HOSTNAME.match(host):
                return value
    raise PydanticCustomError(
        "address", 'expected an address like "127.0.0.1:15001", got {got}', {"got": show(value)}
    )


def split_address(address: str) -> tuple[str, int]:
    """``"[::1]:80"`` → ``("::1", 80)``."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def _loopback(address: str) -> str:
    host = split_address(address)[0]
    if host.lower() == "localhost":
        return address
    try:
        if ipaddress.ip_address(host).is_loopback:
            return address
    except ValueError:
        pass
    raise PydanticCustomError(
        "loopback",
        "must be a loopback address (127.0.0.1, [::1] or localhost): only the app beside the "
        "sidecar may call it, got {got}",
        {"got": show(address)},
    )


Duration = Annotated[float, BeforeValidator(parse_duration)]
#: a duration that must be more than zero (timeouts).
PositiveDuration = Annotated[float, BeforeValidator(parse_duration), AfterValidator(_positive)]
Size = Annotated[int, BeforeValidator(parse_size)]
Address = Annotated[str, BeforeValidator(parse_address)]
#: an address the admin and egress listeners may bind: loopback only (neither authenticates).
LoopbackAddress = Annotated[str, BeforeValidator(parse_address), AfterValidator(_loopback)]


# --- secrets -----------------------------------------------------------------------------------


class SecretRef(BaseModel):
    """A secret by reference: ``{env: NAME}`` or ``{file: /path}``; never the value itself.

    The reference is what ``/config`` shows; :meth:`reveal` reads the value when it is needed.
    A file's value has surrounding whitespace (the trailing newline) removed.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: str | None = None
    file: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _by_reference(cls, value: Any) -> Any:
        """Anything but a mapping is refused without repeating it: a value written inline
        here would be a secret in the file, and then in this very message."""
        if isinstance(value, dict | SecretRef):
            return value
        raise PydanticCustomError(
            "secret_ref",
            "a secret is given by reference, {env: NAME} or {file: PATH}, never inline "
            "(the value is not repeated here)",
        )

    @field_validator("env")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        if v is not None and not _ENV_NAME.match(v):
            raise PydanticCustomError(
                "env_name", "expected an environment variable name, got {got}", {"got": show(v)}
            )
        return v

    @field_validator("file")
    @classmethod
    def _file_name(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise PydanticCustomError("file_name", "expected a file path, got an empty string")
        return v

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise PydanticCustomError(
                "secret_ref", "a secret reference is {env: NAME} or {file: PATH}, exactly one"
            )
        return self

    @model_serializer
    def _as_reference(self) -> dict[str, str]:
        return {"env": self.env} if self.env is not None else {"file": self.file or ""}

    def reveal(self) -> str:
        """The secret's current value; raises ``LookupError`` (naming only the reference)."""
        if self.env is not None:
            value = os.environ.get(self.env)
            if value is None:
                raise LookupError(f"the secret {self} is missing: the variable is not set")
        else:
            assert self.file is not None
            try:
                with Path(self.file).open() as f:
                    # bounded: a path to a device or an endless pipe must not take the memory
                    value = f.read(MAX_SECRET_CHARS + 1)
                if len(value) > MAX_SECRET_CHARS:
                    raise LookupError(f"the secret {self} is over {MAX_SECRET_CHARS} characters")
                value = value.strip()
            except OSError as e:
                raise LookupError(f"the secret {self} cannot be read: {e.strerror}") from None
            except UnicodeDecodeError:
                raise LookupError(f"the secret {self} is not UTF-8 text") from None
        if not value:
            raise LookupError(f"the secret {self} is empty")
        problem = self.value_problem(value)
        if problem is not None:
            # the message names the reference and the problem, never the value
            raise LookupError(f"the secret {self} {problem}")
        return value

    def value_problem(self, value: str) -> str | None:
        """Why ``value`` cannot be used where this reference sits (``None``: it can)."""
        return None

    def __str__(self) -> str:
        return f"{{env: {self.env}}}" if self.env is not None else f"{{file: {self.file}}}"

    def __repr__(self) -> str:
        return f"SecretRef(env={self.env!r})" if self.env else f"SecretRef(file={self.file!r})"


def header_value_problem(value: str) -> str | None:
    """Why ``value`` cannot be sent as a header value (it could split the request head)."""
    if not _FIELD_VALUE.fullmatch(value):
        return "contains a control or non-latin-1 character (CR, LF and NUL are never allowed)"
    return None


class HeaderSecretRef(SecretRef):
    """A secret used as a header value: it must not be able to split the request head."""

    def value_problem(self, value: str) -> str | None:
        return header_value_problem(value)


def _check_header_value(value: str) -> str:
    problem = header_value_problem(value)
    if problem is not None:
        raise PydanticCustomError("header_value", problem)
    return value


#: A header value written in the file; checked like a secret's value, and shown when wrong.
HeaderValue = Annotated[str, AfterValidator(_check_header_value)]


def _str_or_secret(ref_type: type[SecretRef], check: Any) -> Any:
    """A validator taking a string or a ``{env|file}`` mapping, with one plain message if neither
    (a bare ``str | SecretRef`` union reports one error per member)."""

    def validate(value: Any) -> str | SecretRef:
        if isinstance(value, str):
            return check(value) if check is not None else value
        if isinstance(value, SecretRef):
            return value
        if isinstance(value, dict):
            return ref_type.model_validate(value)
        raise PydanticCustomError(
            "str_or_secret",
            "expected a string or a secret reference ({env: NAME} or {file: PATH}), got {got}",
            {"got": show(value)},
        )

    return validate


def _dump_str_or_secret(value: str | SecretRef) -> Any:
    return value if isinstance(value, str) else value.model_dump()


#: A string field that may also be given as a secret reference.
StrOrSecret = Annotated[
    str | SecretRef,
    PlainValidator(_str_or_secret(SecretRef, None)),
    PlainSerializer(_dump_str_or_secret),
]
#: A header value: a string or a secret reference whose value is checked when read.
HeaderValueOrSecret = Annotated[
    str | SecretRef,
    PlainValidator(_str_or_secret(HeaderSecretRef, _check_header_value)),
    PlainSerializer(_dump_str_or_secret),
]
#: Kept for existing imports: a secret reference field (dumps as its reference).
SecretField = SecretRef
