"""``basic``: HTTP Basic authentication (RFC 7617), ``Authorization: Basic base64(user:password)``.

``{type: basic, username: shop, password: {env: SHOP_PASSWORD}}``; the username may be a secret
reference too. Both are sent UTF-8 encoded (RFC 7617's ``charset="UTF-8"``); a username cannot
contain ``:``. The app's own ``Authorization`` is replaced (unless ``pass_through``); secret
files are re-read when they change.
"""

from __future__ import annotations

__all__ = ["Basic", "BasicSettings"]

import base64

from pydantic import field_validator
from pydantic_core import PydanticCustomError

from ..api import CredentialProvider, ProviderContext
from ..config.base import Model
from ..config.models import ConfigurableHeaderName
from ..config.policies import SecretByReference
from ..config.secrets import SecretValue
from ..config.types import SecretRef, StrOrSecret
from ..exchange import Exchange


def _username_problem(value: str) -> str | None:
    return (
        "contains ':', which Basic authentication cannot carry in a username"
        if ":" in value
        else None
    )


class BasicSettings(Model):
    """``upstreams.<u>.auth`` with ``type: basic``."""

    username: StrOrSecret
    password: SecretByReference
    header: ConfigurableHeaderName = "authorization"

    @field_validator("username")
    @classmethod
    def _user(cls, v: str | SecretRef) -> str | SecretRef:
        if isinstance(v, str):
            if not v:
                raise PydanticCustomError("username", "the username is empty")
            problem = _username_problem(v)
            if problem is not None:
                raise PydanticCustomError("username", "the username " + problem)
        return v


class Basic(CredentialProvider):
    """HTTP Basic credentials (see the module)."""

    settings_model = BasicSettings
    settings: BasicSettings

    def __init__(self, settings: BasicSettings, context: ProviderContext) -> None:
        super().__init__(settings, context)
        user = settings.username
        self._user: SecretValue | str = (
            context.secret(user, "username", check=_username_problem)
            if isinstance(user, SecretRef)
            else user
        )
        self._password = context.secret(settings.password, "password")
        self._rendered: tuple[str, str, str] = ("", "", "")  # (user, password, header value)

    @classmethod
    def header_of(cls, settings: BasicSettings) -> str | None:
        return settings.header

    def inject(self, exchange: Exchange) -> None:
        user = self._user if isinstance(self._user, str) else self._user.get()
        password = self._password.get()
        rendered = self._rendered
        if rendered[0] is not user or rendered[1] is not password:
            pair = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
            rendered = self._rendered = (user, password, f"Basic {pair}")
        exchange.headers.set(self.settings.header, rendered[2])
