"""Config checks of ``upstreams.<u>.auth`` that need the registered provider types.

``auth.type`` must name a registered provider; the keys beside it are validated with that
provider's ``settings_model`` and its secret references are read, each problem reported with the
file and key path (``sidecar.yaml: upstreams.pay.auth.token_url: required key is missing``), like
every config problem: the loader calls this with the plugin schemas, so ``sidecar check`` and a
reload say the same as start-up. An upstream whose ``request_headers`` also sets the header the
provider sets is refused too: one of the two would silently lose. So is a provider that cannot
credential a gRPC call (``hmac`` signs an HTTP body; an ``api_key`` sent as a query parameter)
on an upstream of the ``grpc`` adapter.
"""

from __future__ import annotations

__all__ = ["auth_problems"]

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ..config.checks import secret_problems
from ..config.policies import AuthPolicy
from ..config.problems import validation_problems
from ..config.types import SecretRef, show
from ..errors import ConfigProblem

if TYPE_CHECKING:
    from ..api import CredentialProvider

_COMMON = frozenset(AuthPolicy.model_fields)


def auth_problems(
    raw_upstreams: Any,
    types: Mapping[str, type[CredentialProvider]],
    file: str,
    grpc_adapters: frozenset[str] = frozenset(),
) -> list[ConfigProblem]:
    """Problems of every upstream's ``auth`` (raw data) against the registered provider types;
    ``grpc_adapters``: the adapters whose calls are gRPC calls (their traits say so)."""
    problems: list[ConfigProblem] = []
    for name, up in (raw_upstreams if isinstance(raw_upstreams, dict) else {}).items():
        auth = up.get("auth") if isinstance(up, dict) else None
        if not isinstance(auth, dict) or not isinstance(auth.get("type"), str):
            continue  # absent, or reported by the models
        where = ("upstreams", str(name), "auth")
        kind: str = auth["type"]
        cls = types.get(kind)
        if cls is None:
            registered = ", ".join(sorted(types)) or "none"
            problems.append(
                ConfigProblem(
                    file,
                    f"upstreams.{name}.auth.type",
                    f"no credential provider named {show(kind)} (registered: {registered})",
                )
            )
            continue
        options = {k: v for k, v in auth.items() if k not in _COMMON}
        try:
            settings = cls.settings_model.model_validate(options)
        except ValidationError as e:
            problems += validation_problems(e, file, where, cls.settings_model)
            problems += _raw_secret_problems(options, where, file)
            continue
        problems += secret_problems(settings, where, file)
        grpc = up.get("adapter", "http") in grpc_adapters
        refusal = cls.grpc_refusal(settings) if grpc else None
        if refusal is not None:
            problems.append(
                ConfigProblem(
                    file,
                    f"upstreams.{name}.auth",
                    f"{show(kind)} cannot credential a gRPC call: {refusal}",
                )
            )
        header = cls.header_of(settings)
        configured = up.get("request_headers")
        if header is not None and isinstance(configured, dict):
            for key in configured:
                if isinstance(key, str) and key.lower() == header:
                    problems.append(
                        ConfigProblem(
                            file,
                            f"upstreams.{name}.request_headers.{key}",
                            f"auth ({kind}) sets {header} already: remove one of the two",
                        )
                    )
    return problems


def _raw_secret_problems(
    options: dict[str, Any], where: tuple[str, ...], file: str
) -> list[ConfigProblem]:
    """Secret references among keys of a section its model refused: a missing secret is worth
    knowing in the same pass as a typo."""
    refs = {}
    for key, value in options.items():
        if isinstance(value, dict) and set(value) in ({"env"}, {"file"}):
            try:
                refs[key] = SecretRef.model_validate(value)
            except ValidationError:
                pass  # reported by the model
    return secret_problems(refs, where, file) if refs else []
