"""``api_key``: a static key in a header (``X-API-Key`` by default) or a query parameter.

``{type: api_key, key: {env: NAME}}`` sends ``X-API-Key: <key>``; ``header: X-Token`` names
another header; ``query: api_key`` sends it as ``?api_key=<key>`` instead (percent-encoded,
appended to the app's query). Either way the app's own value under that name is removed first
(unless ``pass_through``). The key is a secret reference; a file is re-read when it changes.
The access log never shows the query, so a key there is not logged. A gRPC call has no query:
``query`` is refused on an upstream of the ``grpc`` adapter.
"""

from __future__ import annotations

__all__ = ["ApiKey", "ApiKeySettings"]

import re
from urllib.parse import quote, unquote_plus

from pydantic import field_validator, model_validator
from pydantic_core import PydanticCustomError

from ..api import CredentialProvider, ProviderContext
from ..config.base import Model
from ..config.models import ConfigurableHeaderName
from ..config.policies import SecretByReference
from ..config.secrets import SecretValue
from ..config.types import header_value_problem, show
from ..exchange import Exchange
from ..injected import Injected

_PARAM = re.compile(r"^[A-Za-z0-9._~-]{1,128}$")


class ApiKeySettings(Model):
    """``upstreams.<u>.auth`` with ``type: api_key``."""

    key: SecretByReference
    #: the header the key is sent in (unless ``query`` is given).
    header: ConfigurableHeaderName = "x-api-key"
    #: send the key as this query parameter instead of a header.
    query: str | None = None

    @field_validator("query")
    @classmethod
    def _param(cls, v: str | None) -> str | None:
        if v is not None and not _PARAM.match(v):
            raise PydanticCustomError(
                "query",
                "a query parameter name is letters, digits, '.', '_', '~' or '-', got {got}",
                {"got": show(v)},
            )
        return v

    @model_validator(mode="after")
    def _one_place(self) -> ApiKeySettings:
        if self.query is not None and "header" in self.model_fields_set:
            raise PydanticCustomError("api_key", "give header or query, not both")
        return self


class ApiKey(CredentialProvider):
    """A static API key (see the module)."""

    settings_model = ApiKeySettings
    settings: ApiKeySettings

    def __init__(self, settings: ApiKeySettings, context: ProviderContext) -> None:
        super().__init__(settings, context)
        in_header = settings.query is None
        self._key = context.secret(
            settings.key, "key", check=header_value_problem if in_header else None
        )
        self._param = settings.query
        self._encoded: tuple[str, str] = ("", "")  # (key, "name=<encoded key>")

    @classmethod
    def header_of(cls, settings: ApiKeySettings) -> str | None:
        return settings.header if settings.query is None else None

    @classmethod
    def grpc_refusal(cls, settings: ApiKeySettings) -> str | None:
        if settings.query is None:
            return None
        return "a gRPC call has no query string: send the key in a header (drop query)"

    def injected(self) -> Injected:
        if self._param is None:
            return super().injected()
        return Injected(query={self._param: f"auth {self.context.type_name}"})

    def supplied(self, exchange: Exchange) -> bool:
        if self._param is None:
            return super().supplied(exchange)
        return any(_is(part, self._param) for part in exchange.query.split("&"))

    def header_injection(self) -> tuple[str, SecretValue] | None:
        """The header this provider sets on every call and the secret it sets it to, when that
        is all ``inject`` does (a key in a header, not the query): the auth filter then sets it
        itself, in compiled code, instead of calling this interpreted class on each call."""
        if self._param is not None:
            return None
        return self.settings.header, self._key

    def inject(self, exchange: Exchange) -> None:
        key = self._key.get()
        name = self._param
        if name is None:
            exchange.headers.set(self.settings.header, key)
            return
        encoded = self._encoded
        if encoded[0] is not key:
            encoded = self._encoded = (key, f"{name}={quote(key, safe='')}")
        query = exchange.query
        if query:
            kept = [p for p in query.split("&") if p and not _is(p, name)]
            kept.append(encoded[1])
            exchange.query = "&".join(kept)
        else:
            exchange.query = encoded[1]


def _is(part: str, name: str) -> bool:
    """Whether a ``k=v`` query part is parameter ``name`` (as sent, or once decoded)."""
    raw = part.partition("=")[0]
    return raw == name or unquote_plus(raw) == name
