"""``bearer``: a static token from a secret reference, sent as ``Authorization: Bearer <token>``.

``{type: bearer, token: {file: /var/run/secrets/api/token}}``. ``header`` names another header;
``scheme`` another word before the token (``""``: the token alone). The app's own value of the
header is replaced (unless ``pass_through``); a token file is re-read when it changes.
"""

from __future__ import annotations

__all__ = ["Bearer", "BearerSettings"]

from pydantic import field_validator
from pydantic_core import PydanticCustomError

from ..api import CredentialProvider, ProviderContext
from ..config.base import Model
from ..config.models import ConfigurableHeaderName
from ..config.policies import SecretByReference
from ..config.types import header_value_problem, show
from ..exchange import Exchange


class BearerSettings(Model):
    """``upstreams.<u>.auth`` with ``type: bearer``."""

    token: SecretByReference
    header: ConfigurableHeaderName = "authorization"
    #: the word before the token; ``""`` sends the token alone.
    scheme: str = "Bearer"

    @field_validator("scheme")
    @classmethod
    def _scheme(cls, v: str) -> str:
        if v and not v.replace("-", "").replace("_", "").isalnum():
            raise PydanticCustomError(
                "scheme", "an auth scheme is one word like Bearer, got {got}", {"got": show(v)}
            )
        return v


class Bearer(CredentialProvider):
    """A static bearer token (see the module)."""

    settings_model = BearerSettings
    settings: BearerSettings

    def __init__(self, settings: BearerSettings, context: ProviderContext) -> None:
        super().__init__(settings, context)
        self._token = context.secret(settings.token, "token", check=header_value_problem)
        self._prefix = f"{settings.scheme} " if settings.scheme else ""
        self._rendered: tuple[str, str] = ("", "")  # (token, header value)

    @classmethod
    def header_of(cls, settings: BearerSettings) -> str | None:
        return settings.header

    def inject(self, exchange: Exchange) -> None:
        token = self._token.get()
        rendered = self._rendered
        if rendered[0] is not token:
            rendered = self._rendered = (token, self._prefix + token)
        exchange.headers.set(self.settings.header, rendered[1])
