"""The ``plugins.saml`` section: a SAML 2.0 service provider in front of the app, validated by
``sidecar check``.

Everything the filter needs is checked here, so a mistake is reported at its file and key path
before anything serves: the IdP's metadata file exists and names the IdP, the session key can be
read and is long enough (its value is never repeated), paths and header names are well formed.
Not here: loading the metadata into pysaml2 (:mod:`.provider`), the cookie (:mod:`.seal`).
"""

from __future__ import annotations

__all__ = ["IdpConfig", "SamlConfig", "SessionConfig", "MIN_KEY_CHARS"]

import shutil
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from sidecar import Duration, Model, SecretRef, Size

#: a header name as HTTP allows it (token characters)
HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
#: a cookie name (RFC 6265 token), kept plain
COOKIE_NAME = r"^[A-Za-z0-9_-]{1,64}$"
#: a path the plugin answers itself: absolute, plain characters
OWN_PATH = r"^/[A-Za-z0-9._~/-]{0,200}$"
#: the session key's shortest value: 32 characters (HKDF makes the AES key from it)
MIN_KEY_CHARS = 32
#: the IdP metadata file's largest size: metadata is read whole, once per composition
MAX_METADATA_BYTES = 1 << 20


class IdpConfig(Model):
    """``idp``: the identity provider calls are sent to, described by its SAML metadata."""

    #: the IdP's entity ID, as its metadata names it.
    entity_id: str = Field(min_length=1, max_length=1024)
    #: a local file holding the IdP's SAML metadata (its SSO URL and signing certificate);
    #: never fetched over the network, so a changed IdP key is a deliberate config change.
    metadata_file: str = Field(min_length=1)

    @field_validator("metadata_file")
    @classmethod
    def _readable(cls, v: str) -> str:
        path = Path(v)
        try:
            size = path.stat().st_size
        except OSError as e:
            raise ValueError(f"cannot read the IdP metadata file: {e.strerror}") from None
        if size > MAX_METADATA_BYTES:
            raise ValueError(f"the IdP metadata file is over {MAX_METADATA_BYTES} bytes")
        return v

    @model_validator(mode="after")
    def _names_the_idp(self) -> IdpConfig:
        text = Path(self.metadata_file).read_text(errors="replace")
        if f'entityID="{self.entity_id}"' not in text:
            raise ValueError("the IdP metadata file does not describe this entity_id")
        return self


class SessionConfig(Model):
    """``session``: the cookie a browser keeps once logged in."""

    #: the key sealing the cookie (AES-256-GCM, key derived with HKDF-SHA256), by reference
    #: only; at least 32 characters. Changing it logs everyone out.
    key: SecretRef
    #: the session cookie's name; the login-binding cookie is ``<cookie>_req``.
    cookie: str = Field("sidecar_saml", pattern=COOKIE_NAME)
    #: how long a session lasts, whatever the assertion said (at most 7 days).
    lifetime: Duration = Field(8 * 3600.0, gt=0, le=7 * 86400)

    @field_validator("key")
    @classmethod
    def _usable(cls, v: SecretRef) -> SecretRef:
        try:
            value = v.reveal()
        except LookupError as e:
            raise ValueError(str(e)) from None  # names the reference, never a value
        if len(value) < MIN_KEY_CHARS:
            raise ValueError(f"the secret {v} is shorter than {MIN_KEY_CHARS} characters")
        return v


class SamlConfig(Model):
    """``plugins.saml``. Without ``idp`` the plugin changes no call."""

    #: the identity provider; none: the plugin is off.
    idp: IdpConfig | None = None
    #: our entity ID (the audience assertions must name). Required with ``idp``.
    entity_id: str | None = Field(None, min_length=1, max_length=1024)
    #: the origin browsers reach the app at (``https://app.example.com``): the ACS URL is
    #: ``base_url + acs_path``. Required with ``idp``; https only.
    base_url: str | None = Field(None, pattern=r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")
    #: the session cookie. Required with ``idp``.
    session: SessionConfig | None = None
    #: the front whose routes are protected (its name, as in ``sidecar plugins``).
    listener: str = Field("inbound", min_length=1, max_length=64)
    #: where the IdP posts its Response (HTTP-POST binding), answered by the plugin itself.
    acs_path: str = Field("/saml/acs", pattern=OWN_PATH)
    #: where our SP metadata is served (GET), answered by the plugin itself.
    metadata_path: str = Field("/saml/metadata", pattern=OWN_PATH)
    #: path prefixes passed to the app without a session (health checks, public assets).
    public_paths: tuple[str, ...] = Field((), max_length=64)
    #: SAML attribute (its name or pysaml2's friendly name) → the request header the app gets.
    attributes: dict[str, str] = Field(default_factory=dict, max_length=64)
    #: the header carrying the subject's NameID; none: not sent.
    name_id_header: str | None = Field("x-saml-nameid", pattern=HEADER_NAME, max_length=128)
    #: clock skew allowed on NotBefore / NotOnOrAfter / IssueInstant (at most 5 minutes).
    max_skew: Duration = Field(60.0, ge=0, le=300)
    #: how long an AuthnRequest we issued may be answered (at most 30 minutes).
    request_lifetime: Duration = Field(300.0, gt=0, le=1800)
    #: AuthnRequests awaiting an answer; the oldest is forgotten past it.
    max_pending_requests: int = Field(10_000, ge=1, le=1_000_000)
    #: assertion IDs remembered against replay; the oldest is forgotten past it.
    max_seen_assertions: int = Field(100_000, ge=1, le=1_000_000)
    #: the largest ACS form body accepted.
    max_response_bytes: Size = Field(256 * 1024, ge=4096, le=4 * 1024 * 1024)
    #: responses checked at once (each runs ``xmlsec1``, in a thread); more wait their turn.
    max_concurrent_checks: int = Field(2, ge=1, le=64)
    #: the ``xmlsec1`` program; none: found on ``PATH``.
    xmlsec_binary: str | None = None

    @field_validator("public_paths")
    @classmethod
    def _paths(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for p in v:
            if not p.startswith("/") or any(c in p for c in "?#\\ ") or len(p) > 256:
                raise ValueError(f"a public path is an absolute path prefix, got {p[:60]!r}")
        return v

    @field_validator("attributes")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        import re

        for name, header in v.items():
            if not 0 < len(name) <= 256 or not re.match(HEADER_NAME, header) or len(header) > 128:
                raise ValueError(f"attribute {name[:60]!r}: expected a header name")
        return {k: h.lower() for k, h in v.items()}

    @model_validator(mode="after")
    def _complete(self) -> SamlConfig:
        if self.idp is None:
            return self
        missing = [k for k in ("entity_id", "base_url", "session") if getattr(self, k) is None]
        if missing:
            raise ValueError(f"with idp, these are required: {', '.join(missing)}")
        if self.acs_path == self.metadata_path:
            raise ValueError("acs_path and metadata_path must differ")
        headers = list(self.attributes.values())
        if self.name_id_header:
            headers.append(self.name_id_header.lower())
        if len(set(headers)) != len(headers):
            raise ValueError("two attributes (or the NameID) are sent in one header")
        binary = self.xmlsec_binary or shutil.which("xmlsec1")
        if binary is None or not Path(binary).is_file():
            raise ValueError("xmlsec1 is not installed (apt-get install xmlsec1) or not found")
        return self
