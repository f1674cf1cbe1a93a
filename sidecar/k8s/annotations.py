"""The ``sidecar.io/*`` annotations of a workload, read into a :class:`~.pod.SidecarSpec`.

Annotations may sit on the workload's metadata, a CronJob's job template, or the pod template;
the innermost one wins (the pod template's over the workload's), for every key. Values are
checked as the API server would check the fields they end up in (names, ports, quantities), so a
bad value is an error naming the annotation, never a manifest the cluster refuses later. An
unknown ``sidecar.io/`` key is an error too: a typo would otherwise silently mean "default".
What this module does not do: find the annotations in a manifest (:mod:`.inject`).
"""

from __future__ import annotations

__all__ = [
    "ANNOTATIONS",
    "INJECT",
    "STATUS",
    "AnnotationError",
    "Defaults",
    "parse_quantity",
    "read_spec",
]

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from .pod import (
    DEFAULT_INBOUND_PORT,
    DEFAULT_METRICS_PORT,
    DEFAULT_RESOURCES,
    FIXED_ENV,
    Resources,
    SecretEnv,
    SidecarSpec,
)

PREFIX = "sidecar.io/"
INJECT = PREFIX + "inject"
#: written by ``sidecar inject`` on the pod template: what it added, so a second run can replace it
STATUS = PREFIX + "status"
IMAGE = PREFIX + "image"
CONFIG_MAP = PREFIX + "config-map"
METRICS_PORT = PREFIX + "metrics-port"
INBOUND_PORT = PREFIX + "inbound-port"
CPU_REQUEST = PREFIX + "cpu-request"
CPU_LIMIT = PREFIX + "cpu-limit"
MEMORY_REQUEST = PREFIX + "memory-request"
MEMORY_LIMIT = PREFIX + "memory-limit"
SECRET_VOLUMES = PREFIX + "secret-volumes"
SECRET_ENV = PREFIX + "secret-env"
ANNOTATIONS = (
    INJECT,
    STATUS,
    IMAGE,
    CONFIG_MAP,
    METRICS_PORT,
    INBOUND_PORT,
    CPU_REQUEST,
    CPU_LIMIT,
    MEMORY_REQUEST,
    MEMORY_LIMIT,
    SECRET_VOLUMES,
    SECRET_ENV,
)

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_QUANTITY = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E|[eE][-+]?\d+)?$")
_SUFFIX = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}
#: ``sidecar-secret-<name>`` is a volume name: a DNS label of at most 63 characters.
_MAX_SECRET_VOLUME = 63 - len("sidecar-secret-")


class AnnotationError(ValueError):
    """A ``sidecar.io/`` annotation that cannot be used; ``path`` locates it in the document."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class Defaults:
    """What applies where no annotation says otherwise (``sidecar inject``'s options)."""

    image: str
    config_map: str
    native: bool


def parse_quantity(text: str) -> Decimal:
    """A Kubernetes quantity (``250m``, ``1.5``, ``128Mi``, ``1e3``) as a number; ValueError."""
    match = _QUANTITY.match(text)
    if match is None:
        raise ValueError(f"not a Kubernetes quantity like 250m, 1, 128Mi or 1Gi: {text!r}")
    number, suffix = match.group(1), match.group(2) or ""
    try:
        if suffix[:1] in ("e", "E"):
            return Decimal(number) * Decimal(10) ** int(suffix[1:])
        return Decimal(number) * _SUFFIX[suffix]
    except (InvalidOperation, OverflowError):
        raise ValueError(f"not a usable quantity: {text!r}") from None


class _Annotations:
    """The merged ``sidecar.io/`` annotations, each remembering where it was written."""

    def __init__(self, sources: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        self.values: dict[str, tuple[str, str]] = {}  # key -> (value, path)
        for where, found in sources:  # outermost first: inner ones overwrite
            for key, value in found.items():
                if not isinstance(key, str) or not key.startswith(PREFIX):
                    continue
                path = f'{where}["{key}"]'
                if key not in ANNOTATIONS:
                    near = difflib.get_close_matches(key, ANNOTATIONS, n=1)
                    hint = f" (did you mean {near[0]}?)" if near else ""
                    raise AnnotationError(path, f"unknown sidecar annotation{hint}")
                if not isinstance(value, str):
                    raise AnnotationError(
                        path, f"annotation values are strings: quote it ({_quoted(value)})"
                    )
                self.values[key] = (value, path)

    def get(self, key: str) -> tuple[str, str] | None:
        return self.values.get(key)


def _quoted(value: Any) -> str:
    """What to write instead of an unquoted value: YAML read ``false`` as a boolean, whose
    Python spelling (``False``) would be refused as the string it then becomes."""
    if isinstance(value, bool):
        return '"true"' if value else '"false"'
    if value is None:
        return '"" or a value in quotes'
    return f'"{value}"'


def _port(found: tuple[str, str] | None, default: int) -> int:
    if found is None:
        return default
    value, path = found
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise AnnotationError(path, f"a port is a number from 1 to 65535, got {value!r}")
    return int(value)


def _name(found: tuple[str, str] | None, default: str, what: str) -> str:
    if found is None:
        return default
    value, path = found
    if len(value) > 253 or not _DNS_SUBDOMAIN.match(value):
        raise AnnotationError(
            path, f"a {what} name is lowercase letters, digits, '-' and '.', got {value!r}"
        )
    return value


def _image(found: tuple[str, str] | None, default: str) -> str:
    if found is None:
        return default
    value, path = found
    if not value or any(c.isspace() or not c.isprintable() for c in value):
        raise AnnotationError(path, f"an image reference has no spaces and is not empty: {value!r}")
    return value


def _checked_quantity(value: str, path: str, *, memory: bool) -> str:
    try:
        amount = parse_quantity(value)
    except ValueError as e:
        raise AnnotationError(path, str(e)) from None
    if amount <= 0:
        raise AnnotationError(path, f"must be more than 0, got {value!r}")
    if memory and value.endswith("m"):
        raise AnnotationError(path, f"'m' is thousandths of a byte here: did you mean {value}i?")
    return value


def _request(found: tuple[str, str] | None, default: str, *, memory: bool) -> str:
    return default if found is None else _checked_quantity(*found, memory=memory)


def _limit(found: tuple[str, str] | None, default: str | None, *, memory: bool) -> str | None:
    """A limit, or ``none``: no limit at all."""
    if found is None:
        return default
    value, path = found
    return None if value == "none" else _checked_quantity(value, path, memory=memory)


def _resources(notes: _Annotations) -> Resources:
    base = DEFAULT_RESOURCES
    resources = Resources(
        cpu_request=_request(notes.get(CPU_REQUEST), base.cpu_request, memory=False),
        memory_request=_request(notes.get(MEMORY_REQUEST), base.memory_request, memory=True),
        cpu_limit=_limit(notes.get(CPU_LIMIT), base.cpu_limit, memory=False),
        memory_limit=_limit(notes.get(MEMORY_LIMIT), base.memory_limit, memory=True),
    )
    # the API server refuses a request above its limit: say so here, naming the annotation
    pairs = (
        ("cpu", resources.cpu_request, resources.cpu_limit, CPU_REQUEST, CPU_LIMIT),
        ("memory", resources.memory_request, resources.memory_limit, MEMORY_REQUEST, MEMORY_LIMIT),
    )
    for what, request, limit, request_key, limit_key in pairs:
        if limit is not None and parse_quantity(request) > parse_quantity(limit):
            found = notes.get(request_key) or notes.get(limit_key)
            path = found[1] if found else request_key
            raise AnnotationError(path, f"the {what} request {request} is above its limit {limit}")
    return resources


def _secret_volumes(found: tuple[str, str] | None) -> tuple[str, ...]:
    if found is None:
        return ()
    value, path = found
    names = [n.strip() for n in value.split(",") if n.strip()]
    for name in names:
        if len(name) > _MAX_SECRET_VOLUME or not _DNS_LABEL.match(name):
            raise AnnotationError(
                path,
                f"{name!r}: a Secret named here is lowercase letters, digits and '-', at most "
                f"{_MAX_SECRET_VOLUME} characters (its volume is sidecar-secret-<name>)",
            )
        if names.count(name) > 1:
            raise AnnotationError(path, f"{name!r} is named twice")
    return tuple(names)


def _secret_env(found: tuple[str, str] | None) -> tuple[SecretEnv, ...]:
    if found is None:
        return ()
    value, path = found
    entries: list[SecretEnv] = []
    for item in (i.strip() for i in value.split(",")):
        if not item:
            continue
        name, _, ref = item.partition("=")
        secret, _, key = ref.partition("/")
        if not (_ENV_NAME.match(name) and _DNS_SUBDOMAIN.match(secret) and _SECRET_KEY.match(key)):
            raise AnnotationError(
                path, f"{item!r}: expected NAME=secret/key, e.g. PAYMENTS_API_KEY=payments-api/key"
            )
        if name in FIXED_ENV:
            raise AnnotationError(path, f"{name} is set by sidecar inject itself: pick another")
        if any(e.name == name for e in entries):
            raise AnnotationError(path, f"{name} is named twice")
        entries.append(SecretEnv(name=name, secret=secret, key=key))
    return tuple(entries)


def read_spec(
    sources: Sequence[tuple[str, Mapping[str, Any]]], defaults: Defaults
) -> SidecarSpec | None:
    """The spec for one pod template, or ``None`` when it opted out (``sidecar.io/inject``).

    ``sources`` are ``(path, annotations)`` pairs, outermost first; ``path`` locates the
    annotations mapping in the document, for error messages.
    """
    notes = _Annotations(sources)
    inject = notes.get(INJECT)
    if inject is not None:
        value, path = inject
        if value not in ("true", "false"):
            raise AnnotationError(path, f'expected "true" or "false", got {value!r}')
        if value == "false":
            return None
    spec = SidecarSpec(
        image=_image(notes.get(IMAGE), defaults.image),
        config_map=_name(notes.get(CONFIG_MAP), defaults.config_map, "ConfigMap"),
        metrics_port=_port(notes.get(METRICS_PORT), DEFAULT_METRICS_PORT),
        inbound_port=_port(notes.get(INBOUND_PORT), DEFAULT_INBOUND_PORT),
        resources=_resources(notes),
        secret_volumes=_secret_volumes(notes.get(SECRET_VOLUMES)),
        secret_env=_secret_env(notes.get(SECRET_ENV)),
        native=defaults.native,
    )
    if spec.metrics_port == spec.inbound_port:
        found = notes.get(METRICS_PORT) or notes.get(INBOUND_PORT)
        path = found[1] if found else METRICS_PORT
        raise AnnotationError(path, f"the metrics and inbound ports are both {spec.metrics_port}")
    return spec
