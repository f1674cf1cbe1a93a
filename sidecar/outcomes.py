"""How a call ended, as condition names policies match on (``retry.on``, ``failure_on``).

An adapter's classifier turns a response or an error into a tuple of condition names: a refused
connect is ``("connect-failure",)``, a 503 is ``("503", "5xx")``, a success below 400 is ``()``.
Retry and the circuit breaker only compare names, so a gRPC or GraphQL adapter plugs in its own
(``unavailable``, ``graphql-errors``...) without either policy knowing the protocol.
"""

from __future__ import annotations

__all__ = ["Classifier", "classify_http", "conditions_of_error"]

from collections.abc import Callable
from typing import Final

from .exchange import Response

#: ``(response, error) -> condition names``; exactly one of the two is given.
Classifier = Callable[[Response | None, BaseException | None], tuple[str, ...]]

_ERRORS: Final[dict[str, tuple[str, ...]]] = {
    "upstream_connect": ("connect-failure",),
    "upstream_reset": ("reset",),
    "upstream_timeout": ("timeout",),
    "upstream_protocol": ("protocol",),
}
#: built once: a status's conditions are its code and its class (``"503"``, ``"5xx"``).
_STATUS: Final[dict[int, tuple[str, ...]]] = {
    code: (str(code), f"{code // 100}xx") for code in range(400, 600)
}


def conditions_of_error(error: BaseException) -> tuple[str, ...]:
    """Conditions of a typed sidecar error: its own ``conditions`` if it names them (a TLS
    refusal is ``tls``), else by its ``code``; ``()`` for anything else."""
    own: tuple[str, ...] | None = getattr(error, "conditions", None)
    if own is not None:
        return own
    return _ERRORS.get(getattr(error, "code", ""), ())


def classify_http(response: Response | None, error: BaseException | None) -> tuple[str, ...]:
    """The HTTP adapter's classifier: transport errors by kind, statuses ≥ 400 by code/class."""
    if error is not None:
        return conditions_of_error(error)
    if response is not None:
        return _STATUS.get(response.status, ())
    return ()
